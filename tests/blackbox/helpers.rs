//! Starting servers and talking to them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use base64::Engine as _;
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

pub const ROOT_TOKEN: &str = "test-root-token-0123456789";

/// A running `moment serve`, killed (SIGKILL) on drop.
pub struct Server {
    child: Child,
    pub base: String,
    pub client: Client,
    data: PathBuf,
    banner: Vec<String>,
    /// The cluster store this server uses, in the cluster suite.
    pub cluster: Option<Arc<Cluster>>,
    _dir: Option<TempDir>,
}

impl Server {
    /// Starts a server on a fresh data directory (and, in the cluster suite,
    /// a fresh PostgreSQL database and Redis key prefix).
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// Starts a server on a fresh data directory with extra flags.
    pub fn start_with(flags: &[&str]) -> Server {
        let cluster = crate::CLUSTER.then(|| Arc::new(Cluster::fresh()));
        Server::start_in(cluster, flags)
    }

    /// Starts a server with its own data directory on `cluster`'s store
    /// (the embedded store when `None`).
    pub fn start_in(cluster: Option<Arc<Cluster>>, flags: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Server::spawn(dir.path(), cluster, flags);
        server._dir = Some(dir);
        server
    }

    /// Starts a server on the embedded store, on a copy of the data
    /// directory `fixture` (its files, not its subdirectories). Only the
    /// embedded suite uses it.
    #[cfg_attr(cluster_tests, allow(dead_code))]
    pub fn start_on_copy_of(fixture: &Path) -> Server {
        let dir = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(fixture).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
            }
        }
        let mut server = Server::spawn(dir.path(), None, &[]);
        server._dir = Some(dir);
        server
    }

    fn spawn(data: &Path, cluster: Option<Arc<Cluster>>, extra: &[&str]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_moment"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(extra)
            .env("MOMENT_ROOT_TOKEN", ROOT_TOKEN)
            .env("MOMENT_LOG", "warn")
            .env_remove("MOMENT_POSTGRES_URL")
            .env_remove("MOMENT_REDIS_URL")
            .stdout(Stdio::piped());
        if let Some(cluster) = &cluster {
            command.args([
                "--postgres",
                &cluster.postgres,
                "--redis",
                &cluster.redis,
                "--redis-prefix",
                &cluster.prefix,
            ]);
        }
        let mut child = command.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().expect("server printed nothing").unwrap();
        let base = first
            .strip_prefix("moment listening on ")
            .expect(&first)
            .to_owned();
        // The demo banner comes right after the first line.
        let mut banner = Vec::new();
        if extra.contains(&"--demo") {
            for line in lines.by_ref() {
                let line = line.unwrap();
                let done = line.trim_start().starts_with("curl");
                banner.push(line);
                if done {
                    break;
                }
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Server {
            child,
            base,
            client: Client::new(),
            data: data.to_path_buf(),
            banner,
            cluster,
            _dir: None,
        }
    }

    /// The value printed after `label` in the demo banner (e.g. `decide:`).
    pub fn banner_value(&self, label: &str) -> String {
        let line = self
            .banner
            .iter()
            .find(|l| l.trim_start().starts_with(label))
            .expect(label);
        line.trim_start()[label.len()..].trim().to_owned()
    }

    /// Kills the process with SIGKILL and starts a new one on the same store.
    pub fn kill_and_restart(self) -> Server {
        self.kill_and_restart_with(&[], |_| {})
    }

    /// Kills the process with SIGKILL, runs `meddle` on its store, and starts
    /// a new one on it with `flags`.
    pub fn kill_and_restart_with(
        mut self,
        flags: &[&str],
        meddle: impl FnOnce(&StoredData),
    ) -> Server {
        // The process may have exited already (after SIGTERM, say).
        let _ = self.child.kill();
        self.child.wait().unwrap();
        meddle(&StoredData {
            data: self.data.clone(),
            cluster: self.cluster.clone(),
        });
        let mut next = Server::spawn(&self.data, self.cluster.clone(), flags);
        next._dir = self._dir.take();
        next
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.data.clone()
    }

    /// The server process's peak resident memory so far (`VmHWM`), in bytes.
    #[cfg_attr(cluster_tests, allow(dead_code))]
    pub fn peak_rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            * 1024
    }

    /// The server's address, for raw sockets.
    #[cfg_attr(cluster_tests, allow(dead_code))]
    pub fn socket_addr(&self) -> std::net::SocketAddr {
        self.base.trim_start_matches("http://").parse().unwrap()
    }

    /// Sends SIGTERM and waits for the process to exit; true if it exited 0.
    pub fn terminate(&mut self) -> bool {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        self.child.wait().unwrap().success()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn get(&self, path: &str, key: &str) -> RequestBuilder {
        self.client.get(self.url(path)).bearer_auth(key)
    }

    pub fn post(&self, path: &str, key: &str, body: &Value) -> RequestBuilder {
        self.client.post(self.url(path)).bearer_auth(key).json(body)
    }

    pub fn patch(&self, path: &str, key: &str, body: &Value) -> RequestBuilder {
        self.client
            .patch(self.url(path))
            .bearer_auth(key)
            .json(body)
    }

    /// Creates a tenant; returns its keys.
    pub async fn tenant(&self, id: &str) -> Keys {
        let res = self
            .post("/v1/tenants", ROOT_TOKEN, &json!({ "id": id }))
            .send()
            .await
            .unwrap();
        let body = expect(res, StatusCode::CREATED).await;
        Keys {
            admin: body["keys"]["admin"].as_str().unwrap().to_owned(),
            editor: body["keys"]["editor"].as_str().unwrap().to_owned(),
            decide: body["keys"]["decide"].as_str().unwrap().to_owned(),
        }
    }

    /// Uploads a policy version; returns the raw response.
    pub async fn upload(&self, key: &str, name: &str, bundle: &Value) -> Response {
        self.post(&format!("/v1/policies/{name}/versions"), key, bundle)
            .send()
            .await
            .unwrap()
    }

    /// Uploads a Rhai policy over `catalog()` and activates it; returns the version.
    pub async fn upload_rhai(&self, key: &str, name: &str, source: &str) -> u64 {
        let res = self.upload(key, name, &rhai_bundle(source)).await;
        expect(res, StatusCode::CREATED).await["version"]
            .as_u64()
            .unwrap()
    }

    /// Asks for a decision; returns the raw response.
    pub async fn decide(&self, key: &str, body: &Value) -> Response {
        self.post("/v1/decide", key, body).send().await.unwrap()
    }

    /// Asks for a decision that must succeed; returns its body.
    pub async fn decide_ok(&self, key: &str, body: &Value) -> Value {
        expect(self.decide(key, body).await, StatusCode::OK).await
    }

    /// The Prometheus text.
    pub async fn metrics(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server's stored data, reached behind its back.
pub struct StoredData {
    data: PathBuf,
    cluster: Option<Arc<Cluster>>,
}

impl StoredData {
    /// Runs one statement on the database: `sqlite` on the embedded store,
    /// `postgres` on the cluster's; returns the rows changed.
    pub fn execute(&self, sqlite: &str, postgres: &str) -> u64 {
        match &self.cluster {
            None => {
                let db = rusqlite::Connection::open(self.data.join("moment.sqlite3")).unwrap();
                db.execute(sqlite, []).unwrap() as u64
            }
            Some(cluster) => cluster.execute(postgres),
        }
    }
}

/// A fresh PostgreSQL database and Redis key prefix for one test's servers,
/// from `MOMENT_TEST_POSTGRES` (a URL of an existing database, used to
/// create the fresh one) and `MOMENT_TEST_REDIS`. Dropped with the test.
pub struct Cluster {
    pub postgres: String,
    pub redis: String,
    pub prefix: String,
    admin: String,
    database: String,
}

impl Cluster {
    pub fn fresh() -> Cluster {
        let redis = std::env::var("MOMENT_TEST_REDIS")
            .expect("the cluster suite needs MOMENT_TEST_REDIS, e.g. redis://127.0.0.1:6379");
        Cluster::fresh_with_redis(redis)
    }

    /// A fresh database, with the Redis at `redis`.
    pub fn fresh_with_redis(redis: String) -> Cluster {
        let admin = std::env::var("MOMENT_TEST_POSTGRES")
            .expect("the cluster suite needs MOMENT_TEST_POSTGRES, e.g. postgres://postgres@127.0.0.1:5432/test");
        let database = format!("moment_test_{}", uuid::Uuid::now_v7().simple());
        let base = admin
            .rsplit_once('/')
            .expect("MOMENT_TEST_POSTGRES names a database")
            .0;
        let cluster = Cluster {
            postgres: format!("{base}/{database}"),
            redis,
            prefix: database.clone(),
            admin,
            database,
        };
        cluster.admin_execute(&format!("CREATE DATABASE {}", cluster.database));
        cluster
    }

    /// Runs `sql` on the test's database; returns the rows changed.
    pub fn execute(&self, sql: &str) -> u64 {
        on_postgres(&self.postgres, sql)
    }

    fn admin_execute(&self, sql: &str) -> u64 {
        on_postgres(&self.admin, sql)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.admin_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.database
        ));
        if let Ok(mut redis) =
            redis::Client::open(self.redis.as_str()).and_then(|c| c.get_connection())
        {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}:*", self.prefix))
                .query(&mut redis)
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: Result<(), _> = redis::cmd("DEL").arg(keys).query(&mut redis);
            }
        }
    }
}

