//! The slice of JavaScript value semantics the GrowthBook condition language
//! leans on: truthiness, `String(x)`, `Number(x)`, `<`/`>` between mixed
//! types, `===`, and `JSON.stringify` equality — applied to JSON values.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::{Map, Value};

/// A JSON number as the JS double it parses to.
pub(crate) fn number(n: &serde_json::Number) -> f64 {
    n.as_f64().unwrap_or(f64::NAN)
}

/// JS truthiness (`!!x`): false for `null`, `false`, `0`, `NaN` and `""`.
pub(crate) fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => {
            let n = number(n);
            n != 0.0 && !n.is_nan()
        }
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// Compares two strings the way JS `<` does: by UTF-16 code units.
pub(crate) fn cmp_utf16(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// JS `String(x)`: arrays join their elements with commas (null elements
/// become empty), objects become `[object Object]`.
pub(crate) fn to_string(value: &Value) -> Cow<'_, str> {
    match value {
        Value::Null => Cow::Borrowed("null"),
        Value::Bool(true) => Cow::Borrowed("true"),
        Value::Bool(false) => Cow::Borrowed("false"),
        Value::Number(n) => Cow::Owned(number_to_string(number(n))),
        Value::String(s) => Cow::Borrowed(s),
        Value::Array(items) => {
            let parts: Vec<Cow<'_, str>> = items
                .iter()
                .map(|item| match item {
                    Value::Null => Cow::Borrowed(""),
                    other => to_string(other),
                })
                .collect();
            Cow::Owned(parts.join(","))
        }
        Value::Object(_) => Cow::Borrowed("[object Object]"),
    }
}

/// JS `Number.prototype.toString()` for a double: the shortest digits that
/// round-trip, in positional notation for exponents in `[-7, 21)` and
/// exponential notation (`1e+21`, `1.5e-7`) outside it.
pub(crate) fn number_to_string(n: f64) -> String {
    if n.is_nan() {
        return "NaN".to_owned();
    }
    if n == 0.0 {
        return "0".to_owned();
    }
    if n.is_infinite() {
        return if n > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    if n < 0.0 {
        return format!("-{}", number_to_string(-n));
    }
    // Rust's `{:e}` prints the shortest round-trip digits: "d.ddde-x".
    let scientific = format!("{n:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exponent: i64 = exponent.parse().unwrap_or(0);
    let k = i64::try_from(digits.len()).unwrap_or(i64::MAX);
    // The value is 0.d1d2…dk × 10^point.
    let point = exponent + 1;
    let zeros = |count: i64| "0".repeat(usize::try_from(count).unwrap_or(0));
    if k <= point && point <= 21 {
        format!("{digits}{}", zeros(point - k))
    } else if 0 < point && point <= 21 {
        let split = usize::try_from(point).unwrap_or(0);
        format!("{}.{}", &digits[..split], &digits[split..])
    } else if -6 < point && point <= 0 {
        format!("0.{}{digits}", zeros(-point))
    } else {
        let sign = if point - 1 < 0 { '-' } else { '+' };
        let magnitude = (point - 1).abs();
        match digits.split_at(1) {
            (first, "") => format!("{first}e{sign}{magnitude}"),
            (first, rest) => format!("{first}.{rest}e{sign}{magnitude}"),
        }
    }
}

/// JS white space and line terminators, as `String.prototype.trim` and
/// `Number("…")` strip them.
pub(crate) fn is_js_whitespace(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r' | ' ' | '\u{A0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200A}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202F}'
                | '\u{205F}'
                | '\u{3000}'
                | '\u{FEFF}'
    )
}

