//! Units from metric names (`_seconds`, `_bytes`, `_ratio`, `_total`) or from a panel's
//! `unit`, and values written with SI prefixes (`1.2 k`, `340 ms`, `1.5 GiB`).

/// How a value reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unit {
    /// A bare number.
    None,
    Seconds,
    Bytes,
    /// 0..1, shown as a percentage.
    Ratio,
    /// Per second (a `rate()` of a `_total` counter).
    PerSecond,
    /// Anything else the config names, written after the number.
    Other(String),
}

impl Unit {
    /// The unit a panel's `unit` names: `seconds`/`s`, `bytes`, `ratio`/`percent`, `ops`/`rps`
    /// `/s`; anything else is written as given.
    pub fn from_config(unit: &str) -> Unit {
        match unit.trim().to_ascii_lowercase().as_str() {
            "" | "none" => Unit::None,
            "s" | "seconds" | "second" => Unit::Seconds,
            "bytes" | "b" | "byte" => Unit::Bytes,
            "ratio" | "percent" | "%" => Unit::Ratio,
            "/s" | "ops" | "rps" | "per_second" | "persecond" => Unit::PerSecond,
            _ => Unit::Other(unit.trim().to_owned()),
        }
    }

    /// The unit the first metric name in `promql` implies.
    pub fn guess(promql: &str) -> Unit {
        let name = metric_names_in(promql)
            .into_iter()
            .next()
            .unwrap_or_default();
        let rated = ["rate(", "irate(", "increase(", "deriv("]
            .iter()
            .any(|f| promql.contains(f));
        let base = name
            .strip_suffix("_total")
            .or_else(|| name.strip_suffix("_count"))
            .or_else(|| name.strip_suffix("_sum"))
            .or_else(|| name.strip_suffix("_bucket"))
            .unwrap_or(&name);
        if name.ends_with("_count") || (name.ends_with("_total") && rated) {
            if promql.contains("increase(") {
                return Unit::None;
            }
            return Unit::PerSecond;
        }
        if base.ends_with("_seconds") {
            Unit::Seconds
        } else if base.ends_with("_bytes") {
            Unit::Bytes
        } else if base.ends_with("_ratio") {
            Unit::Ratio
        } else {
            Unit::None
        }
    }

    /// `value` in this unit, e.g. `12.3 ms`, `1.5 MiB`, `99.2 %`, `4.1 k/s`.
    pub fn format(&self, value: f64) -> String {
        if value.is_nan() {
            return "NaN".to_owned();
        }
        if value.is_infinite() {
            return if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
        }
        match self {
            Unit::None => si(value, ""),
            Unit::Seconds => si(value, "s"),
            Unit::Bytes => binary(value),
            Unit::Ratio => format!("{} %", trim(value * 100.0)),
            Unit::PerSecond => si(value, "/s"),
            Unit::Other(unit) => format!("{} {unit}", si(value, "").trim_end()),
        }
    }

    /// The axis label suffix: `s`, `bytes`, `%`, `/s`.
    pub fn label(&self) -> &str {
        match self {
            Unit::None => "",
            Unit::Seconds => "seconds",
            Unit::Bytes => "bytes",
            Unit::Ratio => "%",
            Unit::PerSecond => "per second",
            Unit::Other(unit) => unit,
        }
    }
}

