//! "Did you mean …?": the known name nearest to a mistyped one, as a client suggests it.

/// The candidate closest to `typed` (case-insensitive, transpositions count as one edit), if
/// it is close enough to be what was meant: at most 2 edits, and fewer than half the
/// letters typed (`/dep` is not `/metrics`).
pub fn nearest<'a>(typed: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let typed = typed.to_lowercase();
    let limit = 2.min(typed.chars().count().saturating_sub(1) / 2).max(1);
    candidates
        .into_iter()
        .map(|c| (strsim::osa_distance(&typed, &c.to_lowercase()), c))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMANDS: [&str; 4] = ["deploy", "digest", "metrics", "audit"];

    #[test]
    fn a_typo_finds_the_command() {
        assert_eq!(nearest("deplyo", COMMANDS), Some("deploy"));
        assert_eq!(nearest("DEPLOI", COMMANDS), Some("deploy"));
        assert_eq!(nearest("audti", COMMANDS), Some("audit"));
        assert_eq!(nearest("metric", COMMANDS), Some("metrics"));
    }

    #[test]
    fn something_else_finds_nothing() {
        assert_eq!(nearest("inspect", COMMANDS), None);
        assert_eq!(nearest("x", COMMANDS), None);
        assert_eq!(nearest("dep", COMMANDS), None);
    }
}
