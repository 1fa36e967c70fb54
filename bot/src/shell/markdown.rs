//! Discord's markdown as a terminal shows it, for the shell's text mode (`opsbot shell`,
//! piped or not; `--json` keeps Discord's text exactly): the markers are never printed, the
//! meaning is kept. **bold**, *italics*, __underline__, ~~strike~~ and `code` become terminal
//! styles when colours are on and plain text when not; code blocks are indented; block quotes
//! (`> `, `>>> `) get a bar; headings and `-#` subtext lose their marker; `<t:…>` times are
//! shown in the local time zone, as Discord's client does (`<t:…:R>` relative to now);
//! `<@id>`, `<@&id>` and `<#id>` become `@name`, `@role` and `#channel` from the emulator's
//! guild; `[label](url)` becomes `label (url)`; a backslash escape prints the character.

use chrono::{DateTime, FixedOffset, Local, TimeZone as _, Utc};

use crate::emulator::GuildNames;

/// How to show the text: colours or not, the time zone and the time `R` is relative to.
#[derive(Debug, Clone)]
pub struct Style {
    pub color: bool,
    pub zone: Zone,
    /// Unix seconds: "now" for relative times.
    pub now: i64,
}

#[derive(Debug, Clone, Copy)]
pub enum Zone {
    /// The machine's zone (`TZ`, `/etc/localtime`).
    Local,
    /// A fixed offset (tests).
    Fixed(FixedOffset),
}

impl Style {
    /// For this terminal now: colours only when stdout is one and `NO_COLOR` is unset.
    pub fn for_stdout() -> Style {
        let color = std::io::IsTerminal::is_terminal(&std::io::stdout())
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Style {
            color,
            zone: Zone::Local,
            now: Utc::now().timestamp(),
        }
    }

    /// `text` between the ANSI codes `on` and `off`, when colours are on.
    pub fn paint(&self, on: &str, text: &str, off: &str) -> String {
        if self.color && !text.is_empty() {
            format!("\x1b[{on}m{text}\x1b[{off}m")
        } else {
            text.to_owned()
        }
    }
}

const BOLD: (&str, &str) = ("1", "22");
const DIM: (&str, &str) = ("2", "22");
const ITALIC: (&str, &str) = ("3", "23");
const UNDERLINE: (&str, &str) = ("4", "24");
const STRIKE: (&str, &str) = ("9", "29");
const CODE: (&str, &str) = ("36", "39");
const MENTION: (&str, &str) = ("34", "39");

/// A message's text as the terminal shows it.
pub fn render(text: &str, names: &GuildNames, style: &Style) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut rest = text;
    let mut quote_rest = false;
    while !rest.is_empty() {
        // A code block opens with ``` at the start of a line and runs to the next ```.
        let (before, block, after) = split_code_block(rest);
        for line in before.split('\n') {
            if before.is_empty() {
                break;
            }
            let (quoted, line) = if quote_rest {
                (true, line)
            } else if let Some(line) = line.strip_prefix(">>> ") {
                quote_rest = true;
                (true, line)
            } else if let Some(line) = line.strip_prefix("> ") {
                (true, line)
            } else {
                (false, line)
            };
            let shown = block_line(line, names, style);
            out.push(if quoted {
                format!("{} {shown}", style.paint(DIM.0, "│", DIM.1))
            } else {
                shown
            });
        }
        if let Some(code) = block {
            for line in code.split('\n') {
                out.push(format!("    {}", style.paint(CODE.0, line, CODE.1)));
            }
        }
        rest = after;
    }
    out.join("\n")
}

/// Splits off the first code block: the text before it (without the newline that ends it),
/// the block's lines (language tag dropped), and the text after it.
fn split_code_block(text: &str) -> (&str, Option<&str>, &str) {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.starts_with("```")
            && let Some(end) = text[offset + 3..].find("```")
        {
            let inner = &text[offset + 3..offset + 3 + end];
            // "```rust\ncode" drops the language; "```code```" on one line keeps it all.
            let inner = match inner.split_once('\n') {
                Some((tag, code)) if !tag.contains(char::is_whitespace) => code,
                _ => inner,
            };
            let inner = inner.strip_suffix('\n').unwrap_or(inner);
            let before = text[..offset].strip_suffix('\n').unwrap_or(&text[..offset]);
            let after = &text[offset + 3 + end + 3..];
            return (
                before,
                Some(inner),
                after.strip_prefix('\n').unwrap_or(after),
            );
        }
        offset += line.len();
    }
    (text, None, "")
}

