//! A webhook deployer's report as it arrives: the two signature headers and the body, split
//! from the input at the first two newlines. Parsing the headers, verifying the signature and
//! reading the body must refuse or accept, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opsbot_commands::deploy::backends::webhook::{self, ProgressReport};

const NOW: i64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let timestamp = parts.next().and_then(|p| std::str::from_utf8(p).ok());
    let signature = parts.next().and_then(|p| std::str::from_utf8(p).ok());
    let body = parts.next().unwrap_or_default();
    let target = webhook::target("POST", &webhook::report_path(7));
    if let Ok(headers) = webhook::parse_headers(timestamp, signature, NOW) {
        let _ = headers.verify(b"s3cret", &target, body);
    }
    let _ = webhook::verify(b"s3cret", timestamp, signature, &target, body, NOW);
    if let Ok(report) = serde_json::from_slice::<ProgressReport>(body) {
        let _ = serde_json::to_string(&report);
    }
});
