//! The overview, a filtered audit log with its live tail (and its pause button), the
//! environment matrix and a 404, each in light and in dark mode (Chromium's
//! `--force-dark-mode`, which makes `prefers-color-scheme: dark` match), with screenshots
//! under the target directory. Checks something real on each: the charts are drawn, a new
//! matching event appears live and a non-matching one does not, a paused tail waits, the
//! UTC switch is remembered, Enter in a picker submits, and the page's colours differ
//! between the two modes.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt as _;
use opsbot::web::router;
use opsbot_commands::audit::{Outcome, seal_pending};
use serde_json::{Value, json};
use sqlx::PgPool;

use super::{CHROMIUM, TOKEN, WAIT, event, save_png, start_chromedriver, state, wait_for};

async fn connect_in(webdriver: &str, profile: &Path, dark: bool) -> Client {
    let mut args = vec![
        "--headless=new".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        "--no-first-run".to_owned(),
        format!("--user-data-dir={}", profile.display()),
    ];
    if dark {
        args.push("--force-dark-mode".to_owned());
    }
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({ "binary": CHROMIUM, "args": args }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(webdriver)
        .await
        .expect("a browser session through chromedriver")
}

async fn run(client: &Client, script: &str) -> Value {
    client.execute(script, vec![]).await.expect("execute")
}

/// Waits until `script` returns true.
async fn until(client: &Client, script: &str, what: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while run(client, script).await != json!(true) {
        assert!(tokio::time::Instant::now() < deadline, "waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn log_in(client: &Client, base: &str) {
    client
        .goto(&format!("{base}/login"))
        .await
        .expect("login page");
    let token = wait_for(client, "input#token").await;
    token.send_keys(TOKEN).await.expect("type the token");
    client
        .find(Locator::Id("token-login"))
        .await
        .expect("login button")
        .click()
        .await
        .expect("log in");
    wait_for(client, "tr[data-id]").await;
}

/// What one mode looked like: the page's background and a key card's colour.
#[derive(Debug, PartialEq)]
struct Colours {
    body: String,
    card: String,
}

async fn tour(client: &Client, base: &str, pool: &PgPool, dark: bool) -> Colours {
    let mode = if dark { "dark" } else { "light" };
    client
        .set_window_size(1280, 1000)
        .await
        .expect("window size");
    log_in(client, base).await;
    assert_eq!(
        run(
            client,
            "return matchMedia('(prefers-color-scheme: dark)').matches"
        )
        .await,
        json!(dark),
        "{mode}: the colour scheme the browser reports"
    );

    // The overview: the keys and both charts, drawn.
    client
        .goto(&format!("{base}/overview?window=7"))
        .await
        .expect("overview");
    wait_for(client, "#deploys-chart").await;
    let bars = run(
        client,
        "return document.querySelectorAll('#deploys-chart rect.bar').length",
    )
    .await;
    assert!(
        bars.as_i64().unwrap_or(0) >= 2,
        "{mode}: deploy bars drawn: {bars}"
    );
    let title = run(
        client,
        "return document.querySelector('#deploys-chart > title').textContent",
    )
    .await;
    assert_eq!(title, json!("Deploys per day by outcome"));
    let colours = Colours {
        body: run(
            client,
            "return getComputedStyle(document.body).backgroundColor",
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned(),
        card: run(
            client,
            "return getComputedStyle(document.querySelector('.key')).backgroundColor",
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned(),
    };
    save_png(client, &format!("overview-{mode}.png")).await;

    // The log filtered to denials, live: a new denial appears, a new success does not.
    client
        .goto(&format!("{base}/?outcome=denied"))
        .await
        .expect("filtered log");
    wait_for(client, "#live").await;
    let other = event(pool, "ok-one", "whoami", json!({}), Outcome::Ok).await;
    let denied = event(
        pool,
        "live-one",
        "deploy run",
        json!({"service": "api"}),
        Outcome::Denied,
    )
    .await;
    wait_for(client, &format!("tr.new[data-id=\"{denied}\"]")).await;
    assert_eq!(
        run(
            client,
            &format!("return document.querySelector('tr[data-id=\"{other}\"]') === null")
        )
        .await,
        json!(true),
        "{mode}: the event that does not match stays out"
    );
    let chip = run(
        client,
        &format!("return document.querySelector('tr[data-id=\"{denied}\"] .chip').textContent"),
    )
    .await;
    assert_eq!(chip, json!("service: api"));
    // Paused, a new denial waits; resumed, it arrives.
    client
        .find(Locator::Id("pause"))
        .await
        .expect("pause")
        .click()
        .await
        .expect("pause");
    until(
        client,
        "return document.getElementById('pause').getAttribute('aria-pressed') === 'true'",
        "paused",
    )
    .await;
    let waiting = event(pool, "live-two", "deploy run", json!({}), Outcome::Denied).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        run(
            client,
            &format!("return document.querySelector('tr[data-id=\"{waiting}\"]') === null")
        )
        .await,
        json!(true),
        "{mode}: nothing arrives while paused"
    );
    client
        .find(Locator::Id("pause"))
        .await
        .expect("resume")
        .click()
        .await
        .expect("resume");
    wait_for(client, &format!("tr.new[data-id=\"{waiting}\"]")).await;
    save_png(client, &format!("log-live-{mode}.png")).await;

    // Times: the viewer's zone by default; UTC once switched, remembered after a reload.
    until(
        client,
        "return Array.from(document.querySelectorAll('time[datetime]')).every(t => / E[SD]T$/.test(t.textContent))",
        "times in the browser's zone",
    )
    .await;
    client
        .find(Locator::Id("utc-toggle"))
        .await
        .expect("utc switch")
        .click()
        .await
        .expect("switch to UTC");
    client.refresh().await.expect("reload");
    wait_for(client, "tr[data-id]").await;
    until(
        client,
        "return Array.from(document.querySelectorAll('time[datetime]')).every(t => / UTC$/.test(t.textContent))",
        "times in UTC after a reload",
    )
    .await;
    client
        .find(Locator::Id("utc-toggle"))
        .await
        .expect("utc switch")
        .click()
        .await
        .expect("back to local time");

    // Keyboard: Enter in a picker submits the filters.
    let source = client
        .find(Locator::Css("form.filters select[name=source]"))
        .await
        .expect("source picker");
    run(
        client,
        "document.querySelector('form.filters select[name=source]').value = 'discord'",
    )
    .await;
    source.send_keys("\u{e007}").await.expect("Enter");
    wait_for(
        client,
        "form.filters select[name=source] option[value=\"discord\"][selected]",
    )
    .await;

    // The environment matrix.
    client
        .goto(&format!("{base}/deploys/matrix"))
        .await
        .expect("matrix");
    let running = wait_for(client, "#matrix a.running-version").await;
    assert_eq!(running.text().await.expect("text"), "v2");
    save_png(client, &format!("matrix-{mode}.png")).await;

    // A 404, in the layout.
    client
        .goto(&format!("{base}/no/such/page"))
        .await
        .expect("404");
    let heading = wait_for(client, "#error-heading").await;
    assert_eq!(heading.text().await.expect("text"), "Not found");
    assert!(
        client
            .find(Locator::Css("nav a[href=\"/overview\"]"))
            .await
            .is_ok()
    );
    save_png(client, &format!("not-found-{mode}.png")).await;
    colours
}

async fn deploy(pool: &PgPool, version: &str, state: &str, hours_ago: i32) {
    sqlx::query(
        "INSERT INTO deploys (correlation_id, service, environment, version, state,
                              requested_by_id, requested_by_name, requested_at, started_at,
                              finished_at, backend)
         VALUES (gen_random_uuid(), 'api', 'production', $1, $2, 7, 'ana',
                 now() - make_interval(hours => $3), now() - make_interval(hours => $3),
                 now() - make_interval(hours => $3) + interval '10 minutes', 'command')",
    )
    .bind(version)
    .bind(state)
    .bind(hours_ago)
    .execute(pool)
    .await
    .expect("deploy");
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn the_dashboard_in_light_and_dark(pool: PgPool) {
    deploy(&pool, "v1", "succeeded", 50).await;
    deploy(&pool, "v1.1", "failed", 30).await;
    deploy(&pool, "v2", "succeeded", 26).await;
    event(
        &pool,
        "ana",
        "deploy lock",
        json!({"service": "api"}),
        Outcome::Denied,
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

    let mut seen = Vec::new();
    let mut failure = None;
    for dark in [false, true] {
        let profile = tempfile::tempdir().expect("a browser profile directory");
        let client = connect_in(&chromedriver.url, profile.path(), dark).await;
        let outcome = AssertUnwindSafe(tour(&client, &base, &pool, dark))
            .catch_unwind()
            .await;
        let closed = client.close().await;
        match outcome {
            Ok(colours) => seen.push(colours),
            Err(panic) => {
                failure = Some(panic);
                break;
            }
        }
        closed.expect("close the browser session");
    }
    chromedriver.child.kill().await.ok();
    server.abort();
    if let Some(panic) = failure {
        std::panic::resume_unwind(panic);
    }
    let [light, dark] = seen.as_slice() else {
        panic!("both modes ran: {seen:?}");
    };
    assert_ne!(
        light.body, dark.body,
        "the page's background follows the colour scheme"
    );
    assert_ne!(
        light.card, dark.card,
        "the key cards follow the colour scheme"
    );
    assert_eq!(light.body, "rgb(255, 255, 255)");
}
