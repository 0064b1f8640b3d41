//! The `Store` contract on the embedded SQLite store: on a fresh data
//! directory, and again after reopening it (the data must survive, and the
//! migrations must not run twice).

#![allow(clippy::unwrap_used, missing_docs)]

#[path = "contract/suite.rs"]
mod suite;

use moment_core::model::Name;
use moment_store::Store;
use moment_store::sqlite::SqliteStore;

#[tokio::test]
async fn the_embedded_store_keeps_the_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    suite::run(&store).await;
    drop(store);

    let reopened = SqliteStore::open(dir.path()).unwrap();
    let tenant = Name::parse("c-versions").unwrap();
    let policies = reopened.policies(&tenant).await.unwrap();
    assert_eq!(
        policies.len(),
        2,
        "what was stored is there after reopening"
    );
}
