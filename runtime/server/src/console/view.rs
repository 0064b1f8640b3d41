//! What every console page shows around its content, and small formatting
//! helpers for templates.

use std::time::{Duration, UNIX_EPOCH};

use super::session::SignedIn;

/// The header of a signed-in page: who, which tenant, the sections.
pub struct Frame {
    /// The tenant's id.
    pub tenant: String,
    /// The key's role.
    pub role: String,
    /// Whether the Keys section is shown.
    pub admin: bool,
    /// The session's CSRF token (for the sign-out form).
    pub csrf: String,
    /// The section this page belongs to.
    pub section: &'static str,
}

impl Frame {
    /// The frame for `signed`'s pages in `section`.
    pub fn new(signed: &SignedIn, section: &'static str) -> Option<Self> {
        Some(Self {
            tenant: signed.caller.tenant.to_string(),
            role: signed.caller.role.to_string(),
            admin: signed.is_admin(),
            csrf: signed.csrf.clone(),
            section,
        })
    }
}

/// A time in ms since the Unix epoch, as an HTTP date (UTC) without its
/// weekday: `01 Dec 2026 11:02:43 GMT`.
pub fn when(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    let date = httpdate::fmt_http_date(at);
    date.split_once(", ")
        .map_or(date.clone(), |(_, rest)| rest.to_owned())
}
