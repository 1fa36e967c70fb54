//! `/metrics` end to end: the real bot against the emulator, real Postgres and the real
//! Prometheus from Debian's `prometheus` package (started here on a free loopback port with a
//! temporary data dir, scraping itself and opsbot's own `/metrics` every second). Instant
//! queries answer with a table (snapshot), range queries and service panels with a PNG that is
//! decoded and looked at; every error path reads on its own; every query is audited with its
//! PromQL and series count.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use opsbot::emulator::EmulatorEvent;
use opsbot_commands::metrics::chart::PALETTE;
use sqlx::PgPool;
use support::TestBot;

const PROMETHEUS: &str = "/usr/bin/prometheus";
const INCIDENTS: u64 = 222_000_000_000_000_222;
const CATEGORY: u64 = 444_000_000_000_000_444;
const ALERTS: u64 = 333_000_000_000_000_333;
const WEBHOOK_TOKEN: &str = "alertmanager-test-token";

/// A Prometheus of our own; stopped (by its pid) when dropped.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Listens on `port`, scrapes itself and `opsbot` every second, at most `max_samples`
    /// samples per query.
    fn start(port: u16, opsbot: std::net::SocketAddr, max_samples: u32) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n\
                 \x20 - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n\
                 \x20 - job_name: opsbot\n    static_configs:\n      - targets: ['{opsbot}']\n"
            ),
        )
        .expect("write config");
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--query.max-samples={max_samples}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        Prometheus {
            child,
            port,
            _dir: dir,
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits until both targets have been scraped a few times.
    async fn wait_for_samples(&self) {
        let http = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{}/api/v1/query", self.port);
        let started = tokio::time::Instant::now();
        loop {
            let answer: Option<serde_json::Value> = match http
                .get(&url)
                .query(&[("query", "count_over_time(up[1m]) >= 3 and up == 1")])
                .send()
                .await
            {
                Ok(response) => response.json().await.ok(),
                Err(_) => None,
            };
            let scraped = answer
                .as_ref()
                .and_then(|a| a["data"]["result"].as_array())
                .map_or(0, Vec::len);
            if scraped == 2 {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(40),
                "Prometheus never scraped both targets: {answer:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Where [`config`] writes the webhook token; removed once the bot has read its config.
fn token_file() -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "opsbot-metrics-test-{}-{:?}.token",
        std::process::id(),
        std::thread::current().id()
    ))
}

/// The bot's config; the webhook token is read from a file (secrets are references).
fn config(prometheus_url: &str, timeout: &str) -> String {
    let token = token_file();
    std::fs::write(&token, WEBHOOK_TOKEN).expect("token file");
    let token = token.display();
    format!(
        r#"
[roles]
ops = ["metrics:query", "incident:*"]
guest = []
[http]
listen = "127.0.0.1:0"
[channels]
incidents = {INCIDENTS}
incident_category = {CATEGORY}
alerts = {ALERTS}
[alerts]
webhook_token = "file:{token}"
[[alerts.routes]]
matchers = ['severity=~"critical|warning"']
channel = {ALERTS}
mode = "immediate"
[incidents.severities.sev2]
description = "degraded"
[prometheus]
url = "{prometheus_url}"
timeout = "{timeout}"
max_range = "2d"
[[services]]
name = "api"
environments = ["staging"]
backend = {{ kind = "command", program = "true", args = [], timeout = "30s" }}
panels = [
  {{ title = "targets up", promql = "up", unit = "ratio" }},
  {{ title = "scrape duration", promql = "scrape_duration_seconds", unit = "seconds" }},
  {{ title = "broken", promql = "sum(", unit = "" }},
]
"#
    )
}

/// Alertmanager's webhook (version 4) for one firing alert of rule `name`, its expression in
/// `generatorURL` as Prometheus writes it.
async fn post_alert(opsbot: std::net::SocketAddr, name: &str, expr: &str) {
    let generator = reqwest::Url::parse_with_params(
        "http://prometheus.example:9090/graph",
        &[("g0.expr", expr), ("g0.tab", "1")],
    )
    .expect("url");
    let labels = serde_json::json!({ "alertname": name, "severity": "critical", "service": "api" });
    let payload = serde_json::json!({
        "receiver": "opsbot",
        "status": "firing",
        "alerts": [{
            "status": "firing",
            "labels": labels,
            "annotations": { "summary": format!("{name} is firing") },
            "startsAt": chrono::Utc::now().to_rfc3339(),
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": generator.as_str(),
            "fingerprint": format!("{:016x}", name.len()),
        }],
        "groupLabels": { "alertname": name },
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "version": "4",
        "groupKey": format!("{{}}:{{alertname=\"{name}\"}}"),
        "truncatedAlerts": 0,
    });
    let answer = reqwest::Client::new()
        .post(format!("http://{opsbot}/webhooks/alertmanager"))
        .bearer_auth(WEBHOOK_TOKEN)
        .json(&payload)
        .send()
        .await
        .expect("webhook");
    assert!(answer.status().is_success(), "{}", answer.status());
}

/// The event's single attached PNG, decoded: (width, height, RGB pixels).
fn decoded_png(event: &EmulatorEvent) -> (u32, u32, Vec<u8>) {
    assert_eq!(
        event.files.len(),
        1,
        "one attachment: {:?}",
        event.attachments
    );
    let (name, bytes) = &event.files[0];
    assert!(name.ends_with(".png"), "{name}");
    assert!(bytes.len() < 1024 * 1024, "{} bytes", bytes.len());
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).expect("frame");
    assert_eq!(info.color_type, png::ColorType::Rgb, "RGB");
    pixels.truncate(info.buffer_size());
    (info.width, info.height, pixels)
}

