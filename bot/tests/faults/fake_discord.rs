//! A Discord that rate-limits as Discord does, for the outbox dispatcher: a bucket per
//! channel (`X-RateLimit-Limit`/`Remaining`/`Reset`/`Reset-After`/`Bucket` on every answer, 429
//! with `X-RateLimit-Scope: user` past it), the global limit of 50 requests in any second
//! (429 with `X-RateLimit-Global: true`), `enforce_nonce` (a repeated nonce gets the message
//! made for it the first time), and, while `bursts` is on, scripted trouble in a 3 s
//! cycle: a second of global 429s (half with `X-RateLimit-Global`, half saying so only in
//! the body), a second of per-resource 429s without the global header
//! (`X-RateLimit-Scope: shared`), a second of 500/502/503, half of them after the message was
//! made (the answer is lost, the message exists).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;
use wiremock::{Request, Respond, ResponseTemplate};

/// Discord's global limit: requests per second per bot.
pub const GLOBAL_LIMIT: usize = 50;
/// Messages per channel per bucket window (Discord does not publish its numbers; this is
/// of the order it answers with).
pub const BUCKET_LIMIT: u32 = 5;
pub const BUCKET_WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct Tally {
    pub requests: u64,
    /// 429s the fake's limits gave (what a client that reads the headers avoids).
    pub limit_429s: u64,
    /// 429s scripted by the bursts, global and not.
    pub burst_global_429s: u64,
    pub burst_route_429s: u64,
    pub burst_5xx: u64,
    /// 5xx answers given after the message was made.
    pub lost_answers: u64,
    /// Messages made, by nonce.
    pub made: HashMap<String, Made>,
    /// Requests per whole second since the start.
    pub per_second: Vec<u32>,
    /// The most requests seen in any sliding second.
    pub max_in_any_second: usize,
    /// Requests after the first second (when the limits are learnt) and their limit 429s.
    pub learnt_requests: u64,
    pub learnt_limit_429s: u64,
}

/// The one message made for a nonce.
#[derive(Debug, Clone, Copy)]
pub struct Made {
    pub id: u64,
    /// 2xx answers given for it: a dispatcher that records what it sent needs one.
    pub ok_answers: u32,
}

#[derive(Debug)]
struct State {
    started: Instant,
    recent: VecDeque<Instant>,
    buckets: HashMap<u64, (Instant, u32)>,
    bursts: bool,
    tally: Tally,
}

#[derive(Clone, Debug)]
pub struct RateLimitedDiscord {
    state: Arc<Mutex<State>>,
}

