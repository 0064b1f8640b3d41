//! Domain types shared by the HTTP edge, the pipeline and the stores.
//!
//! Preconditions live in the types: a [`Name`] is always a valid identifier, a
//! [`Bundle`](policy::Bundle) has already been checked for duplicate ids.

pub mod contact;
pub mod document;
pub mod experiment;
pub mod key;
pub mod name;
pub mod objects;
pub mod outcome;
pub mod policy;
pub mod profile;
pub mod text;

pub use key::{ApiKey, KeyHash, Role};
pub use name::{Name, NameError};