/// How many of the palette's series colours cover at least `min` pixels.
fn series_colours(pixels: &[u8], min: usize) -> usize {
    PALETTE
        .iter()
        .filter(|c| {
            pixels
                .chunks_exact(3)
                .filter(|p| p[0] == c.0 && p[1] == c.1 && p[2] == c.2)
                .count()
                >= min
        })
        .count()
}

/// Distinct colours in the plot area (the middle of the image).
fn distinct_colours_in_middle(width: u32, height: u32, pixels: &[u8]) -> usize {
    let mut seen = std::collections::HashSet::new();
    for y in height / 4..height * 3 / 4 {
        for x in width / 4..width * 3 / 4 {
            let at = (y as usize * width as usize + x as usize) * 3;
            seen.insert((pixels[at], pixels[at + 1], pixels[at + 2]));
        }
    }
    seen.len()
}

/// `<t:1796133410:t>` → `<t:TIME:t>`: the table is the same at any time.
fn redact_times(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("<t:") {
        out.push_str(&rest[..at + 3]);
        let after = &rest[at + 3..];
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        out.push_str("TIME");
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

async fn audited(pool: &PgPool, command: &str) -> Vec<(String, String, String)> {
    sqlx::query_as(
        "SELECT coalesce(args->>'promql', args->>'name', ''), outcome, coalesce(detail, '') \
         FROM audit_events WHERE command = $1 ORDER BY id",
    )
    .bind(command)
    .fetch_all(pool)
    .await
    .expect("audit events")
}

#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn promql_is_answered_with_tables_and_charts_from_the_real_prometheus(pool: PgPool) {
    if !support::prerequisites::program(PROMETHEUS, "Debian: apt install prometheus") {
        return;
    }
    let port = free_port();
    let mut bot = TestBot::with_config(
        pool.clone(),
        &config(&format!("http://127.0.0.1:{port}"), "10s"),
    )
    .await;
    let _ = std::fs::remove_file(token_file());
    let opsbot = bot
        .services
        .as_ref()
        .and_then(|s| s.http_addr)
        .expect("opsbot's HTTP server");
    let mut prometheus = Prometheus::start(port, opsbot, 5_000);
    prometheus.wait_for_samples().await;

    // Instant: a table of the top series by value, distinguishing labels only.
    let table = bot
        .say(
            "ana",
            &["ops"],
            "/metrics query promql:\"count by (job) (up{job='prometheus'}) * 2 or count by (job) (up{job='opsbot'})\"",
        )
        .await;
    assert!(table.files.is_empty(), "no chart for an instant query");
    assert_eq!(
        table.event, "edit",
        "deferred: the answer fills in the \"thinking…\" reply"
    );
    insta::assert_snapshot!(redact_times(&table.content), @r"
    `count by (job) (up{job='prometheus'}) * 2 or count by (job) (up{job='opsbot'})` at <t:TIME:t>: **2 series**
    ```
    value  job
        2  prometheus
        1  opsbot
    ```
    ");

    // Range: a chart of four waves (defined over the whole range, whatever was scraped).
    let chart = bot
        .say(
            "ana",
            &["ops"],
            "/metrics query promql:\"label_replace(sin(vector(time() / 20)), 'k', 'a', '', '') or label_replace(sin(vector(time() / 20)) + 2, 'k', 'b', '', '') or label_replace(sin(vector(time() / 20)) + 4, 'k', 'c', '', '') or label_replace(sin(vector(time() / 20)) + 6, 'k', 'd', '', '')\" range:5m",
        )
        .await;
    assert!(chart.content.contains("over 5m"), "{}", chart.content);
    assert!(chart.content.contains("4 series"), "{}", chart.content);
    let (width, height, pixels) = decoded_png(&chart);
    assert_eq!((width, height), (1200, 600));
    let (name, bytes) = &chart.files[0];
    assert!(
        opsbot::emulator::attachments::describe(name, bytes).ends_with("KiB, PNG 1200×600)"),
        "the shell names the chart's size and dimensions"
    );
    assert!(
        distinct_colours_in_middle(width, height, &pixels) > 3,
        "the plot area is not blank"
    );
    assert!(
        series_colours(&pixels, 500) >= 4,
        "four series colours are drawn"
    );

    // A service's panels as small multiples; a broken panel is named, the others drawn.
    let panels = bot
        .say("ana", &["ops"], "/metrics service name:api range:10m")
        .await;
    assert!(panels.content.contains("3 panels"), "{}", panels.content);
    assert!(
        panels
            .content
            .contains("broken: Prometheus refused the query"),
        "{}",
        panels.content
    );
    let (width, height, pixels) = decoded_png(&panels);
    assert_eq!(width, 1200);
    assert!(height >= 600, "{height}");
    assert!(series_colours(&pixels, 50) >= 2, "both targets drawn");

    // Inside an incident's channel, no name: the incident's services.
    bot.say(
        "ana",
        &["ops"],
        "/incident declare title:\"slow api\" severity:sev2 services:api",
    )
    .await;
    let mut channel = None;
    for _ in 0..200 {
        channel = bot.emulator.find_channel("inc-1-slow-api");
        if channel.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (channel, _) = channel.expect("the incident channel");
    let ana = bot.emulator.member("ana", None);
    let interaction = bot
        .emulator
        .type_line(ana, channel, "/metrics service")
        .expect("typed");
    let implied = bot.answer_to(interaction).await;
    assert!(
        implied.content.contains("incident #1 (api)"),
        "{}",
        implied.content
    );
    decoded_png(&implied);
    // Elsewhere, no name: it says what to name.
    let unnamed = bot.say("ana", &["ops"], "/metrics service").await;
    assert!(
        unnamed.content.contains("name a service") && unnamed.content.contains("api"),
        "{}",
        unnamed.content
    );

    // Prometheus's own words for bad PromQL.
    let bad = bot
        .say(
            "ana",
            &["ops"],
            "/metrics query promql:\"sum(rate(up[5m])\"",
        )
        .await;
    assert!(
        bad.content.contains("parse error") && bad.content.contains("unclosed left parenthesis"),
        "{}",
        bad.content
    );
    assert!(bad.files.is_empty());

    // Nothing matches: said, nothing drawn.
    let empty = bot
        .say(
            "ana",
            &["ops"],
            "/metrics query promql:no_such_metric_anywhere",
        )
        .await;
    assert!(
        empty.content.contains("no series match"),
        "{}",
        empty.content
    );
    let empty_range = bot
        .say(
            "ana",
            &["ops"],
            "/metrics query promql:no_such_metric_anywhere range:15m",
        )
        .await;
    assert!(
        empty_range.content.contains("no series match"),
        "{}",
        empty_range.content
    );
    assert!(empty_range.files.is_empty());

    // Too large: a subquery of 7,200 samples, more than the 5,000 Prometheus allows here.
    let huge = bot
        .say(
            "ana",
            &["ops"],
            "/metrics query promql:\"count_over_time(vector(1)[2h:1s])\"",
        )
        .await;
    assert!(huge.content.contains("too large"), "{}", huge.content);

    // Bad input stores nothing but its refusal.
    let long = bot
        .say("ana", &["ops"], "/metrics query promql:up range:30d")
        .await;
    assert!(long.content.contains("max_range"), "{}", long.content);
    let stepless = bot
        .say("ana", &["ops"], "/metrics query promql:up step:30s")
        .await;
    assert!(
        stepless.content.contains("needs a `range`"),
        "{}",
        stepless.content
    );

    // Without metrics:query: denied.
    let denied = bot.say("gus", &["guest"], "/metrics query promql:up").await;
    assert!(
        denied.content.contains("metrics:query"),
        "{}",
        denied.content
    );

    // The metric names for autocomplete come from Prometheus.
    let names = bot
        .services
        .as_ref()
        .expect("services")
        .desk
        .metric_names_matching("prometheus_build", 5)
        .await;
    assert_eq!(names, vec!["prometheus_build_info".to_owned()]);

    // A chart on every alert: posted first, then attached by an edit of the same message.
    post_alert(opsbot, "TargetsUp", "sum by (job) (up)").await;
    let post = bot
        .next_event("the alert's post", |e| {
            e.channel_id == ALERTS && e.event == "post"
        })
        .await;
    assert!(
        post.content.contains("TargetsUp")
            || post
                .embeds
                .iter()
                .any(|e| e.to_string().contains("TargetsUp")),
        "{post:?}"
    );
    assert!(
        post.files.is_empty(),
        "the post does not wait for the chart"
    );
    let alert_message = post.message_id;
    let charted = bot
        .next_event("the chart's edit", |e| {
            e.event == "edit" && e.message_id == alert_message && !e.files.is_empty()
        })
        .await;
    assert_eq!(charted.files[0].0, "alert.png");
    let (width, height, pixels) = decoded_png(&charted);
    assert_eq!((width, height), (1200, 600));
    assert!(series_colours(&pixels, 50) >= 2, "both jobs drawn");
    assert_eq!(
        charted.embeds, post.embeds,
        "the edit leaves the alert's text alone"
    );
    let charts = audited(&pool, "alerts chart").await;
    assert_eq!(charts.len(), 1, "{charts:?}");
    assert_eq!(charts[0].0, "sum by (job) (up)");
    assert_eq!(charts[0].1, "ok");
    assert!(charts[0].2.contains(": 2 series"), "{}", charts[0].2);

    // Unreachable: Prometheus stopped.
    prometheus.stop();
    let gone = bot.say("ana", &["ops"], "/metrics query promql:up").await;
    assert!(
        gone.content.contains("cannot be reached"),
        "{}",
        gone.content
    );

    // An alert still posts without Prometheus; it just gets no chart (and the audit says why).
    post_alert(opsbot, "NoChart", "up").await;
    let post = bot
        .next_event("the second alert's post", |e| {
            e.channel_id == ALERTS && e.event == "post"
        })
        .await;
    let mut charts = Vec::new();
    for _ in 0..200 {
        charts = audited(&pool, "alerts chart").await;
        if charts.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(charts.len(), 2, "{charts:?}");
    assert_eq!(charts[1].1, "error");
    assert!(charts[1].2.contains("cannot be reached"), "{}", charts[1].2);
    let stored = bot
        .emulator
        .channel_messages(ALERTS)
        .into_iter()
        .find(|m| m["id"].as_str() == post.message_id.map(|id| id.to_string()).as_deref())
        .expect("the second alert's message");
    assert_eq!(stored["attachments"], serde_json::json!([]), "no chart");

    // No answer failed on the way back (serenity reads every message Discord returns).
    for message in bot.emulator.channel_messages(bot.general) {
        let content = message["content"].as_str().unwrap_or_default();
        assert!(!content.contains("Something went wrong"), "{content}");
    }

    // Every query is audited with its PromQL and how many series came back.
    let events = audited(&pool, "metrics query").await;
    let outcomes: Vec<(&str, &str)> = events
        .iter()
        .map(|(promql, outcome, _)| (promql.as_str(), outcome.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (
                "count by (job) (up{job='prometheus'}) * 2 or count by (job) (up{job='opsbot'})",
                "ok"
            ),
            (
                "label_replace(sin(vector(time() / 20)), 'k', 'a', '', '') or label_replace(sin(vector(time() / 20)) + 2, 'k', 'b', '', '') or label_replace(sin(vector(time() / 20)) + 4, 'k', 'c', '', '') or label_replace(sin(vector(time() / 20)) + 6, 'k', 'd', '', '')",
                "ok"
            ),
            ("sum(rate(up[5m])", "invalid"),
            ("no_such_metric_anywhere", "ok"),
            ("no_such_metric_anywhere", "ok"),
            ("count_over_time(vector(1)[2h:1s])", "invalid"),
            ("up", "invalid"),
            ("up", "invalid"),
            ("up", "denied"),
            ("up", "error"),
        ]
    );
    assert!(events[0].2.contains(": 2 series"), "{}", events[0].2);
    assert!(events[1].2.contains(": 4 series"), "{}", events[1].2);
    assert!(events[3].2.contains(": 0 series"), "{}", events[3].2);
    assert!(events[0].2.contains("count by (job)"), "{}", events[0].2);
    let services = audited(&pool, "metrics service").await;
    assert_eq!(services.len(), 3, "{services:?}");
    assert!(
        services[0].2.contains("service api over 10m: 3 panels"),
        "{}",
        services[0].2
    );
}

/// A Prometheus that never answers, and none at all: a timeout and an unreachable server
/// each read on their own (no Prometheus binary needed).
#[sqlx::test(migrator = "opsbot_commands::MIGRATOR")]
async fn a_silent_or_absent_prometheus_is_named_as_such(pool: PgPool) {
    // Accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_addr = silent.local_addr().expect("addr");
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            open.push(stream);
        }
    });
    let mut bot = TestBot::with_config(
        pool.clone(),
        &config(&format!("http://{silent_addr}"), "1s"),
    )
    .await;
    let _ = std::fs::remove_file(token_file());
    let slow = bot
        .say("ana", &["ops"], "/metrics query promql:up range:1h")
        .await;
    assert!(
        slow.content.contains("did not answer within 1s"),
        "{}",
        slow.content
    );
    held.abort();
    drop(bot);

    let closed = free_port();
    let mut bot = TestBot::with_config(
        pool.clone(),
        &config(&format!("http://127.0.0.1:{closed}"), "2s"),
    )
    .await;
    let _ = std::fs::remove_file(token_file());
    let gone = bot.say("ana", &["ops"], "/metrics service name:api").await;
    assert!(
        gone.content.contains("cannot be reached"),
        "{}",
        gone.content
    );
    let events = audited(&pool, "metrics query").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1, "error");
    assert!(events[0].2.contains("did not answer"), "{}", events[0].2);
}