/// JS `Number("…")`: trims, treats empty as 0, accepts `Infinity`, decimal
/// literals and unsigned `0x`/`0o`/`0b` integers; anything else is `NaN`.
pub(crate) fn string_to_number(s: &str) -> f64 {
    let trimmed = s.trim_matches(is_js_whitespace);
    if trimmed.is_empty() {
        return 0.0;
    }
    if let Some(value) = radix_integer(trimmed) {
        return value;
    }
    let (sign, unsigned) = match trimmed.strip_prefix('-') {
        Some(rest) => (-1.0, rest),
        None => (1.0, trimmed.strip_prefix('+').unwrap_or(trimmed)),
    };
    if unsigned == "Infinity" {
        return sign * f64::INFINITY;
    }
    if !is_decimal_literal(unsigned) {
        return f64::NAN;
    }
    unsigned.parse::<f64>().map_or(f64::NAN, |v| sign * v)
}

/// `0x1F`, `0o17`, `0b101` (prefix case-insensitive, no sign), else `None`.
fn radix_integer(s: &str) -> Option<f64> {
    let radix = match s.get(..2)? {
        "0x" | "0X" => 16,
        "0o" | "0O" => 8,
        "0b" | "0B" => 2,
        _ => return None,
    };
    let digits = &s[2..];
    if digits.is_empty() {
        return Some(f64::NAN);
    }
    let mut value = 0.0_f64;
    for c in digits.chars() {
        match c.to_digit(radix) {
            Some(d) => value = value * f64::from(radix) + f64::from(d),
            None => return Some(f64::NAN),
        }
    }
    Some(value)
}

/// `digits [. digits] [e[+-]digits]` or `. digits [e…]`, with at least one
/// mantissa digit.
fn is_decimal_literal(s: &str) -> bool {
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(at) => (&s[..at], Some(&s[at + 1..])),
        None => (s, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = all_digits(whole) && all_digits(fraction) && whole.len() + fraction.len() > 0;
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    mantissa_ok && exponent_ok
}

/// A JS primitive, the result of `ToPrimitive` on a JSON value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Primitive<'a> {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A double.
    Number(f64),
    /// A string (arrays and objects also end up here).
    String(Cow<'a, str>),
}

impl Primitive<'_> {
    /// JS `ToPrimitive`: arrays and objects become their string form.
    pub(crate) fn of(value: &Value) -> Primitive<'_> {
        match value {
            Value::Null => Primitive::Null,
            Value::Bool(b) => Primitive::Bool(*b),
            Value::Number(n) => Primitive::Number(number(n)),
            Value::String(_) | Value::Array(_) | Value::Object(_) => {
                Primitive::String(to_string(value))
            }
        }
    }

    /// An owned copy, for keeping in a compiled condition.
    pub(crate) fn into_owned(self) -> Primitive<'static> {
        match self {
            Primitive::Null => Primitive::Null,
            Primitive::Bool(b) => Primitive::Bool(b),
            Primitive::Number(n) => Primitive::Number(n),
            Primitive::String(s) => Primitive::String(Cow::Owned(s.into_owned())),
        }
    }

    /// JS `ToNumber`.
    fn to_number(&self) -> f64 {
        match self {
            Primitive::Null => 0.0,
            Primitive::Bool(b) => f64::from(u8::from(*b)),
            Primitive::Number(n) => *n,
            Primitive::String(s) => string_to_number(s),
        }
    }
}

/// JS `Number(x)` for a JSON value (`null` is 0, `[5]` is 5, `{}` is NaN).
pub(crate) fn to_number(value: &Value) -> f64 {
    Primitive::of(value).to_number()
}

/// The ordering JS `<`, `<=`, `>`, `>=` see between two primitives: string
/// order when both are strings, numeric order otherwise, and `None` (every
/// comparison false) when a side is `NaN`.
pub(crate) fn relational(a: &Primitive<'_>, b: &Primitive<'_>) -> Option<Ordering> {
    match (a, b) {
        (Primitive::String(a), Primitive::String(b)) => Some(cmp_utf16(a, b)),
        _ => a.to_number().partial_cmp(&b.to_number()),
    }
}

