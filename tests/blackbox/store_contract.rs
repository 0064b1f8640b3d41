//! The `Store` contract (`runtime/store/tests/contract/suite.rs`, which the
//! embedded store passes in its own tests) on the cluster store, on a fresh
//! database and Redis key prefix.

#[path = "../../runtime/store/tests/contract/suite.rs"]
mod suite;

use crate::helpers::Cluster;

#[tokio::test]
async fn the_cluster_store_keeps_the_store_contract() {
    let cluster = Cluster::fresh();
    let store =
        moment_cluster::ClusterStore::connect(&cluster.postgres, &cluster.redis, &cluster.prefix)
            .await
            .unwrap();
    suite::run(&store).await;
}
