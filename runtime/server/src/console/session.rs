//! Console sessions: a signed-in key becomes a random session id in an
//! HttpOnly, SameSite=Strict cookie; the key itself is never kept, only its
//! hash, looked up again on every request so a revoked key's session ends
//! at once. Each session has a CSRF token that every form carries.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use rand::RngCore;

use crate::http::AppState;
use crate::http::auth::Caller;
use moment_core::model::{KeyHash, Name, Role};

/// The session cookie's name.
pub const COOKIE: &str = "moment_session";
/// How long a session lasts after sign-in.
pub const LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// Sessions kept at most; signing in past it ends the oldest.
const MAX_SESSIONS: usize = 10_000;
/// Sessions one tenant may hold; its own oldest ends past it, so no tenant
/// signing in over and over can end another tenant's sessions.
const MAX_TENANT_SESSIONS: usize = 500;

struct Session {
    tenant: Name,
    key: KeyHash,
    csrf: String,
    expires: Instant,
}

/// The live sessions of this server.
#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<String, Session>>,
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Sessions {
    /// Starts a session of `tenant` for the key with this hash; returns
    /// the cookie, marked `Secure` when the console is reached over TLS.
    pub fn start(&self, tenant: &Name, key: KeyHash, secure: bool) -> Cookie<'static> {
        let id = random_token();
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        live.retain(|_, s| s.expires > now);
        let oldest = |live: &HashMap<String, Session>, of_tenant: bool| {
            live.iter()
                .filter(|(_, s)| !of_tenant || s.tenant == *tenant)
                .min_by_key(|(_, s)| s.expires)
                .map(|(id, _)| id.clone())
        };
        let theirs = live.values().filter(|s| s.tenant == *tenant).count();
        if theirs >= MAX_TENANT_SESSIONS
            && let Some(oldest) = oldest(&live, true)
        {
            live.remove(&oldest);
        } else if live.len() >= MAX_SESSIONS
            && let Some(oldest) = oldest(&live, false)
        {
            live.remove(&oldest);
        }
        live.insert(
            id.clone(),
            Session {
                tenant: tenant.clone(),
                key,
                csrf: random_token(),
                expires: now + LIFETIME,
            },
        );
        Cookie::build((COOKIE, id))
            .http_only(true)
            .same_site(SameSite::Strict)
            .path("/console")
            .secure(secure)
            .build()
    }

    /// Ends the session `id`, if there is one.
    pub fn end(&self, id: &str) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.remove(id);
    }

    fn find(&self, id: &str) -> Option<(KeyHash, String)> {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        match live.get(id) {
            Some(s) if s.expires > Instant::now() => Some((s.key, s.csrf.clone())),
            Some(_) => {
                live.remove(id);
                None
            }
            None => None,
        }
    }
}

/// The session cookie, to remove it from the browser.
pub fn cleared() -> Cookie<'static> {
    Cookie::build((COOKIE, "")).path("/console").build()
}

/// A signed-in console user: the key's tenant and role (editor or admin),
/// the session's CSRF token and id. Without a live session, or when the key
/// was revoked meanwhile, the request is sent to the sign-in page.
pub struct SignedIn {
    /// The key's caller, as the API sees it.
    pub caller: Caller,
    /// The token every form of this session must carry.
    pub csrf: String,
    /// The session id (to end it).
    pub session: String,
}

impl SignedIn {
    /// Whether `token` is this session's CSRF token.
    pub fn csrf_ok(&self, token: &str) -> bool {
        // Both are 64 hex characters from the session; compare in constant time.
        token.len() == self.csrf.len()
            && token
                .bytes()
                .zip(self.csrf.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    /// Whether the key may manage keys.
    pub fn is_admin(&self) -> bool {
        self.caller.role >= Role::Admin
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        let to_sign_in = || Redirect::to("/console/sign-in").into_response();
        let jar = CookieJar::from_headers(&parts.headers);
        let session = jar
            .get(COOKIE)
            .map(|c| c.value().to_owned())
            .ok_or_else(to_sign_in)?;
        let (hash, csrf) = app.sessions.find(&session).ok_or_else(to_sign_in)?;
        let Some(key) = app.registry.key(&hash) else {
            app.sessions.end(&session);
            return Err(to_sign_in());
        };
        if key.role < Role::Editor {
            return Err(to_sign_in());
        }
        // The console's requests count in the tenant's rate like the API's.
        app.rate
            .check(&key.tenant)
            .map_err(|e| super::Failure::from(e).into_response())?;
        Ok(Self {
            caller: Caller {
                key_id: key.id.clone(),
                tenant: key.tenant.clone(),
                role: key.role,
            },
            csrf,
            session,
        })
    }
}
