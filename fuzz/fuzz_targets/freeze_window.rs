//! The freeze window parser (`freeze = ["Fri 16:00 - Mon 08:00 America/Los_Angeles"]`): any
//! text parses or is refused with a reason; a parsed window answers its questions for any
//! instant without panicking.
#![no_main]

use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use opsbot_commands::deploy::freeze::FreezeWindow;

fuzz_target!(|data: (&str, i64)| {
    let (text, seconds) = data;
    if let Ok(window) = FreezeWindow::parse(text) {
        let _ = window.describe();
        let _ = window.to_string();
        // Any instant chrono can represent, the year 2026 included often.
        let at = DateTime::<Utc>::from_timestamp(seconds % 253_402_300_799, 0)
            .unwrap_or_else(Utc::now);
        let _ = window.contains(at);
        let _ = window.ends_after(at);
    }
});
