//! GrowthBook's version comparison (`$veq`, `$vgt`, …): versions are turned
//! into padded strings whose plain string order is the version order.

use serde_json::Value;

use super::js;

/// Width numeric parts are left-padded to, so `" 9" < "10"`.
const NUMERIC_WIDTH: usize = 5;

/// The padded comparison key of a version given as any JSON value.
///
/// Numbers use their JS string form; anything else that is not a non-empty
/// string counts as version `"0"`.
pub(crate) fn padded_value(value: &Value) -> String {
    match value {
        Value::Number(n) => padded(&js::number_to_string(js::number(n))),
        Value::String(s) if !s.is_empty() => padded(s),
        _ => padded("0"),
    }
}

/// The padded comparison key of a version string.
///
/// A leading `v` and a `+build` suffix are dropped, the rest is split on `.`
/// and `-`, a plain `x.y.z` gets a `~` part appended (so a release sorts
/// after its pre-releases: `~` is the highest printable ASCII character),
/// all-digit parts are left-padded with spaces, and the parts are joined with
/// `-`.
pub(crate) fn padded(version: &str) -> String {
    let version = version.strip_prefix('v').unwrap_or(version);
    let version = strip_build(version);
    let mut parts: Vec<&str> = version.split(['.', '-']).collect();
    if parts.len() == 3 {
        parts.push("~");
    }
    let padded: Vec<String> = parts
        .into_iter()
        .map(|part| {
            if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
                format!("{part:>NUMERIC_WIDTH$}")
            } else {
                part.to_owned()
            }
        })
        .collect();
    padded.join("-")
}

/// Removes build metadata the way the JS SDK's `/\+.*$/` does: from the first
/// `+` that is followed by no line terminator up to the end.
fn strip_build(version: &str) -> &str {
    let is_line_terminator = |c: char| matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}');
    let mut cut = version.len();
    for (at, c) in version.char_indices().rev() {
        if is_line_terminator(c) {
            break;
        }
        if c == '+' {
            cut = at;
        }
    }
    &version[..cut]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn release_gets_tilde_and_padding() {
        assert_eq!(padded("1.2.3"), "    1-    2-    3-~");
        assert_eq!(padded("v1.2.3+build.7"), "    1-    2-    3-~");
        assert_eq!(padded("1.0.0-rc.1"), "    1-    0-    0-rc-    1");
    }

    #[test]
    fn long_numbers_are_not_truncated() {
        assert_eq!(padded("123456.0.0"), "123456-    0-    0-~");
    }

    #[test]
    fn non_strings_count_as_zero_and_numbers_as_text() {
        assert_eq!(padded_value(&json!(null)), padded("0"));
        assert_eq!(padded_value(&json!("")), padded("0"));
        assert_eq!(padded_value(&json!(1.5)), padded("1.5"));
        assert_eq!(padded_value(&json!(["1"])), padded("0"));
    }

    #[test]
    fn build_suffix_spanning_a_newline_is_kept() {
        assert_eq!(strip_build("1+a\nb"), "1+a\nb");
        assert_eq!(strip_build("1+a\nb+c"), "1+a\nb");
        assert_eq!(strip_build("1+a+b"), "1");
    }
}
