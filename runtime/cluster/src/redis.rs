//! The Redis half of the cluster store: customer profiles, with their
//! contact history, shared by every replica.
//!
//! A profile is a hash `<prefix>:profile:<tenant>:<customer>` of `rev` (its
//! revision) and `doc` (the profile's JSON). Every write is a
//! compare-and-set script: it stores the new document only if `rev` is still
//! the one read, bumps it, and publishes `[tenant, customer, rev]` on
//! `<prefix>:profiles` so other replicas drop their cached copy. A writer that
//! loses the race reads again and reapplies its change; a decision that
//! recorded impressions is made again instead (see
//! [`Store::record_impressions`](moment_store::Store::record_impressions)),
//! which is how a contact cap holds across replicas.
//!
//! Redis may be down: every call then fails fast with
//! [`StoreError::Unavailable`], and the connection is made again when Redis
//! returns.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands as _, Script};
use tokio::sync::{OnceCell, broadcast};

use moment_core::model::Name;
use moment_core::model::profile::Profile;
use moment_store::{Change, StoreError};

/// How long one Redis call may take before it counts as down.
const TIMEOUT: Duration = Duration::from_millis(250);
/// After a failed connection attempt, calls fail at once for this long.
const RECONNECT_EVERY: Duration = Duration::from_millis(500);
/// Compare-and-set attempts before a write gives up.
const MAX_ATTEMPTS: usize = 64;

/// `KEYS[1]` the profile hash; `ARGV` expected revision, new document,
/// channel, notice. Returns 1 if written, 0 if the revision had moved on.
const COMPARE_AND_SET: &str = r"
local rev = tonumber(redis.call('HGET', KEYS[1], 'rev') or '0')
if rev ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'rev', rev + 1, 'doc', ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
";

/// Profiles in Redis.
pub struct Redis {
    client: redis::Client,
    prefix: String,
    /// Made once; it reconnects by itself after that.
    conn: OnceCell<ConnectionManager>,
    /// When the last attempt to connect failed.
    failed_at: Mutex<Option<Instant>>,
    cas: Script,
}

fn unavailable(e: &redis::RedisError) -> StoreError {
    StoreError::unavailable("Redis", e)
}

fn command_error(e: redis::RedisError) -> StoreError {
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
        unavailable(&e)
    } else {
        StoreError::Backend(format!("Redis: {e}"))
    }
}