/// Identifiers in `promql` that look like metric names (not functions, keywords or labels).
pub fn metric_names_in(promql: &str) -> Vec<String> {
    const KEYWORDS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
        "group",
    ];
    const GROUPING: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let mut names = Vec::new();
    let chars: Vec<char> = promql.chars().collect();
    let (mut i, mut braces, mut quoted) = (0, 0i32, false);
    while i < chars.len() {
        let c = chars[i];
        if quoted {
            if c == '"' && chars.get(i.wrapping_sub(1)) != Some(&'\\') {
                quoted = false;
            }
            i += 1;
            continue;
        }
        match c {
            '"' => quoted = true,
            '{' => braces += 1,
            '}' => braces -= 1,
            '[' => {
                while i < chars.len() && chars[i] != ']' {
                    i += 1;
                }
            }
            c if (c.is_ascii_alphabetic() || c == '_' || c == ':') && braces == 0 => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let next = chars[i..].iter().find(|c| !c.is_whitespace());
                let preceded_by_digit = start > 0 && chars[start - 1].is_ascii_digit();
                if GROUPING.contains(&word.as_str()) {
                    // `by (job, instance)`: label names, not metrics.
                    while i < chars.len() && chars[i].is_whitespace() {
                        i += 1;
                    }
                    if chars.get(i) == Some(&'(') {
                        while i < chars.len() && chars[i] != ')' {
                            i += 1;
                        }
                    }
                } else if next != Some(&'(')
                    && !KEYWORDS.contains(&word.as_str())
                    && !preceded_by_digit
                {
                    names.push(word);
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    names
}

fn trim(value: f64) -> String {
    let text = if value.abs() >= 100.0 || value == value.trunc() {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    };
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// `value` with an SI prefix and `unit` (`340 ms`, `1.2 k/s`).
pub fn si(value: f64, unit: &str) -> String {
    const PREFIXES: &[(f64, &str)] = &[
        (1e12, "T"),
        (1e9, "G"),
        (1e6, "M"),
        (1e3, "k"),
        (1.0, ""),
        (1e-3, "m"),
        (1e-6, "µ"),
        (1e-9, "n"),
    ];
    if value == 0.0 {
        return format!("0 {unit}").trim_end().to_owned();
    }
    let magnitude = value.abs();
    let (scale, prefix) = PREFIXES
        .iter()
        .find(|(scale, _)| magnitude >= *scale * 0.9995)
        .copied()
        .unwrap_or((1e-9, "n"));
    format!("{} {prefix}{unit}", trim(value / scale))
        .trim_end()
        .to_owned()
}

/// Bytes with binary prefixes (`1.5 MiB`).
fn binary(value: f64) -> String {
    const PREFIXES: &[&str] = &["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut scaled = value;
    let mut index = 0;
    while scaled.abs() >= 1024.0 && index + 1 < PREFIXES.len() {
        scaled /= 1024.0;
        index += 1;
    }
    format!("{} {}", trim(scaled), PREFIXES[index])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_follow_metric_names() {
        assert_eq!(
            Unit::guess("histogram_quantile(0.99, rate(http_request_duration_seconds_bucket[5m]))"),
            Unit::Seconds
        );
        assert_eq!(Unit::guess("process_resident_memory_bytes"), Unit::Bytes);
        assert_eq!(
            Unit::guess("rate(http_requests_total[5m])"),
            Unit::PerSecond
        );
        assert_eq!(Unit::guess("http_requests_total"), Unit::None);
        assert_eq!(Unit::guess("errors_ratio{job=\"x_bytes\"}"), Unit::Ratio);
        assert_eq!(Unit::guess("up"), Unit::None);
    }

    #[test]
    fn values_read_with_prefixes() {
        assert_eq!(Unit::Seconds.format(0.0123), "12.3 ms");
        assert_eq!(Unit::Bytes.format(1_572_864.0), "1.5 MiB");
        assert_eq!(Unit::Ratio.format(0.992), "99.2 %");
        assert_eq!(Unit::PerSecond.format(4100.0), "4.1 k/s");
        assert_eq!(Unit::None.format(1.0), "1");
        assert_eq!(Unit::None.format(0.0), "0");
        assert_eq!(Unit::None.format(f64::NAN), "NaN");
    }

    #[test]
    fn metric_names_skip_functions_labels_and_ranges() {
        assert_eq!(
            metric_names_in("sum by (job) (rate(foo_total{job=\"bar\"}[5m])) / on() bar_x"),
            vec!["foo_total", "bar_x"]
        );
    }
}
