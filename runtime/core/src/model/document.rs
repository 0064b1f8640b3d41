//! What a caller may send as `attributes` or `context`: bounded in depth,
//! keys, array length, string length and total size, so that what one
//! request costs (merging it into a profile, evaluating every eligibility
//! condition over it, handing it to a policy) is bounded whoever sends it.
//!
//! The check walks the document once, stops at the first excess, and never
//! allocates unless it refuses.

use serde_json::{Map, Value};

/// Deepest nesting of objects and arrays (`{"a": {"b": 1}}` is 2 deep).
pub const MAX_DEPTH: usize = 16;
/// Most keys one object may have, the top level included.
pub const MAX_KEYS: usize = 256;
/// Most items one array may hold.
pub const MAX_ITEMS: usize = 1_000;
/// Longest string or key, in bytes.
pub const MAX_STRING_BYTES: usize = 4 * 1024;
/// Largest a whole document may be, in bytes of compact JSON.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

/// Why an `attributes` or `context` document was refused. `at` names the
/// top-level key holding the excess, as `context.basket`.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DocumentError {
    /// A value nests objects or arrays too deeply.
    #[error("{at} nests objects and arrays more than {MAX_DEPTH} levels deep")]
    TooDeep {
        /// Where.
        at: String,
    },
    /// An object has too many keys.
    #[error("{at} has an object of {len} keys; objects may have at most {MAX_KEYS}")]
    TooManyKeys {
        /// Where.
        at: String,
        /// How many it has.
        len: usize,
    },
    /// An array has too many items.
    #[error("{at} has an array of {len} items; arrays may hold at most {MAX_ITEMS}")]
    TooManyItems {
        /// Where.
        at: String,
        /// How many it has.
        len: usize,
    },
    /// A string or key is too long.
    #[error("{at} has a string or key of {len} bytes; at most {MAX_STRING_BYTES} are allowed")]
    StringTooLong {
        /// Where.
        at: String,
        /// Its length.
        len: usize,
    },
    /// The whole document is too large.
    #[error("{field} is over {MAX_DOCUMENT_BYTES} bytes of JSON; send only what decisions use")]
    TooLarge {
        /// `attributes` or `context`.
        field: &'static str,
    },
}

/// The first excess found inside one top-level value.
enum Excess {
    Depth,
    Keys(usize),
    Items(usize),
    String(usize),
    Size,
}

/// Checks `map`, sent as `field` (`attributes` or `context`), against every
/// bound above.
pub fn check_document(field: &'static str, map: &Map<String, Value>) -> Result<(), DocumentError> {
    if map.len() > MAX_KEYS {
        return Err(DocumentError::TooManyKeys {
            at: field.to_owned(),
            len: map.len(),
        });
    }
    let mut bytes = 2;
    for (key, value) in map {
        let at = || format!("{field}.{key}");
        if key.len() > MAX_STRING_BYTES {
            return Err(DocumentError::StringTooLong {
                at: at(),
                len: key.len(),
            });
        }
        bytes += key.len() + 4;
        match walk(value, MAX_DEPTH, &mut bytes) {
            Ok(()) => {}
            Err(Excess::Depth) => return Err(DocumentError::TooDeep { at: at() }),
            Err(Excess::Keys(len)) => return Err(DocumentError::TooManyKeys { at: at(), len }),
            Err(Excess::Items(len)) => return Err(DocumentError::TooManyItems { at: at(), len }),
            Err(Excess::String(len)) => return Err(DocumentError::StringTooLong { at: at(), len }),
            Err(Excess::Size) => return Err(DocumentError::TooLarge { field }),
        }
    }
    Ok(())
}

/// The approximate size of `value` as compact JSON, in bytes (exact for
/// strings, keys and punctuation; eight bytes per number), for budgets.
pub fn json_bytes(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 8,
        Value::String(s) => s.len() + 2,
        Value::Array(items) => items.iter().map(|v| json_bytes(v) + 1).sum::<usize>() + 2,
        Value::Object(fields) => {
            fields
                .iter()
                .map(|(k, v)| k.len() + 4 + json_bytes(v))
                .sum::<usize>()
                + 2
        }
    }
}

/// Walks `value` with `levels` of nesting left, adding its approximate
/// JSON size to `bytes` (exact for strings, keys and punctuation; eight
/// bytes per number).
fn walk(value: &Value, levels: usize, bytes: &mut usize) -> Result<(), Excess> {
    *bytes += match value {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 8,
        Value::String(s) if s.len() > MAX_STRING_BYTES => return Err(Excess::String(s.len())),
        Value::String(s) => s.len() + 2,
        Value::Array(_) | Value::Object(_) if levels == 0 => return Err(Excess::Depth),
        Value::Array(items) if items.len() > MAX_ITEMS => return Err(Excess::Items(items.len())),
        Value::Object(fields) if fields.len() > MAX_KEYS => return Err(Excess::Keys(fields.len())),
        Value::Array(items) => {
            for item in items {
                walk(item, levels - 1, bytes)?;
            }
            items.len() + 2
        }
        Value::Object(fields) => {
            for (key, item) in fields {
                if key.len() > MAX_STRING_BYTES {
                    return Err(Excess::String(key.len()));
                }
                *bytes += key.len() + 4;
                walk(item, levels - 1, bytes)?;
            }
            2
        }
    };
    if *bytes > MAX_DOCUMENT_BYTES {
        return Err(Excess::Size);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn doc(value: Value) -> Map<String, Value> {
        Map::from_iter([("k".to_owned(), value)])
    }

    #[test]
    fn depth_is_counted_from_the_top_level_value() {
        let mut deep = json!(1);
        for _ in 0..MAX_DEPTH {
            deep = json!([deep]);
        }
        assert_eq!(check_document("attributes", &doc(deep.clone())), Ok(()));
        assert_eq!(
            check_document("context", &doc(json!({ "more": deep }))),
            Err(DocumentError::TooDeep {
                at: "context.k".to_owned()
            })
        );
    }

    #[test]
    fn every_bound_names_itself_and_where() {
        let items = doc(Value::Array(vec![json!(1); MAX_ITEMS + 1]));
        assert_eq!(
            check_document("attributes", &items),
            Err(DocumentError::TooManyItems {
                at: "attributes.k".to_owned(),
                len: MAX_ITEMS + 1
            })
        );
        let long = doc(json!({ "note": "x".repeat(MAX_STRING_BYTES + 1) }));
        assert!(matches!(
            check_document("context", &long),
            Err(DocumentError::StringTooLong { len, .. }) if len == MAX_STRING_BYTES + 1
        ));
        let keys: Map<String, Value> = (0..=MAX_KEYS).map(|i| (i.to_string(), json!(i))).collect();
        assert!(matches!(
            check_document("context", &doc(Value::Object(keys.clone()))),
            Err(DocumentError::TooManyKeys { .. })
        ));
        assert!(matches!(
            check_document("context", &keys),
            Err(DocumentError::TooManyKeys { at, .. }) if at == "context"
        ));
        let wide: Map<String, Value> = (0..20)
            .map(|i| (i.to_string(), json!("x".repeat(MAX_STRING_BYTES))))
            .collect();
        assert_eq!(
            check_document("context", &wide),
            Err(DocumentError::TooLarge { field: "context" })
        );
    }

    #[test]
    fn ordinary_documents_pass() {
        let basket = json!({
            "items": [{"sku": "a-1", "qty": 2, "price": 9.5}, {"sku": "b-2", "qty": 1, "price": 20}],
            "total": 39.0,
            "coupon": null
        });
        assert_eq!(check_document("context", &doc(basket)), Ok(()));
    }
}
