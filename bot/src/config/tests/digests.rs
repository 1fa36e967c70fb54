//! `[[digests]]`: defaults, and each problem naming its key and digest.

use std::time::Duration;

use opsbot_commands::digest::{Section, WhenEmpty};

use super::*;

#[test]
fn digests_load_with_their_defaults() {
    let text = r#"
[[digests]]
name = "daily"
cron = "0 0 9 * * Mon-Fri"
timezone = "Europe/Berlin"
channel = 111
include = ["incidents", "deploys"]
when_empty = "skip"
grace = "30m"

[[digests]]
name = "hourly"
cron = "0 0 * * * *"
channel = 222
"#;
    let config = load_text(text, &[]).expect("loads");
    let [daily, hourly] = config.digests.as_slice() else {
        panic!("two digests: {:?}", config.digests);
    };
    assert_eq!(daily.name, "daily");
    assert_eq!(daily.schedule.zone().name(), "Europe/Berlin");
    assert_eq!(daily.include, [Section::Incidents, Section::Deploys]);
    assert_eq!(daily.when_empty, WhenEmpty::Skip);
    assert_eq!(daily.grace, Duration::from_secs(1800));
    assert_eq!(hourly.schedule.zone().name(), "UTC");
    assert_eq!(hourly.include, Section::ALL);
    assert_eq!(hourly.when_empty, WhenEmpty::Post);
    assert_eq!(hourly.grace, Duration::from_secs(3600));
    assert_eq!(hourly.channel, 222);
}

#[test]
fn digest_problems_name_the_key_and_the_digest() {
    let text = r#"
[[digests]]
name = "daily"
cron = "0 9 * * *"
timezone = "Europe/Berlinn"
channel = 111
include = ["deploys", "weather"]
when_empty = "never"
every = "day"

[[digests]]
name = "daily"
cron = "0 0 9 * * *"

[[digests]]
name = "Weekly Digest"
cron = "0 0 9 * * Mon"
channel = 1
include = []
"#;
    insta::assert_snapshot!(problems_of(text, &[]), @r##"
    digests[0].every: unknown key (opsbot.toml:9:1)
      hint: known keys in [[digests]]: name, cron, timezone, channel, include, when_empty, grace
    digests[0].timezone: digest "daily": timezone "Europe/Berlinn" is not an IANA time zone name; write e.g. "Europe/Berlin" or "UTC" (opsbot.toml:5:1)
    digests[0].include[1]: digest "daily": `weather` is not a section (opsbot.toml:7:23)
      hint: write a list of sections: deploys, incidents, alerts, audit
    digests[0].when_empty: digest "daily": `never` is not a when_empty choice (opsbot.toml:8:1)
      hint: write "post" (says all quiet) or "skip" (posts nothing)
    digests[1].name: digest "daily" is configured twice (opsbot.toml:12:1)
      hint: give each [[digests]] entry its own name
    digests[1].channel: digest "#1" has no channel (opsbot.toml:11:1)
      hint: add channel = <the channel id> to post it to
    digests[2].name: `Weekly Digest` is not a valid digest name (opsbot.toml:16:1)
      hint: use 1 to 32 lowercase letters, digits, `-` or `_`, starting with a letter or digit
    digests[2].include: digest "#2" includes no section (opsbot.toml:19:1)
      hint: write a list of sections: deploys, incidents, alerts, audit
    "##);
}

#[test]
fn a_bad_cron_names_the_digest_and_the_problem() {
    let text = "[[digests]]\nname = \"daily\"\ncron = \"0 0 9 * *\"\nchannel = 1\n";
    insta::assert_snapshot!(problems_of(text, &[]), @r#"digests[0].cron: digest "daily": cron "0 0 9 * *" has 5 fields; write six, seconds first: sec min hour day-of-month month day-of-week, e.g. "0 0 9 * * Mon-Fri" (opsbot.toml:3:1)"#);
    let text = "[[digests]]\nname = \"daily\"\ncron = \"0 0 9 * * Funday\"\nchannel = 1\n";
    let problems = problems_of(text, &[]);
    assert!(
        problems.starts_with(
            "digests[0].cron: digest \"daily\": cron \"0 0 9 * * Funday\" is not a cron expression"
        ),
        "{problems}"
    );
    let text = "digests = 3\n";
    assert!(problems_of(text, &[]).contains("expected [[digests]] entries"));
}