/// One line outside code blocks: headings, subtext and list bullets, then inline markup.
fn block_line(line: &str, names: &GuildNames, style: &Style) -> String {
    for marker in ["### ", "## ", "# "] {
        if let Some(heading) = line.strip_prefix(marker) {
            return style.paint(BOLD.0, &inline(heading, names, style), BOLD.1);
        }
    }
    if let Some(subtext) = line.strip_prefix("-# ") {
        return style.paint(DIM.0, &inline(subtext, names, style), DIM.1);
    }
    let indent = line.len() - line.trim_start().len();
    let trimmed = line.trim_start();
    if let Some(item) = trimmed
        .strip_prefix("- ")
        .or_else(|| trimmed.strip_prefix("* "))
    {
        return format!("{}• {}", &line[..indent], inline(item, names, style));
    }
    inline(line, names, style)
}

/// Inline markup: emphasis, code, escapes, links, times and mentions.
fn inline(text: &str, names: &GuildNames, style: &Style) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        let Some(c) = rest.chars().next() else { break };
        if c == '\\'
            && let Some(next) = rest[1..].chars().next()
            && next.is_ascii_punctuation()
        {
            out.push(next);
            i += 1 + next.len_utf8();
            continue;
        }
        if c == '`' {
            let fence = if rest.starts_with("``") { "``" } else { "`" };
            if let Some(end) = rest[fence.len()..].find(fence) {
                let code = &rest[fence.len()..fence.len() + end];
                let code = if fence == "``" { code.trim() } else { code };
                out.push_str(&style.paint(CODE.0, code, CODE.1));
                i += fence.len() * 2 + end;
                continue;
            }
        }
        if c == '<'
            && let Some(end) = rest.find('>')
            && let Some(shown) = angle(&rest[1..end], names, style)
        {
            out.push_str(&shown);
            i += end + 1;
            continue;
        }
        if c == '['
            && let Some((label, url, used)) = masked_link(rest)
        {
            out.push_str(&format!("{} ({url})", inline(label, names, style)));
            i += used;
            continue;
        }
        if let Some((inner, used, codes)) = emphasis(text, i) {
            let shown = inline(inner, names, style);
            out.push_str(&match codes {
                Some((on, off)) => style.paint(on, &shown, off),
                None => shown,
            });
            i += used;
            continue;
        }
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// `**x**`, `*x*`, `__x__`, `_x_`, `~~x~~`, `||x||` starting at `at`: the inner text, the
/// bytes used and the style (`None`: shown plain, a spoiler).
type Emphasis<'a> = (&'a str, usize, Option<(&'static str, &'static str)>);

fn emphasis(text: &str, at: usize) -> Option<Emphasis<'_>> {
    const MARKERS: [(&str, Option<(&str, &str)>); 7] = [
        ("***", Some(("1;3", "22;23"))),
        ("**", Some(BOLD)),
        ("__", Some(UNDERLINE)),
        ("~~", Some(STRIKE)),
        ("||", None),
        ("*", Some(ITALIC)),
        ("_", Some(ITALIC)),
    ];
    let rest = &text[at..];
    let (marker, codes) = MARKERS.iter().find(|(m, _)| rest.starts_with(m))?;
    let body = &rest[marker.len()..];
    // The emphasis must hug its text: `2 * 3 * 4` stays as it is.
    if body.starts_with(char::is_whitespace) || body.is_empty() {
        return None;
    }
    let word_char = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    if *marker == "_" && word_char(text[..at].chars().next_back()) {
        return None; // snake_case_names are not italics
    }
    let mut search = 0;
    while let Some(found) = body[search..].find(marker) {
        let end = search + found;
        let inner = &body[..end];
        let after = body[end + marker.len()..].chars().next();
        let hugs = !inner.is_empty() && !inner.ends_with(char::is_whitespace);
        // `**` must not close a `*`, nor `_` close inside a word.
        let closes = match *marker {
            "*" => !body[end + 1..].starts_with('*') || inner.ends_with('*'),
            "_" => !word_char(after),
            _ => true,
        };
        if hugs && closes {
            return Some((inner, marker.len() * 2 + end, *codes));
        }
        search = end + marker.len();
    }
    None
}

