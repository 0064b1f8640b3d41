//! Compiles a JavaScript regular expression source (what `$regex` and
//! `$regexi` carry) into a Rust [`Regex`] that matches the same strings.
//!
//! The pattern is rewritten before compiling so that the pieces whose
//! meaning differs between the dialects keep their JavaScript meaning:
//! `\d`, `\w`, `\b` are ASCII-only, `\s` is JS white space, `.` stops at
//! every JS line terminator, `[]` matches nothing and `[^]` anything, `\0` is
//! NUL, and a `{`, `}` or `]` that does not form syntax is a literal.
//! Features Rust's engine lacks (look-around, back-references) fail to
//! compile and are reported as errors. Matching is per code point, where JS
//! without the `u` flag works per UTF-16 unit; the two only differ for
//! patterns that try to match half of a surrogate pair.

use std::fmt::Write;
use std::iter::Peekable;
use std::str::Chars;

use regex::{Regex, RegexBuilder};

/// Upper bound on a compiled regex's heap size; patterns are user input.
const SIZE_LIMIT: usize = 1 << 20;

/// The members of JS `\s`.
const JS_SPACE: &str =
    r"\t\n\x0B\x0C\r \xA0\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}\x{FEFF}";

/// JS `.`: anything but a line terminator.
const JS_DOT: &str = r"[^\n\r\x{2028}\x{2029}]";

/// Compiles a JS regex source; the error is a one-line reason.
pub(crate) fn compile(source: &str, case_insensitive: bool) -> Result<Regex, String> {
    RegexBuilder::new(&translate(source))
        .case_insensitive(case_insensitive)
        .size_limit(SIZE_LIMIT)
        .build()
        .map_err(|error| describe(&error))
}

/// The last `error: …` line of a regex error, without the caret diagram.
fn describe(error: &regex::Error) -> String {
    match error {
        regex::Error::CompiledTooBig(_) => "pattern is too large".to_owned(),
        other => {
            let text = other.to_string();
            text.lines()
                .rev()
                .find_map(|line| line.strip_prefix("error: "))
                .unwrap_or(text.trim())
                .to_owned()
        }
    }
}

/// Rewrites a JS pattern into Rust regex syntax with the same meaning.
fn translate(source: &str) -> String {
    let mut out = String::with_capacity(source.len() + 16);
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped) => out.push_str(&escape_outside_class(escaped, &mut chars)),
                None => out.push('\\'),
            },
            '.' => out.push_str(JS_DOT),
            '[' => translate_class(&mut chars, &mut out),
            '{' => match quantifier_body(&chars) {
                Some(body) => {
                    out.push('{');
                    out.push_str(&body);
                    for _ in 0..body.chars().count() {
                        chars.next();
                    }
                }
                None => out.push_str(r"\{"),
            },
            '}' | ']' => {
                out.push('\\');
                out.push(c);
            }
            other => out.push(other),
        }
    }
    out
}

/// The text after `{` up to and including `}` when it forms a counted
/// repetition (`{2}`, `{2,}`, `{2,5}`); JS treats any other `{` as a literal.
fn quantifier_body(chars: &Peekable<Chars<'_>>) -> Option<String> {
    let mut body = String::new();
    let mut seen_digit = false;
    let mut seen_comma = false;
    for c in chars.clone() {
        body.push(c);
        match c {
            '0'..='9' => seen_digit = true,
            ',' if seen_digit && !seen_comma => seen_comma = true,
            '}' if seen_digit => return Some(body),
            _ => return None,
        }
    }
    None
}

/// An escape outside a character class.
fn escape_outside_class(escaped: char, chars: &mut Peekable<Chars<'_>>) -> String {
    match escaped {
        'd' => "[0-9]".to_owned(),
        'D' => "[^0-9]".to_owned(),
        'w' => "(?-i:[0-9A-Za-z_])".to_owned(),
        'W' => "(?-i:[^0-9A-Za-z_])".to_owned(),
        's' => format!("[{JS_SPACE}]"),
        'S' => format!("[^{JS_SPACE}]"),
        'b' => r"(?-u:\b)".to_owned(),
        'B' => r"(?-u:\B)".to_owned(),
        '0' if !chars.peek().is_some_and(char::is_ascii_digit) => r"\x00".to_owned(),
        other => escape_common(other),
    }
}

/// An escape whose meaning is the same inside and outside a class: letters
/// and digits keep Rust's meaning (`\n`, `\x41`, `\u0041`, and errors for
/// back-references); anything else is the literal character, as in JS.
fn escape_common(escaped: char) -> String {
    if escaped.is_ascii_alphanumeric() {
        format!("\\{escaped}")
    } else {
        regex::escape(escaped.encode_utf8(&mut [0; 4]))
    }
}

