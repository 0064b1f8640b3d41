//! API keys: roles, generation, and the hashes they are stored as.

use std::fmt;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a key may do. Roles are ordered: a higher role can do everything a
/// lower one can (`admin` ⊇ `editor` ⊇ `decide`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Publishable: decide and report outcomes only.
    Decide,
    /// Policies, experiments, profiles, results.
    Editor,
    /// Keys and tenant settings.
    Admin,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 3] = [Role::Decide, Role::Editor, Role::Admin];

    /// The role's name as used in JSON and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Decide => "decide",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }

    /// Parses the stored name of a role.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A freshly generated secret key. Shown to the caller once; only its
/// [`KeyHash`] is ever stored.
pub struct ApiKey(String);

impl ApiKey {
    /// Generates a random key for `role`: a readable prefix and 256 random bits.
    pub fn generate(role: Role) -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(format!("mk_{}_{}", role.as_str(), hex::encode(bytes)))
    }

    /// The secret, to hand to the caller.
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// The hash the key is stored and looked up by.
    pub fn hash(&self) -> KeyHash {
        KeyHash::of(&self.0)
    }
}

/// SHA-256 of a bearer token. Keys have 256 bits of entropy, so an unsalted
/// fast hash is enough to make the stored form useless to a thief.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    /// Hashes a presented token.
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// Hex form, for the store.
    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }

    /// Parses the hex form written by [`KeyHash::to_hex`].
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Self(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_hash_round_trips() {
        let a = ApiKey::generate(Role::Decide);
        let b = ApiKey::generate(Role::Decide);
        assert_ne!(a.secret(), b.secret());
        assert!(a.secret().starts_with("mk_decide_"));
        assert_eq!(KeyHash::from_hex(&a.hash().to_hex()), Some(a.hash()));
        assert_eq!(KeyHash::of(a.secret()), a.hash());
    }

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Admin > Role::Editor && Role::Editor > Role::Decide);
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
    }
}