impl RateLimitedDiscord {
    pub fn new() -> RateLimitedDiscord {
        RateLimitedDiscord {
            state: Arc::new(Mutex::new(State {
                started: Instant::now(),
                recent: VecDeque::new(),
                buckets: HashMap::new(),
                bursts: true,
                tally: Tally::default(),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn stop_bursts(&self) {
        self.lock().bursts = false;
    }

    pub fn tally<T>(&self, read: impl FnOnce(&Tally) -> T) -> T {
        read(&self.lock().tally)
    }
}

fn rate_limited(retry_after: f64, scope: &str, global: bool) -> ResponseTemplate {
    let mut response = ResponseTemplate::new(429)
        .set_body_json(json!({
            "message": "You are being rate limited.",
            "retry_after": retry_after,
            "global": global,
        }))
        .insert_header("Retry-After", format!("{}", retry_after.ceil() as u64))
        .insert_header("X-RateLimit-Scope", scope);
    if global {
        response = response.insert_header("X-RateLimit-Global", "true");
    }
    response
}

impl Respond for RateLimitedDiscord {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let now = Instant::now();
        let mut state = self.lock();
        let elapsed = now - state.started;
        let second = elapsed.as_secs() as usize;
        let learnt = elapsed >= Duration::from_secs(1);
        {
            let tally = &mut state.tally;
            tally.requests += 1;
            if tally.per_second.len() <= second {
                tally.per_second.resize(second + 1, 0);
            }
            tally.per_second[second] += 1;
            if learnt {
                tally.learnt_requests += 1;
            }
        }
        while state
            .recent
            .front()
            .is_some_and(|at| now - *at >= Duration::from_secs(1))
        {
            state.recent.pop_front();
        }
        state.recent.push_back(now);
        state.tally.max_in_any_second = state.tally.max_in_any_second.max(state.recent.len());
        if state.recent.len() > GLOBAL_LIMIT {
            state.tally.limit_429s += 1;
            if learnt {
                state.tally.learnt_limit_429s += 1;
            }
            return rate_limited(0.1, "global", true);
        }

        let channel: u64 = request
            .url
            .path()
            .trim_start_matches("/api/v10/channels/")
            .split('/')
            .next()
            .and_then(|id| id.parse().ok())
            .unwrap_or(0);
        let bucket = state.buckets.entry(channel).or_insert((now, 0));
        if now - bucket.0 >= BUCKET_WINDOW {
            *bucket = (now, 0);
        }
        let reset_after = BUCKET_WINDOW.saturating_sub(now - bucket.0).as_secs_f64();
        if bucket.1 >= BUCKET_LIMIT {
            state.tally.limit_429s += 1;
            if learnt {
                state.tally.learnt_limit_429s += 1;
            }
            return rate_limited(reset_after, "user", false)
                .insert_header("X-RateLimit-Limit", BUCKET_LIMIT.to_string())
                .insert_header("X-RateLimit-Remaining", "0")
                .insert_header("X-RateLimit-Reset-After", format!("{reset_after:.3}"))
                .insert_header("X-RateLimit-Bucket", "messages");
        }
        bucket.1 += 1;
        let remaining = BUCKET_LIMIT - bucket.1;

        // Scripted trouble, on every other request of its second.
        let n = state.tally.requests;
        if state.bursts && n.is_multiple_of(2) {
            match (elapsed.as_secs() % 3, n % 4) {
                (0, 0) => {
                    state.tally.burst_global_429s += 1;
                    return rate_limited(0.25, "global", true);
                }
                (0, _) => {
                    // Global by its body only: no X-RateLimit-Global, no scope header.
                    state.tally.burst_global_429s += 1;
                    return ResponseTemplate::new(429)
                        .set_body_json(json!({
                            "message": "You are being rate limited.",
                            "retry_after": 0.25,
                            "global": true,
                        }))
                        .insert_header("Retry-After", "1");
                }
                (1, _) => {
                    state.tally.burst_route_429s += 1;
                    return rate_limited(0.2, "shared", false);
                }
                (_, 0) => {
                    state.tally.burst_5xx += 1;
                    return ResponseTemplate::new(502).set_body_string("<html>Bad Gateway</html>");
                }
                _ => {
                    // Made, then the answer is lost.
                    state.tally.burst_5xx += 1;
                    state.tally.lost_answers += 1;
                    if let Some(nonce) = nonce_of(request) {
                        let id = 1_000_000 + state.tally.made.len() as u64;
                        state
                            .tally
                            .made
                            .entry(nonce)
                            .or_insert(Made { id, ok_answers: 0 });
                    }
                    return ResponseTemplate::new(503);
                }
            }
        }

        let Some(nonce) = nonce_of(request) else {
            return ResponseTemplate::new(400)
                .set_body_json(json!({"message": "nonce required", "code": 50035}));
        };
        let next = 1_000_000 + state.tally.made.len() as u64;
        let made = state.tally.made.entry(nonce.clone()).or_insert(Made {
            id: next,
            ok_answers: 0,
        });
        made.ok_answers += 1;
        let id = made.id;
        let reset = chrono::Utc::now().timestamp_millis() as f64 / 1000.0 + reset_after;
        ResponseTemplate::new(200)
            .set_body_json(json!({ "id": id.to_string(), "nonce": nonce }))
            .insert_header("X-RateLimit-Limit", BUCKET_LIMIT.to_string())
            .insert_header("X-RateLimit-Remaining", remaining.to_string())
            .insert_header("X-RateLimit-Reset", format!("{reset:.3}"))
            .insert_header("X-RateLimit-Reset-After", format!("{reset_after:.3}"))
            .insert_header("X-RateLimit-Bucket", "messages")
    }
}

fn nonce_of(request: &Request) -> Option<String> {
    let body: Value = serde_json::from_slice(&request.body).ok()?;
    if body["enforce_nonce"] != json!(true) {
        return None;
    }
    body["nonce"].as_str().map(str::to_owned)
}
