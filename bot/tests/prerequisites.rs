//! A test whose program is missing skips loudly, and fails instead with `OPSBOT_REQUIRE_ALL=1`
//! (as `.ci/run` sets it): this binary runs its own ignored probe test both ways.

mod support;

use std::process::Command;

use support::prerequisites::REQUIRE_ALL;

const MISSING: &str = "/nonexistent/opsbot-probe-program";

/// Run only by [`a_missing_program_skips_loudly_and_fails_when_all_are_required`].
#[test]
#[ignore = "a probe, run by the test below"]
fn probe_needs_a_missing_program() {
    if !support::prerequisites::program(MISSING, "apt install opsbot-probe") {
        return;
    }
    panic!("{MISSING} exists?");
}

fn run_probe(require_all: Option<&str>) -> (bool, String) {
    let mut command = Command::new(std::env::current_exe().expect("this test binary"));
    command.args(["--ignored", "--exact", "probe_needs_a_missing_program"]);
    command.env_remove(REQUIRE_ALL);
    if let Some(value) = require_all {
        command.env(REQUIRE_ALL, value);
    }
    let output = command.output().expect("run the probe");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn a_missing_program_skips_loudly_and_fails_when_all_are_required() {
    let (passed, text) = run_probe(None);
    assert!(passed, "without {REQUIRE_ALL} the probe skips: {text}");
    assert!(
        text.contains(&format!(
            "SKIPPED probe_needs_a_missing_program: {MISSING} is not installed (apt install opsbot-probe)"
        )),
        "the skip names the program and the package, past libtest's capture: {text}"
    );

    let (passed, text) = run_probe(Some("1"));
    assert!(!passed, "with {REQUIRE_ALL}=1 the probe fails: {text}");
    assert!(
        text.contains(&format!(
            "{REQUIRE_ALL} is set, so a missing prerequisite fails the test"
        )),
        "{text}"
    );
    assert!(text.contains("1 failed"), "{text}");

    let (passed, _) = run_probe(Some("0"));
    assert!(passed, "{REQUIRE_ALL}=0 is off");
}
