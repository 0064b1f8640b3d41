//! Free-text identifiers chosen by callers (customer, action and variant
//! ids, decision ids, idempotency keys) are checked at the edge: present,
//! bounded, and text. A NUL or other control character would be refused by
//! PostgreSQL deep inside a batch of other tenants' records, and has no
//! business in an identifier anyway.

/// Why an identifier was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TextError {
    /// It is empty.
    #[error("{field} must not be empty")]
    Empty {
        /// Which field.
        field: &'static str,
    },
    /// It is too long.
    #[error("{field} is {len} bytes long; at most {max} are allowed")]
    TooLong {
        /// Which field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// It holds a control character.
    #[error(
        "{field} contains the control character U+{code:04X} at byte {at}; identifiers are printable text"
    )]
    Control {
        /// Which field.
        field: &'static str,
        /// The character's code point.
        code: u32,
        /// Its byte offset.
        at: usize,
    },
}

/// Checks that `value`, the caller's `field`, is 1 to `max` bytes of text
/// with no control characters (C0, DEL or C1).
pub fn check_id(field: &'static str, value: &str, max: usize) -> Result<(), TextError> {
    if value.is_empty() {
        return Err(TextError::Empty { field });
    }
    if value.len() > max {
        return Err(TextError::TooLong {
            field,
            len: value.len(),
            max,
        });
    }
    match value.char_indices().find(|(_, c)| c.is_control()) {
        Some((at, c)) => Err(TextError::Control {
            field,
            code: c as u32,
            at,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_empty_long_and_control() {
        assert_eq!(check_id("customer_id", "c-42 ü", 16), Ok(()));
        assert_eq!(
            check_id("customer_id", "", 16),
            Err(TextError::Empty {
                field: "customer_id"
            })
        );
        assert!(matches!(
            check_id("action_id", &"x".repeat(17), 16),
            Err(TextError::TooLong { len: 17, .. })
        ));
        for bad in ["a\0b", "a\nb", "a\u{7f}b", "a\u{85}b"] {
            assert!(
                matches!(
                    check_id("customer_id", bad, 16),
                    Err(TextError::Control { at: 1, .. })
                ),
                "{bad:?}"
            );
        }
    }
}
