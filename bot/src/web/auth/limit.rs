//! Failed logins per source address: after [`MAX_FAILURES`] failures within [`WINDOW`], an
//! address gets 429 (with `Retry-After`) until the window ends, before its token or Discord
//! code is even looked at. It applies to the token form, the Discord callback and bearer
//! tokens (which would otherwise be the way around it).
//!
//! The address is the TCP peer ([`super::super::client::ClientAddr`]): behind a reverse proxy
//! every caller shares the proxy's address, so one guesser can lock everyone out for a
//! window. IPv6 addresses are counted per /64, the block one subscriber usually holds.
//!
//! Memory is bounded: at most [`MAX_ADDRESSES`] addresses are tracked; when that many have
//! failed within one window, further addresses share one bucket (so a guesser with very many
//! addresses is throttled as one, and so, meanwhile, is every new address — sessions and
//! valid bearer tokens from tracked addresses are unaffected).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Failed attempts an address may make per [`WINDOW`]: plenty for mistyping a token, far too
/// few to guess one.
pub const MAX_FAILURES: u32 = 10;
/// How long failures count, from an address's first failure.
pub const WINDOW: Duration = Duration::from_secs(5 * 60);
/// Addresses tracked at once (a few hundred kB) before new ones share one bucket.
pub const MAX_ADDRESSES: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

/// Counts failed logins per address; cheap to clone, clones share the counts.
#[derive(Debug, Clone, Default)]
pub struct LoginAttempts {
    /// `None` is the shared bucket of addresses beyond [`MAX_ADDRESSES`].
    windows: Arc<Mutex<HashMap<Option<IpAddr>, Window>>>,
}

/// The unit that is counted: an IPv4 address, or the /64 of an IPv6 one.
fn bucket_of(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl LoginAttempts {
    /// How long `address` must wait before it may try again, if it has failed too often.
    pub fn retry_after(&self, address: IpAddr) -> Option<Duration> {
        self.retry_after_at(address, Instant::now())
    }

    /// Counts one failed attempt of `address`.
    pub fn failed(&self, address: IpAddr) {
        self.failed_at(address, Instant::now());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Option<IpAddr>, Window>> {
        match self.windows.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn retry_after_at(&self, address: IpAddr, now: Instant) -> Option<Duration> {
        let windows = self.lock();
        let key = Some(bucket_of(address));
        let window = match windows.get(&key) {
            Some(window) => window,
            None if windows.len() >= MAX_ADDRESSES => windows.get(&None)?,
            None => return None,
        };
        let elapsed = now.saturating_duration_since(window.started);
        (window.failures >= MAX_FAILURES && elapsed < WINDOW).then(|| WINDOW - elapsed)
    }

    fn failed_at(&self, address: IpAddr, now: Instant) {
        let mut windows = self.lock();
        let mut key = Some(bucket_of(address));
        if !windows.contains_key(&key) && windows.len() >= MAX_ADDRESSES {
            windows.retain(|_, w| now.saturating_duration_since(w.started) < WINDOW);
            if windows.len() >= MAX_ADDRESSES {
                key = None;
            }
        }
        let window = windows.entry(key).or_insert(Window {
            started: now,
            failures: 0,
        });
        if now.saturating_duration_since(window.started) >= WINDOW {
            *window = Window {
                started: now,
                failures: 0,
            };
        }
        window.failures = window.failures.saturating_add(1);
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn an_address_waits_after_too_many_failures_until_its_window_ends() {
        let attempts = LoginAttempts::default();
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES {
            assert_eq!(attempts.retry_after_at(v4(1), t0), None, "attempt {i}");
            attempts.failed_at(v4(1), t0);
        }
        assert_eq!(attempts.retry_after_at(v4(1), t0), Some(WINDOW));
        let later = t0 + Duration::from_secs(60);
        assert_eq!(
            attempts.retry_after_at(v4(1), later),
            Some(WINDOW - Duration::from_secs(60))
        );
        // Another address is not affected.
        assert_eq!(attempts.retry_after_at(v4(2), t0), None);
        // The window ends: a fresh start.
        let after = t0 + WINDOW;
        assert_eq!(attempts.retry_after_at(v4(1), after), None);
        attempts.failed_at(v4(1), after);
        assert_eq!(attempts.retry_after_at(v4(1), after), None);
    }

    #[test]
    fn ipv6_counts_per_64() {
        let attempts = LoginAttempts::default();
        let now = Instant::now();
        for i in 0..MAX_FAILURES {
            let address: IpAddr = format!("2001:db8:1:2::{:x}", i + 1).parse().expect("v6");
            attempts.failed_at(address, now);
        }
        let neighbour: IpAddr = "2001:db8:1:2:ffff::1".parse().expect("v6");
        let elsewhere: IpAddr = "2001:db8:1:3::1".parse().expect("v6");
        assert!(attempts.retry_after_at(neighbour, now).is_some());
        assert_eq!(attempts.retry_after_at(elsewhere, now), None);
        let mapped: IpAddr = "::ffff:192.0.2.9".parse().expect("mapped");
        assert_eq!(bucket_of(mapped), v4(9));
    }

    #[test]
    fn memory_is_bounded_and_overflow_is_throttled_together() {
        let attempts = LoginAttempts::default();
        let now = Instant::now();
        for i in 0..(MAX_ADDRESSES as u32) {
            attempts.failed_at(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)), now);
        }
        assert_eq!(attempts.tracked(), MAX_ADDRESSES);
        for i in 0..MAX_FAILURES {
            attempts.failed_at(IpAddr::from(std::net::Ipv4Addr::from(0x0b00_0000 + i)), now);
        }
        assert_eq!(attempts.tracked(), MAX_ADDRESSES + 1);
        let newcomer = IpAddr::from(std::net::Ipv4Addr::from(0x0c00_0000));
        assert!(attempts.retry_after_at(newcomer, now).is_some());
        // Once the old windows have ended they make room again.
        let later = now + WINDOW;
        attempts.failed_at(newcomer, later);
        assert_eq!(attempts.tracked(), 1);
        assert_eq!(attempts.retry_after_at(newcomer, later), None);
    }
}
