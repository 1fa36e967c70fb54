//! The emulator's gateway: Hello, Identify → READY + GUILD_CREATE, heartbeat ACKs, and the
//! dispatches the emulator sends (INTERACTION_CREATE).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::Shared;

/// The heartbeat interval announced in Hello. Real Discord says ~41 s; a short one would only
/// add noise to the logs here.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(41);

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/gateway", get(upgrade))
        .with_state(shared)
}

async fn upgrade(State(shared): State<Arc<Shared>>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| session(shared, socket))
}

async fn session(shared: Arc<Shared>, mut socket: WebSocket) {
    let hello = json!({ "op": 10, "d": { "heartbeat_interval": HEARTBEAT_INTERVAL.as_millis() as u64 }, "s": null, "t": null });
    if socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    let (outbox, mut dispatches) = mpsc::unbounded_channel::<Value>();
    let mut sequence: u64 = 0;
    let mut identified = false;
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                let Some(Ok(message)) = incoming else { break };
                let text = match message {
                    Message::Text(text) => text.to_string(),
                    Message::Binary(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                    Message::Close(_) => break,
                    _ => continue,
                };
                let Ok(payload) = serde_json::from_str::<Value>(&text) else {
                    tracing::warn!("emulator gateway: ignoring a frame that is not JSON");
                    continue;
                };
                match payload["op"].as_u64() {
                    Some(1) => {
                        let ack = json!({ "op": 11, "d": null, "s": null, "t": null });
                        if socket.send(Message::Text(ack.to_string().into())).await.is_err() { break }
                    }
                    Some(2) if !identified => {
                        identified = true;
                        let (ready, guild_create) = {
                            let mut state = shared.state();
                            state.shards.push(outbox.clone());
                            let guild = &state.guild;
                            let bot = guild.member(guild.bot_user_id).map(|m| guild.user_json(m)).unwrap_or(Value::Null);
                            let mut user = bot.clone();
                            user["verified"] = json!(true);
                            user["mfa_enabled"] = json!(false);
                            user["flags"] = json!(0);
                            let ready = json!({
                                "v": 10,
                                "user": user,
                                "guilds": [{ "id": guild.id.to_string(), "unavailable": true }],
                                "session_id": format!("emulator-session-{}", guild.ids.peek()),
                                "resume_gateway_url": shared.base_url.replace("http://", "ws://") + "/gateway",
                                "shard": [0, 1],
                                "application": { "id": guild.application_id.to_string(), "flags": 0 },
                                "private_channels": [],
                                "presences": [],
                                "relationships": [],
                                "user_settings": {},
                                "guild_join_requests": [],
                                "geo_ordered_rtc_regions": [],
                            });
                            (ready, guild.guild_create_json())
                        };
                        for (event, data) in [("READY", ready), ("GUILD_CREATE", guild_create)] {
                            sequence += 1;
                            let frame = json!({ "op": 0, "t": event, "s": sequence, "d": data });
                            if socket.send(Message::Text(frame.to_string().into())).await.is_err() { return }
                        }
                    }
                    Some(6) => {
                        // Resume: the emulator keeps no replay buffer; ask for a fresh session.
                        let invalid = json!({ "op": 9, "d": false, "s": null, "t": null });
                        if socket.send(Message::Text(invalid.to_string().into())).await.is_err() { break }
                    }
                    _ => {}
                }
            }
            Some(mut frame) = dispatches.recv() => {
                sequence += 1;
                frame["s"] = json!(sequence);
                if socket.send(Message::Text(frame.to_string().into())).await.is_err() { break }
            }
        }
    }
}
