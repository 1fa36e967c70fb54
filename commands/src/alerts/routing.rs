//! Which channel an alert group goes to: `[[alerts.routes]]`, first match wins, a route
//! without matchers matches everything. Matchers are Alertmanager's own syntax:
//! `severity="critical"`, `service=~"api|web"`, `team!="data"`, `env!~"dev|test"`; regular
//! expressions are anchored at both ends, as in Alertmanager.

use std::fmt;

use regex::Regex;

use super::payload::Labels;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Equal,
    NotEqual,
    Matches,
    NotMatches,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Equal => "=",
            Op::NotEqual => "!=",
            Op::Matches => "=~",
            Op::NotMatches => "!~",
        }
    }
}

/// One label matcher.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: Op,
    pub value: String,
    regex: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Matcher) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.as_str(), self.value)
    }
}

impl Matcher {
    /// Parses one matcher; the error says what is wrong and shows the expected form.
    pub fn parse(text: &str) -> Result<Matcher, String> {
        let text = text.trim();
        let at = text
            .find(['=', '!'])
            .ok_or_else(|| format!("`{text}` has no operator; write name=\"value\", name!=\"value\", name=~\"regex\" or name!~\"regex\""))?;
        let name = text[..at].trim();
        let rest = &text[at..];
        let (op, value) = if let Some(v) = rest.strip_prefix("=~") {
            (Op::Matches, v)
        } else if let Some(v) = rest.strip_prefix("!~") {
            (Op::NotMatches, v)
        } else if let Some(v) = rest.strip_prefix("!=") {
            (Op::NotEqual, v)
        } else if let Some(v) = rest.strip_prefix('=') {
            (Op::Equal, v)
        } else {
            return Err(format!("`{text}`: unknown operator; use =, !=, =~ or !~"));
        };
        let valid_name = !name.is_empty()
            && name
                .chars()
                .enumerate()
                .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
        if !valid_name {
            return Err(format!(
                "`{text}`: `{name}` is not a label name (letters, digits and _, not starting with a digit)"
            ));
        }
        let value = value.trim();
        let value = if let Some(inner) = value.strip_prefix('"') {
            let inner = inner
                .strip_suffix('"')
                .ok_or_else(|| format!("`{text}`: the value's closing quote is missing"))?;
            unescape(inner)
        } else if value.contains(['"', ',', '{', '}']) {
            return Err(format!(
                "`{text}`: quote the value: {name}{}\"...\"",
                op.as_str()
            ));
        } else {
            value.to_owned()
        };
        let regex = match op {
            Op::Matches | Op::NotMatches => Some(
                Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| format!("`{text}`: not a valid regular expression: {e}"))?,
            ),
            Op::Equal | Op::NotEqual => None,
        };
        Ok(Matcher {
            name: name.to_owned(),
            op,
            value,
            regex,
        })
    }

    /// An exact `name="value"` matcher (silences of a group).
    pub fn equal(name: &str, value: &str) -> Matcher {
        Matcher {
            name: name.to_owned(),
            op: Op::Equal,
            value: value.to_owned(),
            regex: None,
        }
    }

    /// Whether `labels` satisfy it; a missing label reads as the empty string.
    pub fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.name).map_or("", String::as_str);
        match (self.op, &self.regex) {
            (Op::Equal, _) => value == self.value,
            (Op::NotEqual, _) => value != self.value,
            (Op::Matches, Some(re)) => re.is_match(value),
            (Op::NotMatches, Some(re)) => !re.is_match(value),
            (Op::Matches | Op::NotMatches, None) => false,
        }
    }

    /// Whether it is a regular expression matcher (Alertmanager's `isRegex`).
    pub fn is_regex(&self) -> bool {
        matches!(self.op, Op::Matches | Op::NotMatches)
    }

    /// Whether it is a negative matcher (Alertmanager's `isEqual: false`).
    pub fn is_negative(&self) -> bool {
        matches!(self.op, Op::NotEqual | Op::NotMatches)
    }
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses a list of matchers such as `severity="critical", team=~"a|b"` (the `/alerts
/// silence` form); braces around the list are allowed.
pub fn parse_list(text: &str) -> Result<Vec<Matcher>, String> {
    let text = text.trim();
    let text = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(text);
    let mut parts = Vec::new();
    let (mut current, mut quoted, mut escaped) = (String::new(), false, false);
    for c in text.chars() {
        if escaped {
            escaped = false;
            current.push(c);
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    let matchers = parts
        .iter()
        .filter(|p| !p.trim().is_empty())
        .map(|p| Matcher::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    if matchers.is_empty() {
        return Err("no matchers given; write e.g. alertname=\"HighErrorRate\"".to_owned());
    }
    Ok(matchers)
}

/// What a route does with the groups it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Posted (and kept up to date) at once.
    Immediate,
    /// Stored, shown in digests and `/alerts active`, not posted.
    Digest,
    /// Stored only.
    Drop,
}

impl Mode {
    pub fn parse(text: &str) -> Option<Mode> {
        match text {
            "immediate" => Some(Mode::Immediate),
            "digest" => Some(Mode::Digest),
            "drop" => Some(Mode::Drop),
            _ => None,
        }
    }
}

/// One `[[alerts.routes]]` entry.
#[derive(Debug, Clone)]
pub struct Route {
    pub matchers: Vec<Matcher>,
    pub channel: i64,
    pub mode: Mode,
    /// Role names mentioned (and allowed to ping) in the message.
    pub mention: Vec<String>,
    /// Whether resolutions are posted (the message is edited to resolved).
    pub send_resolved: bool,
}

impl Route {
    pub fn matches(&self, labels: &Labels) -> bool {
        self.matchers.iter().all(|m| m.matches(labels))
    }
}

/// The first route matching `labels`, with its index; `None` when no route matches.
pub fn route<'a>(routes: &'a [Route], labels: &Labels) -> Option<(usize, &'a Route)> {
    routes.iter().enumerate().find(|(_, r)| r.matches(labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn alertmanager_syntax_parses_and_matches_anchored() {
        let l = labels(&[("severity", "critical"), ("team", "platform")]);
        assert!(
            Matcher::parse(r#"severity="critical""#)
                .expect("ok")
                .matches(&l)
        );
        assert!(
            Matcher::parse(r#"team=~"platform|sre""#)
                .expect("ok")
                .matches(&l)
        );
        assert!(
            !Matcher::parse(r#"team=~"plat""#).expect("ok").matches(&l),
            "anchored"
        );
        assert!(Matcher::parse(r#"team!="data""#).expect("ok").matches(&l));
        assert!(!Matcher::parse(r#"team!~"plat.*""#).expect("ok").matches(&l));
        assert!(Matcher::parse("missing=\"\"").expect("ok").matches(&l));
        assert!(
            Matcher::parse("severity=critical")
                .expect("unquoted")
                .matches(&l)
        );
    }

    #[test]
    fn bad_matchers_say_why() {
        for (text, expect) in [
            ("severity", "no operator"),
            (r#"9x="a""#, "not a label name"),
            (r#"a=~"(""#, "regular expression"),
            (r#"a="b"#, "closing quote"),
            (r#"a<"b""#, "no operator"),
        ] {
            let e = Matcher::parse(text).expect_err(text);
            assert!(e.contains(expect), "{text}: {e}");
        }
    }

    #[test]
    fn lists_split_outside_quotes_and_first_route_wins() {
        let list = parse_list(r#"{alertname="A,B", service=~"api|web"}"#).expect("list");
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].value, "A,B");
        assert!(parse_list(" ").is_err());
        let routes = vec![
            Route {
                matchers: vec![Matcher::parse(r#"severity="critical""#).expect("ok")],
                channel: 1,
                mode: Mode::Immediate,
                mention: vec![],
                send_resolved: true,
            },
            Route {
                matchers: vec![],
                channel: 2,
                mode: Mode::Immediate,
                mention: vec![],
                send_resolved: true,
            },
        ];
        assert_eq!(
            route(&routes, &labels(&[("severity", "critical")])).map(|r| r.0),
            Some(0)
        );
        assert_eq!(
            route(&routes, &labels(&[("severity", "info")])).map(|r| r.0),
            Some(1)
        );
    }
}
