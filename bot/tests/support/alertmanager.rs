//! The real Alertmanager for tests (Debian's `prometheus-alertmanager`): started on a
//! loopback port with `--cluster.listen-address=` (no other port) and a temp storage dir,
//! routing to opsbot's webhook with the bearer token; alerts pushed through its v2 API.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use opsbot::emulator::EmulatorEvent;
use serde_json::{Value, json};

use super::TestBot;

/// The bearer token Alertmanager sends to opsbot's webhook in these tests.
pub const TOKEN: &str = "am-webhook-token-for-tests";
pub const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

/// The Alertmanager this test started; stopped (by its own pid) when dropped.
pub struct Alertmanager {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

pub async fn start_alertmanager(webhook: &str, port: u16) -> Alertmanager {
    let dir = tempfile::tempdir().expect("dir");
    let config = format!(
        r#"
route:
  receiver: opsbot
  group_by: [alertname, service]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
receivers:
  - name: opsbot
    webhook_configs:
      - url: "{webhook}"
        send_resolved: true
        http_config:
          authorization:
            credentials: "{TOKEN}"
"#
    );
    let file = dir.path().join("alertmanager.yml");
    std::fs::write(&file, config).expect("config");
    let url = format!("http://127.0.0.1:{port}");
    let child = Command::new(ALERTMANAGER)
        .arg(format!("--config.file={}", file.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!("--web.external-url={url}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus-alertmanager starts");
    let am = Alertmanager {
        child,
        url,
        _dir: dir,
    };
    let http = reqwest::Client::new();
    let started = tokio::time::Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{}/-/ready", am.url)).send().await
            && r.status().is_success()
        {
            return am;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "Alertmanager never became ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn push(am: &Alertmanager, labels: Value, resolved: bool) {
    let mut alert = json!({
        "labels": labels,
        "annotations": { "summary": "error rate above 5%" },
        "generatorURL": "http://prometheus.example/graph",
    });
    if resolved {
        alert["endsAt"] = json!(chrono::Utc::now().to_rfc3339());
    }
    let response = reqwest::Client::new()
        .post(format!("{}/api/v2/alerts", am.url))
        .json(&json!([alert]))
        .send()
        .await
        .expect("push");
    assert!(response.status().is_success(), "{}", response.status());
}

pub async fn silences(am: &Alertmanager) -> Vec<Value> {
    reqwest::Client::new()
        .get(format!("{}/api/v2/silences", am.url))
        .send()
        .await
        .expect("silences")
        .json::<Vec<Value>>()
        .await
        .expect("json")
}

pub async fn active_silences(am: &Alertmanager) -> Vec<Value> {
    silences(am)
        .await
        .into_iter()
        .filter(|s| s["status"]["state"] == "active")
        .collect()
}

pub fn state_of(all: &[Value], id: &str) -> String {
    all.iter()
        .find(|s| s["id"] == id)
        .and_then(|s| s["status"]["state"].as_str())
        .unwrap_or("absent")
        .to_owned()
}

/// All the text of an event's embeds.
pub fn embed_text(event: &EmulatorEvent) -> String {
    event
        .embeds
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn labels_of_components(event: &EmulatorEvent) -> Vec<String> {
    event
        .components
        .iter()
        .flat_map(|row| row["components"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| {
            c["label"]
                .as_str()
                .or(c["placeholder"].as_str())
                .map(str::to_owned)
        })
        .collect()
}

pub async fn select(bot: &mut TestBot, name: &str, menu: &str, option: &str) -> EmulatorEvent {
    let member = bot.emulator.member(name, None);
    let interaction = bot
        .emulator
        .select(member, menu, option)
        .unwrap_or_else(|e| panic!(":select {menu} {option}: {e}"));
    bot.answer_to(interaction).await
}
