//! The backend conformance suite on the embedded log.

use aorta_log::conformance::{self, Harness};
use aorta_log::{EmbeddedConfig, EmbeddedLog, Log};
use async_trait::async_trait;
use std::sync::Arc;

struct Embedded(tempfile::TempDir);

#[async_trait]
impl Harness for Embedded {
    async fn open(&self) -> Arc<dyn Log> {
        Arc::new(EmbeddedLog::open(EmbeddedConfig::new(self.0.path())).expect("open"))
    }
}

fn harness() -> Embedded {
    Embedded(tempfile::tempdir().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordering_and_no_loss() {
    conformance::ordering_and_no_loss(&harness()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_round_trip_exactly() {
    conformance::records_round_trip_exactly(&harness()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_typed() {
    conformance::errors_are_typed(&harness()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_restart() {
    conformance::committed_offsets_survive_restart(&harness()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_rebalances_on_join_and_leave() {
    conformance::group_rebalances_on_join_and_leave(&harness()).await;
}
