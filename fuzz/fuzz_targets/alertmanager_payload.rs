//! Alertmanager's webhook payload (version 4): any body parses or is refused with a reason.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opsbot_commands::alerts::payload;

fuzz_target!(|body: &[u8]| {
    if let Err(e) = payload::parse(body) {
        let _ = e.to_string();
    }
});