/// Translates a class; the opening `[` is already consumed.
fn translate_class(chars: &mut Peekable<Chars<'_>>, out: &mut String) {
    if chars.next_if_eq(&']').is_some() {
        // JS `[]` matches nothing.
        out.push_str(r"[^\x00-\x{10FFFF}]");
        return;
    }
    let negated = chars.next_if_eq(&'^').is_some();
    if negated && chars.next_if_eq(&']').is_some() {
        // JS `[^]` matches anything, line terminators included.
        out.push_str(r"[\x00-\x{10FFFF}]");
        return;
    }
    out.push_str(if negated { "[^" } else { "[" });
    let mut previous_was_dash = false;
    while let Some(c) = chars.next() {
        let is_dash = c == '-';
        match c {
            ']' => {
                out.push(']');
                return;
            }
            '\\' => match chars.next() {
                Some(escaped) => out.push_str(&escape_inside_class(escaped)),
                None => out.push('\\'),
            },
            // Characters that open nested classes or set operations in Rust
            // but are plain members in JS.
            '[' | '&' | '~' => {
                let _ = write!(out, "\\{c}");
            }
            '-' if previous_was_dash => out.push_str(r"\-"),
            other => out.push(other),
        }
        previous_was_dash = is_dash && !previous_was_dash;
    }
    // Unterminated: leave it unterminated so compiling reports it.
}

/// An escape inside a character class.
fn escape_inside_class(escaped: char) -> String {
    match escaped {
        'd' => "[0-9]".to_owned(),
        'D' => "[^0-9]".to_owned(),
        'w' => "[0-9A-Za-z_]".to_owned(),
        'W' => "[^0-9A-Za-z_]".to_owned(),
        's' => format!("[{JS_SPACE}]"),
        'S' => format!("[^{JS_SPACE}]"),
        // Inside a class `\b` is a backspace.
        'b' => r"\x08".to_owned(),
        '0' => r"\x00".to_owned(),
        other => escape_common(other),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn matches(pattern: &str, haystack: &str) -> bool {
        compile(pattern, false).unwrap().is_match(haystack)
    }

    #[test]
    fn digit_and_word_classes_are_ascii() {
        assert!(matches(r"^\d+$", "123"));
        assert!(!matches(r"^\d$", "٣"));
        assert!(!matches(r"^\w$", "é"));
        assert!(matches(r"^[\w-]+$", "a-b_c"));
        assert!(matches(r"^[^\d]$", "x"));
    }

    #[test]
    fn space_class_is_js_white_space() {
        assert!(matches(r"^\s$", "\u{FEFF}"));
        assert!(!matches(r"^\s$", "\u{85}"));
    }

    #[test]
    fn word_boundary_is_ascii() {
        assert!(matches(r"\bcat\b", "a cat!"));
        // "é" is not an ASCII word character, so there is a boundary.
        assert!(matches(r"\bcat", "écat"));
        assert!(!matches(r"\Bcat", "écat"));
    }

    #[test]
    fn dot_stops_at_js_line_terminators() {
        assert!(!matches("^a.b$", "a\rb"));
        assert!(matches("^a.b$", "aéb"));
    }

    #[test]
    fn empty_and_negated_empty_classes() {
        assert!(!matches("a[]", "a"));
        assert!(matches("^a[^]b$", "a\nb"));
    }

    #[test]
    fn stray_braces_and_brackets_are_literals() {
        assert!(matches("a{b", "a{b"));
        assert!(matches("a}", "a}"));
        assert!(matches("a]", "a]"));
        assert!(matches("^a{2,3}$", "aaa"));
        assert!(matches("x{,2}", "x{,2}"));
    }

    #[test]
    fn js_class_members_that_are_rust_syntax() {
        assert!(matches("^[[&~]+$", "[&~"));
        assert!(matches("^[+--]$", ","));
    }

    #[test]
    fn identity_escapes_and_slashes() {
        assert!(matches(r"a\/b", "a/b"));
        assert!(matches(r"a/b", "a/b"));
        assert!(matches(r"\$\.", "$."));
        assert!(matches(r"\0", "\0"));
    }

    #[test]
    fn unsupported_and_invalid_patterns_fail_with_one_line() {
        for pattern in ["/???***[)", "(?=a)", r"(a)\1", "[a", "*"] {
            let error = compile(pattern, false).unwrap_err();
            assert!(!error.contains('\n'), "{pattern}: {error}");
            assert!(!error.is_empty());
        }
    }

    #[test]
    fn case_insensitive_flag() {
        assert!(compile("MOBILE", true).unwrap().is_match("android mobile"));
    }
}