impl Redis {
    /// A client of the Redis at `url`, keys under `prefix`. Does not connect:
    /// a replica starts while Redis is down, and connects once it is up.
    pub fn new(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::Backend(format!("bad Redis URL: {e}")))?;
        Ok(Self {
            client,
            prefix: prefix.to_owned(),
            conn: OnceCell::new(),
            failed_at: Mutex::new(None),
            cas: Script::new(COMPARE_AND_SET),
        })
    }

    fn key(&self, tenant: &Name, customer: &str) -> String {
        // Tenant names cannot hold ':', so the customer id is everything after it.
        format!("{}:profile:{tenant}:{customer}", self.prefix)
    }

    fn channel(&self) -> String {
        format!("{}:profiles", self.prefix)
    }

    /// The connection, made on first use. One caller connects at a time;
    /// the others wait for its attempt (at most 2 × [`TIMEOUT`]) and, while
    /// the last attempt failed less than [`RECONNECT_EVERY`] ago, fail at once.
    async fn conn(&self) -> Result<ConnectionManager, StoreError> {
        self.conn.get_or_try_init(|| self.connect()).await.cloned()
    }

    async fn connect(&self) -> Result<ConnectionManager, StoreError> {
        let failed_at = || {
            self.failed_at
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        };
        if failed_at().is_some_and(|at| at.elapsed() < RECONNECT_EVERY) {
            return Err(StoreError::unavailable("Redis", "not connected"));
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1);
        let connect = self.client.get_connection_manager_with_config(config);
        let error = match tokio::time::timeout(TIMEOUT * 2, connect).await {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(e)) => unavailable(&e),
            Err(_) => StoreError::unavailable("Redis", "connecting timed out"),
        };
        *failed_at() = Some(Instant::now());
        Err(error)
    }

    /// Runs one command, failing after [`TIMEOUT`] whatever the connection
    /// manager is doing (it may be waiting on a reconnect).
    async fn run<T>(
        &self,
        command: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(TIMEOUT, command).await {
            Ok(result) => result.map_err(command_error),
            Err(_) => Err(StoreError::unavailable("Redis", "no answer in time")),
        }
    }

    /// `None` when Redis answers, else what is wrong.
    pub async fn missing(&self) -> Option<String> {
        let ping = async {
            let mut conn = self.conn().await?;
            self.run(redis::cmd("PING").query_async::<()>(&mut conn))
                .await
        };
        ping.await.err().map(|e| format!("redis: {e}"))
    }

    /// A customer's profile, if one exists.
    pub async fn profile(
        &self,
        tenant: &Name,
        customer: &str,
    ) -> Result<Option<Profile>, StoreError> {
        let mut conn = self.conn().await?;
        let doc: Option<String> = self
            .run(conn.hget(self.key(tenant, customer), "doc"))
            .await?;
        doc.map(|d| {
            serde_json::from_str(&d).map_err(|e| {
                StoreError::Backend(format!("profile of {customer:?} is unreadable: {e}"))
            })
        })
        .transpose()
    }

    /// Applies `change` to a customer's stored profile (an empty one if
    /// none) and stores it, reading again when another write came first.
    /// Returns the stored profile.
    pub async fn update(
        &self,
        tenant: &Name,
        customer: &str,
        mut change: impl FnMut(&mut Profile) -> Result<(), StoreError>,
    ) -> Result<Profile, StoreError> {
        for _ in 0..MAX_ATTEMPTS {
            let mut profile = self.profile(tenant, customer).await?.unwrap_or_default();
            change(&mut profile)?;
            if self.compare_and_set(tenant, customer, &mut profile).await? {
                return Ok(profile);
            }
        }
        // Every attempt lost to another write to this customer: Redis is up,
        // the profile is contended.
        tracing::warn!(%tenant, customer, "profile write lost the race {MAX_ATTEMPTS} times");
        Err(StoreError::Stale)
    }

    /// Stores `profile` with its revision bumped, if the stored revision is
    /// still `profile.revision` (0: none stored); `false`, storing nothing,
    /// if another write came first.
    pub async fn compare_and_set(
        &self,
        tenant: &Name,
        customer: &str,
        profile: &mut Profile,
    ) -> Result<bool, StoreError> {
        let seen = profile.revision;
        profile.revision = seen + 1;
        let doc =
            serde_json::to_string(&*profile).map_err(|e| StoreError::Backend(e.to_string()))?;
        let notice = serde_json::to_string(&(tenant.as_str(), customer, profile.revision))
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let mut conn = self.conn().await?;
        let mut invocation = self.cas.key(self.key(tenant, customer));
        invocation
            .arg(seen)
            .arg(doc)
            .arg(self.channel())
            .arg(notice);
        let written: i64 = self.run(invocation.invoke_async(&mut conn)).await?;
        Ok(written == 1)
    }

    /// Forwards every profile write notice as a [`Change::Profile`], and a
    /// [`Change::Everything`] each time the subscription is (re)made, since
    /// notices sent while it was down are gone.
    pub fn listen(&self, changes: broadcast::Sender<Change>) {
        let (client, channel) = (self.client.clone(), self.channel());
        tokio::spawn(async move {
            loop {
                let subscribed = async {
                    let mut pubsub = client.get_async_pubsub().await?;
                    pubsub.subscribe(&channel).await?;
                    Ok::<_, redis::RedisError>(pubsub)
                };
                let mut pubsub = match tokio::time::timeout(TIMEOUT * 4, subscribed).await {
                    Ok(Ok(p)) => p,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "cannot subscribe to profile changes; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                    Err(_) => continue,
                };
                let _ = changes.send(Change::Everything);
                let mut messages = pubsub.on_message();
                while let Some(message) = messages.next().await {
                    let notice = message
                        .get_payload::<String>()
                        .ok()
                        .and_then(|p| serde_json::from_str::<(String, String, u64)>(&p).ok());
                    match notice.and_then(|(t, c, r)| Some((Name::parse(&t).ok()?, c, r))) {
                        Some((tenant, customer, revision)) => {
                            let _ = changes.send(Change::Profile {
                                tenant,
                                customer,
                                revision,
                            });
                        }
                        None => tracing::warn!("unreadable profile change notice"),
                    }
                }
                tracing::warn!("lost the Redis subscription to profile changes; reconnecting");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }
}