/// `[label](https://…)`: the label, the URL and the bytes used.
fn masked_link(text: &str) -> Option<(&str, &str, usize)> {
    let close = text.find("](")?;
    let label = &text[1..close];
    let url_end = text[close + 2..].find(')')?;
    let url = &text[close + 2..close + 2 + url_end];
    if label.contains('\n') || !(url.starts_with("https://") || url.starts_with("http://")) {
        return None;
    }
    Some((label, url, close + 2 + url_end + 1))
}

/// What is inside `<…>`: a time, a mention, a custom emoji or a bare link.
fn angle(inner: &str, names: &GuildNames, style: &Style) -> Option<String> {
    let id = |s: &str| s.parse::<u64>().ok();
    let mention = |text: String| Some(style.paint(MENTION.0, &text, MENTION.1));
    if let Some(time) = inner.strip_prefix("t:") {
        let (at, kind) = match time.split_once(':') {
            Some((at, kind)) => (at, kind),
            None => (time, "f"),
        };
        return time_text(at.parse().ok()?, kind, style);
    }
    if let Some(role) = inner.strip_prefix("@&") {
        let name = names.roles.get(&id(role)?).map_or("unknown-role", |n| n);
        return mention(format!("@{name}"));
    }
    if let Some(user) = inner.strip_prefix('@') {
        let user = user.strip_prefix('!').unwrap_or(user);
        let name = names.users.get(&id(user)?).map_or("unknown-user", |n| n);
        return mention(format!("@{name}"));
    }
    if let Some(channel) = inner.strip_prefix('#') {
        let name = names
            .channels
            .get(&id(channel)?)
            .map_or("unknown-channel", |n| n);
        return mention(format!("#{name}"));
    }
    if inner.starts_with("https://") || inner.starts_with("http://") {
        return Some(inner.to_owned());
    }
    let emoji = inner
        .strip_prefix("a:")
        .or_else(|| inner.strip_prefix(':'))?;
    let (name, emoji_id) = emoji.split_once(':')?;
    id(emoji_id)?;
    Some(format!(":{name}:"))
}

/// A `<t:AT:KIND>` time as Discord's client shows it, in the style's zone.
fn time_text(at: i64, kind: &str, style: &Style) -> Option<String> {
    let utc = DateTime::<Utc>::from_timestamp(at, 0)?;
    let local: DateTime<FixedOffset> = match style.zone {
        Zone::Local => Local.from_utc_datetime(&utc.naive_utc()).fixed_offset(),
        Zone::Fixed(offset) => offset.from_utc_datetime(&utc.naive_utc()),
    };
    let format = match kind {
        "t" => "%H:%M",
        "T" => "%H:%M:%S",
        "d" => "%Y-%m-%d",
        "D" => "%-d %B %Y",
        "f" => "%-d %B %Y %H:%M",
        "F" => "%A, %-d %B %Y %H:%M",
        "R" => return Some(relative(at - style.now)),
        _ => return None,
    };
    Some(local.format(format).to_string())
}

/// `in 5 minutes`, `3 hours ago`.
fn relative(seconds: i64) -> String {
    let span = seconds.unsigned_abs();
    let (count, unit) = match span {
        0..60 => {
            return if seconds >= 0 {
                "in a few seconds"
            } else {
                "a few seconds ago"
            }
            .to_owned();
        }
        60..3_600 => (span / 60, "minute"),
        3_600..86_400 => (span / 3_600, "hour"),
        86_400..2_592_000 => (span / 86_400, "day"),
        2_592_000..31_536_000 => (span / 2_592_000, "month"),
        _ => (span / 31_536_000, "year"),
    };
    let unit = if count == 1 {
        unit.to_owned()
    } else {
        format!("{unit}s")
    };
    if seconds >= 0 {
        format!("in {count} {unit}")
    } else {
        format!("{count} {unit} ago")
    }
}

#[cfg(test)]
mod tests;