/// Runs one statement on PostgreSQL, from any thread (tests are async, the
/// helpers are not).
fn on_postgres(url: &str, sql: &str) -> u64 {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            use sqlx::Connection as _;
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            // The statements are the tests' own, with no outside input.
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap()
                .rows_affected()
        })
    })
    .join()
    .unwrap()
}

#[derive(Clone)]
pub struct Keys {
    pub admin: String,
    pub editor: String,
    pub decide: String,
}

/// Asserts the status and returns the JSON body.
pub async fn expect(res: Response, status: StatusCode) -> Value {
    let got = res.status();
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(got, status, "body: {body}");
    if !status.is_success() {
        assert_eq!(
            content_type.as_deref(),
            Some("application/problem+json"),
            "{body}"
        );
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{body}"
        );
    }
    body
}

/// A small catalog: three offers and a fallback message.
pub fn catalog() -> Value {
    json!([
        {"id": "small", "kind": "offer", "value": 5.0, "payload": {"headline": "5 off"}},
        {"id": "medium", "kind": "offer", "value": 10.0, "payload": {"headline": "10 off"}},
        {"id": "large", "kind": "offer", "value": 20.0, "tags": ["premium"], "payload": {"headline": "20 off"}},
        {"id": "welcome", "kind": "message", "payload": {"headline": "Welcome"}}
    ])
}

