//! The dashboard in a real browser (headless Chromium through chromedriver): token login, the
//! filter form, search, an event page; injected markup shows as text and never runs, while the
//! page's own script (app.js) does run under the Content-Security-Policy. Saves screenshots.
//! [`light_dark`] goes over the overview, a filtered log with its live tail, the environment
//! matrix and a 404, in light and in dark mode.
//!
//! Needs Debian's `chromium` and `chromium-driver` packages (`.ci/run` installs them).

mod support;

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt as _;
use opsbot::web::auth::Dashboard;
use opsbot::web::{WebState, router};
use opsbot_commands::access::RoleMap;
use opsbot_commands::audit::{NewEvent, Outcome, append, seal_pending};
use opsbot_commands::{Desk, Source};
use serde_json::{Value, json};
use sqlx::PgPool;

const TOKEN: &str = "browser-dashboard-token-of-at-least-32-bytes";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const EVIL_ARGS: &str = r#"<script>window.__xss = 1; document.title = "pwned"</script>"#;
const EVIL_ACTOR: &str = r#"<img src=x onerror="window.__xss=2">"#;
/// Upper bound for each wait on the browser; the waits end as soon as the page is ready.
const WAIT: Duration = Duration::from_secs(30);
/// The browser's time zone: not UTC, so that times shown in the viewer's zone differ from
/// the server's UTC text.
const BROWSER_ZONE: &str = "America/New_York";

fn state(pool: &PgPool) -> WebState {
    let roles = RoleMap::new(
        [("ops".to_owned(), vec!["audit:read".to_owned()])]
            .into_iter()
            .collect(),
    )
    .expect("roles");
    WebState {
        metrics: opsbot::telemetry::metrics(),
        desk: Desk::new(pool.clone(), roles),
        dashboard: Arc::new(Dashboard {
            tokens: vec![secrecy::SecretString::from(TOKEN.to_owned())],
            key: Dashboard::key_from(Some("a session secret for the browser test")),
            session_ttl: Duration::from_secs(3600),
            secure_cookies: false,
            discord: None,
            attempts: Default::default(),
        }),
    }
}

async fn event(pool: &PgPool, actor: &str, command: &str, args: Value, outcome: Outcome) -> i64 {
    append(
        pool,
        &NewEvent {
            actor_id: 7,
            actor_name: actor.into(),
            source: Source::Discord,
            guild_id: None,
            channel_id: None,
            interaction_id: None,
            command: command.into(),
            args,
            outcome,
            detail: String::new(),
            correlation_id: None,
        },
    )
    .await
    .expect("append")
}

/// A chromedriver child process on a free loopback port, killed when dropped.
struct Chromedriver {
    child: tokio::process::Child,
    url: String,
}

async fn start_chromedriver() -> Chromedriver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = tokio::process::Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .env("TZ", BROWSER_ZONE)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start chromedriver");
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ready = match http.get(format!("{url}/status")).send().await {
            Ok(answer) => answer
                .json::<Value>()
                .await
                .is_ok_and(|status| status["value"]["ready"] == json!(true)),
            Err(_) => false,
        };
        if ready {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "chromedriver did not become ready on {url}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Chromedriver { child, url }
}

async fn connect(webdriver: &str, profile: &Path) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(webdriver)
        .await
        .expect("a browser session through chromedriver")
}

async fn wait_for(client: &Client, css: &str) -> Element {
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("waiting for {css}: {e}"))
}

async fn row_count(client: &Client) -> usize {
    client
        .find_all(Locator::Css("tr[data-id]"))
        .await
        .expect("rows")
        .len()
}

/// Fills one filter field (clearing the others) and submits; waits for the filtered page.
/// Outcome, source and command are pickers: chosen by value.
async fn filter(client: &Client, name: &str, value: &str) {
    client
        .execute(
            "for (const s of document.querySelectorAll('form.filters select')) {
                 s.value = s.name === arguments[0] ? arguments[1] : '';
             }",
            vec![json!(name), json!(value)],
        )
        .await
        .expect("pick");
    for field in ["actor", "since", "until", "q"] {
        let input = client
            .find(Locator::Css(&format!("form.filters input[name={field}]")))
            .await
            .expect("filter field");
        input.clear().await.expect("clear");
        if field == name {
            input.send_keys(value).await.expect("type");
        }
    }
    client
        .find(Locator::Css("form.filters button[type=submit]"))
        .await
        .expect("filter button")
        .click()
        .await
        .expect("submit");
    // The server renders the value as an attribute; typing only sets the property, so this
    // matches the new page, not the old one.
    let rendered = if ["command", "outcome", "source"].contains(&name) {
        format!("form.filters select[name={name}] option[value=\"{value}\"][selected]")
    } else {
        format!("form.filters input[name={name}][value=\"{value}\"]")
    };
    wait_for(client, &rendered).await;
}

/// No injected code ran: the marker is unset and the title is the page's own.
async fn assert_nothing_injected_ran(client: &Client, title: &str) {
    let seen = client
        .execute(
            "return [window.__xss === undefined, document.title]",
            vec![],
        )
        .await
        .expect("execute");
    assert_eq!(seen, json!([true, title]), "injected code ran");
    let scripts = client
        .execute(
            "return Array.from(document.scripts, s => s.getAttribute('src'))",
            vec![],
        )
        .await
        .expect("execute");
    assert_eq!(
        scripts,
        json!(["/static/app.js"]),
        "only app.js is a script"
    );
}

