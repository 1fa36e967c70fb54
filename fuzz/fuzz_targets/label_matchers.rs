//! Label matchers in Alertmanager's syntax (`service="api", severity=~"warn.*"`), as
//! `/alerts silence` and `[[alerts.routes]] matchers` take them: the first line of the input
//! is the list, the rest `name=value` label lines to match against. Parsing and matching
//! must never panic (regexes included).
#![no_main]

use libfuzzer_sys::fuzz_target;
use opsbot_commands::alerts::payload::Labels;
use opsbot_commands::alerts::routing::{Matcher, parse_list};

fuzz_target!(|text: &str| {
    let (list, rest) = text.split_once('\n').unwrap_or((text, ""));
    let labels: Labels = rest
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    if let Ok(matchers) = parse_list(list) {
        for matcher in &matchers {
            let _ = matcher.matches(&labels);
            let _ = matcher.is_regex();
            let _ = matcher.is_negative();
        }
    }
    if let Ok(matcher) = Matcher::parse(list) {
        let _ = matcher.matches(&labels);
    }
});