/// A Rhai bundle over `catalog()` with `welcome` as fallback, activated.
pub fn rhai_bundle(source: &str) -> Value {
    json!({"engine": "rhai", "source": source, "catalog": catalog(), "fallback": ["welcome"], "activate": true})
}

/// Scores every candidate by its value.
pub const BY_VALUE: &str = r#"
fn decide(ctx) {
    let out = [];
    for c in ctx.candidates {
        if c.kind == "offer" { out.push(#{ id: c.id, score: c.value }); }
    }
    out
}
"#;

/// An activated WASM upload of `module` over a reference `bundle`.
pub fn wasm_upload(bundle: &str, module: &[u8]) -> Value {
    let mut upload: Value = serde_json::from_str(bundle).unwrap();
    upload["engine"] = json!("wasm");
    upload["wasm"] = json!(base64::engine::general_purpose::STANDARD.encode(module));
    upload["activate"] = json!(true);
    upload
}

/// An activated Rhai upload of `source` over a reference `bundle`.
pub fn rhai_upload(bundle: &str, source: &str) -> Value {
    let mut upload: Value = serde_json::from_str(bundle).unwrap();
    upload["engine"] = json!("rhai");
    upload["source"] = json!(source);
    upload["activate"] = json!(true);
    upload
}

/// Action ids of a decide answer, in order.
pub fn ids(decision: &Value) -> Vec<String> {
    decision["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect()
}
