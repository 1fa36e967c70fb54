//! When the next request may go out: Discord's global limit (50 requests per second per bot),
//! a global 429's pause, and per-channel buckets that reported `X-RateLimit-Remaining: 0`.
//!
//! Shared by every clone of one dispatcher. Other replicas' dispatchers keep their own
//! pacing; the global limit is split between them ([`Pacing::share`]), and Discord's 429s,
//! which every dispatcher honours, cover what they cannot see of each other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone)]
pub(super) struct Pacing {
    spacing: Duration,
    state: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct State {
    /// Dispatchers sharing the global limit (this one included); at least 1.
    share: u32,
    /// The slot of the most recent request handed out.
    last_request: Option<Instant>,
    /// No request at all before this (a global 429).
    paused_until: Option<Instant>,
    /// No request to a channel's message route before this (its bucket is empty, or it
    /// answered 429).
    channel_blocked_until: HashMap<i64, Instant>,
}

impl Pacing {
    pub(super) fn new(spacing: Duration) -> Pacing {
        Pacing {
            spacing,
            state: Arc::new(Mutex::new(State {
                share: 1,
                last_request: None,
                paused_until: None,
                channel_blocked_until: HashMap::new(),
            })),
        }
    }

    /// `dispatchers` share the global limit: this one keeps that many spacings between its
    /// requests.
    pub(super) fn share(&self, dispatchers: u32) {
        let mut state = self.lock();
        if state.share != dispatchers.max(1) {
            tracing::debug!(dispatchers, "sharing Discord's global rate limit");
        }
        state.share = dispatchers.max(1);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a handful of instants; a panic elsewhere cannot leave it inconsistent.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// When a global pause ends, if one is in force.
    pub(super) fn paused_until(&self) -> Option<Instant> {
        self.lock().paused_until.filter(|at| *at > Instant::now())
    }

    /// How long requests to `channel_id` must still wait (its bucket is empty, or it
    /// answered 429), if they must.
    pub(super) fn channel_blocked_for(&self, channel_id: i64) -> Option<Duration> {
        let now = Instant::now();
        self.lock()
            .channel_blocked_until
            .get(&channel_id)
            .filter(|until| **until > now)
            .map(|until| *until - now)
    }

    /// Reserves the next slot for a request to `channel_id` and returns it: the caller sleeps
    /// until then. Two reservations are never closer than the spacing.
    pub(super) fn reserve(&self, channel_id: i64) -> Instant {
        let mut state = self.lock();
        let mut at = Instant::now();
        if let Some(last) = state.last_request {
            at = at.max(last + self.spacing.saturating_mul(state.share));
        }
        if let Some(paused) = state.paused_until {
            at = at.max(paused);
        }
        if let Some(blocked) = state.channel_blocked_until.get(&channel_id) {
            at = at.max(*blocked);
        }
        state.last_request = Some(at);
        at
    }

    /// Hold every request until `after` from now (a global 429).
    pub(super) fn pause_all(&self, after: Duration) {
        let until = Instant::now() + after;
        let mut state = self.lock();
        state.paused_until = Some(state.paused_until.map_or(until, |p| p.max(until)));
    }

    /// Hold requests to `channel_id` until `after` from now (its bucket is empty).
    pub(super) fn block_channel(&self, channel_id: i64, after: Duration) {
        let now = Instant::now();
        let until = now + after;
        let mut state = self.lock();
        // Forget buckets that have reset, so the map stays as small as the busy channels.
        state.channel_blocked_until.retain(|_, at| *at > now);
        let entry = state
            .channel_blocked_until
            .entry(channel_id)
            .or_insert(until);
        *entry = (*entry).max(until);
    }
}