/// app.js rewrote every `<time>` into the viewer's zone, in one line with the date and the
/// zone ("2026-12-01 11:06:17 EST"; the server writes "... UTC"), "… ago" on hover.
async fn assert_times_localised(client: &Client) {
    let script = r"return Array.from(document.querySelectorAll('time[datetime]'), t => [
        t.textContent, t.title,
        /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d E[SD]T$/.test(t.textContent)])";
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let times = client.execute(script, vec![]).await.expect("execute");
        let times: Vec<(String, String, bool)> =
            serde_json::from_value(times).expect("time triples");
        assert!(!times.is_empty(), "the page shows times");
        let localised = times
            .iter()
            .all(|(_, title, shaped)| *shaped && (title.ends_with(" ago") || title == "just now"));
        if localised {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "app.js did not localise the times: {times:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn save_png(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    assert!(
        png.len() > 8 && png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{name} is not a PNG"
    );
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, &png).expect("write the screenshot");
    assert!(std::fs::metadata(&path).expect("screenshot file").len() > 0);
}

async fn drive(client: &Client, base: &str, evil: i64) {
    client
        .set_window_size(1280, 900)
        .await
        .expect("window size");

    // Not logged in: the dashboard sends the browser to the login form.
    client.goto(&format!("{base}/")).await.expect("open /");
    let token = wait_for(client, "input#token").await;
    assert_eq!(client.current_url().await.expect("url").path(), "/login");
    token.send_keys(TOKEN).await.expect("type the token");
    client
        .find(Locator::Id("token-login"))
        .await
        .expect("login button")
        .click()
        .await
        .expect("log in");
    wait_for(client, "tr[data-id]").await;
    assert_eq!(client.current_url().await.expect("url").path(), "/");
    // Five seeded events and the login itself.
    assert_eq!(row_count(client).await, 6);
    assert_times_localised(client).await;
    assert_nothing_injected_ran(client, "Audit log · opsbot").await;

    // Filter by outcome: only denied rows remain.
    filter(client, "outcome", "denied").await;
    let outcomes = client
        .find_all(Locator::Css("tr[data-id] .outcome"))
        .await
        .expect("outcome cells");
    assert_eq!(outcomes.len(), 2, "two denied events");
    for outcome in outcomes {
        assert_eq!(outcome.text().await.expect("text"), "denied");
    }

    // Search: the evil event is listed, its markup shown as text.
    filter(client, "q", "script").await;
    assert_eq!(row_count(client).await, 1);
    let row = wait_for(client, &format!("tr[data-id=\"{evil}\"]")).await;
    let args = row
        .find(Locator::Css("span.args"))
        .await
        .expect("args cell")
        .text()
        .await
        .expect("text");
    assert!(args.contains("<script>window.__xss = 1;"), "{args}");
    let text = row.text().await.expect("row text");
    assert!(text.contains(EVIL_ACTOR), "the actor as text: {text}");
    assert!(
        client
            .find_all(Locator::Css("#events img, #events script"))
            .await
            .expect("find")
            .is_empty(),
        "no injected elements"
    );
    assert_times_localised(client).await;
    assert_nothing_injected_ran(client, "Audit log · opsbot").await;
    save_png(client, "dashboard.png").await;

    // The event page shows the arguments as text too.
    row.find(Locator::Css("a[href]"))
        .await
        .expect("event link")
        .click()
        .await
        .expect("open the event");
    let pre = wait_for(client, "dd#args").await;
    assert_eq!(
        client.current_url().await.expect("url").path(),
        format!("/events/{evil}")
    );
    let shown = pre.text().await.expect("args text");
    assert!(shown.contains("<script>"), "{shown}");
    // A chip: the key, and the whole value as text, exactly as stored.
    assert!(shown.contains(&format!("service: {EVIL_ARGS}")), "{shown}");
    assert_times_localised(client).await;
    assert_nothing_injected_ran(client, &format!("Event {evil} · opsbot")).await;
    save_png(client, "dashboard-event.png").await;
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn the_dashboard_in_a_browser_shows_injected_markup_as_text(pool: PgPool) {
    let install = "Debian: apt install chromium chromium-driver";
    if !support::prerequisites::program(CHROMIUM, install)
        || !support::prerequisites::program(CHROMEDRIVER, install)
    {
        return;
    }
    event(&pool, "ana", "whoami", json!({}), Outcome::Ok).await;
    event(
        &pool,
        "bob",
        "deploy run",
        json!({"service": "api", "env": "production"}),
        Outcome::Denied,
    )
    .await;
    event(&pool, "carol", "status", json!({}), Outcome::Ok).await;
    event(
        &pool,
        "dave",
        "rollback",
        json!({"service": "web"}),
        Outcome::Denied,
    )
    .await;
    let evil = event(
        &pool,
        EVIL_ACTOR,
        "deploy run",
        json!({"service": EVIL_ARGS}),
        Outcome::Invalid,
    )
    .await;
    seal_pending(&pool).await.expect("seal");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let app = router(state(&pool)).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut chromedriver = start_chromedriver().await;
    let profile = tempfile::tempdir().expect("a browser profile directory");
    let client = connect(&chromedriver.url, profile.path()).await;

    let outcome = AssertUnwindSafe(drive(&client, &base, evil))
        .catch_unwind()
        .await;
    // Close the session (and so the browser) even when an assertion failed.
    let closed = client.close().await;
    chromedriver.child.kill().await.ok();
    server.abort();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    closed.expect("close the browser session");
}

#[path = "browser/light_dark.rs"]
mod light_dark;