/// JS `===` between a document value and a condition value. Arrays and
/// objects are never `===` to anything: they are distinct JS objects.
pub(crate) fn strict_equals(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::Number(a), Value::Number(b)) => number(a) == number(b),
        (Value::String(a), Value::String(b)) => a == b,
        _ => false,
    }
}

/// Structural equality, standing in for `JSON.stringify(a) ===
/// JSON.stringify(b)`: numbers compare as doubles (`1` equals `1.0`) and
/// object keys are compared as sets, whatever their order.
pub(crate) fn json_equals(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| json_equals(a, b))
        }
        (Value::Object(a), Value::Object(b)) => objects_equal(a, b),
        _ => strict_equals(a, b),
    }
}

fn objects_equal(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(key, value)| b.get(key).is_some_and(|other| json_equals(value, other)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn numbers_print_like_js() {
        let cases = [
            (10.0, "10"),
            (1.5, "1.5"),
            (-0.25, "-0.25"),
            (1e21, "1e+21"),
            (123_456_789_012_345_680_000.0, "123456789012345680000"),
            (1e-7, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (0.000_001, "0.000001"),
            (2.5e25, "2.5e+25"),
            (0.1 + 0.2, "0.30000000000000004"),
            (-0.0, "0"),
            (f64::INFINITY, "Infinity"),
        ];
        for (n, expected) in cases {
            assert_eq!(number_to_string(n), expected, "{n:e}");
        }
    }

    #[test]
    fn strings_convert_to_numbers_like_js() {
        let cases = [
            ("8", 8.0),
            ("  8\n", 8.0),
            ("", 0.0),
            ("   ", 0.0),
            ("1.", 1.0),
            (".5", 0.5),
            ("-1e3", -1000.0),
            ("0x1F", 31.0),
            ("0b101", 5.0),
            ("-Infinity", f64::NEG_INFINITY),
        ];
        for (s, expected) in cases {
            assert_eq!(string_to_number(s), expected, "{s:?}");
        }
        for s in ["abc", "1a", "inf", "NaN", "-0x1", "1e", ".", "1_000", "+-1"] {
            assert!(string_to_number(s).is_nan(), "{s:?}");
        }
    }

    #[test]
    fn to_string_matches_js() {
        assert_eq!(to_string(&json!([1, null, [2, "a"], true])), "1,,2,a,true");
        assert_eq!(to_string(&json!({"a": 1})), "[object Object]");
        assert_eq!(to_string(&json!(null)), "null");
    }

    #[test]
    fn relational_follows_js_coercions() {
        let cmp = |a: Value, b: Value| relational(&Primitive::of(&a), &Primitive::of(&b));
        assert_eq!(cmp(json!("8"), json!(5)), Some(Ordering::Greater));
        assert_eq!(cmp(json!("10"), json!("9")), Some(Ordering::Less));
        assert_eq!(cmp(json!(null), json!(-1)), Some(Ordering::Greater));
        assert_eq!(cmp(json!([7]), json!(5)), Some(Ordering::Greater));
        assert_eq!(cmp(json!("abc"), json!(5)), None);
        assert_eq!(cmp(json!(true), json!(1)), Some(Ordering::Equal));
    }

    #[test]
    fn utf16_order_differs_from_code_point_order() {
        // U+FF61 sorts after U+1F600 by code point but before it in UTF-16.
        assert_eq!(cmp_utf16("\u{FF61}", "\u{1F600}"), Ordering::Greater);
        assert!("\u{FF61}" < "\u{1F600}");
    }

    #[test]
    fn json_equality_ignores_key_order_and_number_representation() {
        assert!(json_equals(
            &json!({"a": 1, "b": [1.0]}),
            &json!({"b": [1], "a": 1.0})
        ));
        assert!(!json_equals(&json!([1, 2]), &json!([2, 1])));
        assert!(!strict_equals(&json!([1]), &json!([1])));
    }
}
