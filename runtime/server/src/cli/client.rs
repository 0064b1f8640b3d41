//! The CLI's client for a running server: where it is, which key to use,
//! and failures that say what to do.
//!
//! The server and key come from `--url` and `--key`; then from the profile
//! `--profile` (or `MOMENT_PROFILE`) names; else from `MOMENT_URL` and
//! `MOMENT_KEY`; else from the `[default]` profile of the profiles file
//! (`$MOMENT_PROFILES`, else `$XDG_CONFIG_HOME/moment/profiles.toml`, else
//! `~/.config/moment/profiles.toml`):
//!
//! ```toml
//! # ~/.config/moment/profiles.toml (or $MOMENT_PROFILES)
//! [default]
//! url = "http://127.0.0.1:8080"
//! key = "…"
//!
//! [staging]
//! url = "https://moment.staging.example.com"
//! key = "…"
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Failure, Remote};

/// A problem+json answer, as far as the CLI reads it.
#[derive(Deserialize)]
struct Problem {
    detail: String,
}

/// One profile of the profiles file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    url: Option<String>,
    key: Option<String>,
}

/// A refusal from the server: its status and what it said.
#[derive(Debug)]
pub struct Refusal {
    /// The HTTP status.
    pub status: u16,
    /// The problem's `detail`.
    pub detail: String,
}

/// A server to talk to with a key.
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Client {
    /// The server and key `remote` names (see [`Remote`] for the order).
    pub fn connect(remote: &Remote) -> Result<Self, Failure> {
        let (url, key) = match &remote.profile {
            Some(name) => {
                let profile = profile(name)?.ok_or_else(|| {
                    Failure::Setup(format!(
                        "there is no profile [{name}] in {}",
                        shown_profiles_path()
                    ))
                })?;
                (profile.url, profile.key)
            }
            None => match (env("MOMENT_URL"), env("MOMENT_KEY")) {
                (None, None) => profile("default")?.map_or((None, None), |p| (p.url, p.key)),
                from_env => from_env,
            },
        };
        let (Some(url), Some(key)) = (remote.url.clone().or(url), remote.key.clone().or(key))
        else {
            return Err(Failure::Setup(format!(
                "no server or no key: set MOMENT_URL (say http://127.0.0.1:8080) and MOMENT_KEY \
                 (an editor key of your tenant), pass --url and --key, or add a [default] \
                 profile with `url` and `key` to {}",
                shown_profiles_path()
            )));
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Failure::Setup(format!(
                "MOMENT_URL {url:?} must start with http:// or https://"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("moment-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::Setup(format!("the HTTP client could not start: {e}")))?;
        Ok(Self {
            http,
            base: url.trim_end_matches('/').to_owned(),
            key,
        })
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET path`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        self.send(self.http.get(self.url(path)))
            .await?
            .map_err(|r| self.refused(r))
    }

    /// `POST path` with a JSON body.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, Failure> {
        self.post_raw(path, body)
            .await?
            .map_err(|r| self.refused(r))
    }

    /// `POST path` with a JSON body; a refusal is returned for the caller
    /// to explain.
    pub async fn post_raw<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<Result<T, Refusal>, Failure> {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    /// `POST path` with a multipart form; a refusal is returned for the
    /// caller to explain.
    pub async fn post_form<T: DeserializeOwned>(
        &self,
        path: &str,
        form: reqwest::multipart::Form,
    ) -> Result<Result<T, Refusal>, Failure> {
        self.send(self.http.post(self.url(path)).multipart(form))
            .await
    }

    /// `GET path`, or None on 404.
    pub async fn find<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, Failure> {
        match self.send(self.http.get(self.url(path))).await? {
            Ok(found) => Ok(Some(found)),
            Err(Refusal { status: 404, .. }) => Ok(None),
            Err(refusal) => Err(self.refused(refusal)),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends `request` with the key; Ok(Err) when the server refused it (4xx).
    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<Result<T, Refusal>, Failure> {
        let response = request.bearer_auth(&self.key).send().await.map_err(|e| {
            Failure::Server(format!(
                "cannot reach {}: {}; is the server running there? \
                 (the URL comes from --url, a profile or MOMENT_URL)",
                self.base,
                root_cause(&e)
            ))
        })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| {
            Failure::Server(format!(
                "{} stopped answering: {}",
                self.base,
                root_cause(&e)
            ))
        })?;
        let detail = || {
            serde_json::from_slice::<Problem>(&body)
                .map(|p| p.detail)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned())
        };
        if status.is_server_error() {
            return Err(Failure::Server(format!(
                "{} failed ({status}): {}",
                self.base,
                detail()
            )));
        }
        if !status.is_success() {
            return Ok(Err(Refusal {
                status: status.as_u16(),
                detail: detail(),
            }));
        }
        serde_json::from_slice(&body).map(Ok).map_err(|e| {
            Failure::Server(format!(
                "{} answered something this CLI cannot read ({e}); is it a Moment server of the same version?",
                self.base
            ))
        })
    }

    /// A refusal as a failure that says what to do.
    pub fn refused(&self, refusal: Refusal) -> Failure {
        let Refusal { status, detail } = refusal;
        Failure::Failed(match status {
            401 => format!(
                "{} does not know this key ({detail}); use an editor key of your tenant \
                 (--key, a profile's `key` or MOMENT_KEY)",
                self.base
            ),
            403 => format!("this key may not do that ({detail}); use an editor or admin key"),
            429 => format!("the server is rate-limiting your tenant ({detail}); retry shortly"),
            _ => detail,
        })
    }
}

/// The innermost cause of an HTTP failure: "Connection refused", say.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// The profiles file: `$MOMENT_PROFILES`, else
/// `$XDG_CONFIG_HOME/moment/profiles.toml`, else `~/.config/moment/profiles.toml`.
fn profiles_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("MOMENT_PROFILES") {
        return Some(path.into());
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(config.join("moment/profiles.toml"))
}

/// A variable's value, when set and not empty.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The profiles file's path, for messages.
fn shown_profiles_path() -> String {
    profiles_path().map_or_else(
        || "~/.config/moment/profiles.toml".to_owned(),
        |p| p.display().to_string(),
    )
}

/// The named profile, if the profiles file has it.
fn profile(name: &str) -> Result<Option<Profile>, Failure> {
    let Some(path) = profiles_path().filter(|p| p.is_file()) else {
        return Ok(None);
    };
    let text = super::read_text(&path)?;
    let mut profiles: BTreeMap<String, Profile> = toml::from_str(&text)
        .map_err(|e| Failure::Setup(format!("{}: {}", path.display(), e.message())))?;
    Ok(profiles.remove(name))
}
