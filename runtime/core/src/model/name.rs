//! Identifiers chosen by users: tenant ids and policy (decision point) names.

use std::fmt;
use std::sync::Arc;

/// Longest identifier accepted, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// A tenant id or policy name: 1 to 64 characters of lowercase ASCII letters,
/// digits, `-`, `_` and `.`, starting with a letter or digit.
///
/// Cheap to clone (shared string), so it can key in-memory maps.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(Arc<str>);

/// Why a string is not a valid [`Name`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    /// The string is empty.
    #[error("must not be empty")]
    Empty,
    /// The string is longer than [`MAX_NAME_LEN`].
    #[error("must be at most {MAX_NAME_LEN} characters")]
    TooLong,
    /// The string has a character outside the allowed set.
    #[error(
        "may only contain lowercase letters, digits, '-', '_' and '.', and must start with a letter or digit"
    )]
    BadCharacter,
}

impl Name {
    /// Checks `s` and wraps it.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong);
        }
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c);
        let first_ok = s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !first_ok || !s.chars().all(allowed) {
            return Err(NameError::BadCharacter);
        }
        Ok(Self(Arc::from(s)))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_typical_names() {
        for ok in ["acme", "homepage-hero", "kiosk_checkout", "v1.2", "9lives"] {
            assert!(Name::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_bad_names() {
        assert_eq!(Name::parse(""), Err(NameError::Empty));
        assert_eq!(Name::parse(&"a".repeat(65)), Err(NameError::TooLong));
        for bad in ["Acme", "-x", "a b", "a/b", "é", "../etc"] {
            assert_eq!(Name::parse(bad), Err(NameError::BadCharacter), "{bad}");
        }
    }
}
