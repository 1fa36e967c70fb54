//! Programs and services a few tests need that a fresh machine may lack (Chromium, Prometheus,
//! Alertmanager, the Pub/Sub emulator, a NATS server). Such a test asks first and returns early
//! when one is missing: the skip is printed loudly on stderr, past the test harness's capture,
//! with what to install. With `OPSBOT_REQUIRE_ALL=1` (set by `.ci/run`) a missing prerequisite
//! fails the test instead, so CI always runs them all.

use std::io::Write as _;
use std::net::{TcpStream, ToSocketAddrs as _};
use std::path::Path;
use std::time::Duration;

/// The variable that turns every skip into a failure.
pub const REQUIRE_ALL: &str = "OPSBOT_REQUIRE_ALL";

/// How long a service gets to accept a TCP connection before it counts as absent (a local
/// server accepts in microseconds).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether the program at `path` is installed; `install` says how to get it (`apt install …`).
pub fn program(path: &str, install: &str) -> bool {
    Path::new(path).is_file() || skip(&format!("{path} is not installed ({install})"))
}

/// Whether something accepts connections at `addr`; `install` says how to get it running.
pub fn service(addr: &str, install: &str) -> bool {
    let reachable = addr
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| TcpStream::connect_timeout(&a, CONNECT_TIMEOUT).is_ok());
    reachable || skip(&format!("nothing answers on {addr} ({install})"))
}

/// Reports a missing prerequisite: a loud skip, or with [`REQUIRE_ALL`] a failure.
fn skip(why: &str) -> bool {
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_owned();
    if required() {
        panic!("{test}: {why}; {REQUIRE_ALL} is set, so a missing prerequisite fails the test");
    }
    // Straight to the file descriptor: libtest captures `eprintln!` of tests that pass.
    let _ = writeln!(
        std::io::stderr(),
        "\nSKIPPED {test}: {why}\n        (set {REQUIRE_ALL}=1 to make this a failure)\n"
    );
    false
}

fn required() -> bool {
    std::env::var_os(REQUIRE_ALL).is_some_and(|v| !v.is_empty() && v != "0")
}
