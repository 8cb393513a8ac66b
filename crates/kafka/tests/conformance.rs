//! The backend conformance suite on a real Kafka-compatible broker (nisshi).

use aorta_kafka::{KafkaConfig, KafkaLog};
use aorta_log::Log;
use aorta_log::conformance::{self, Harness};
use async_trait::async_trait;
use std::sync::Arc;

struct Kafka {
    _broker: aorta_testkit::Broker,
    config: KafkaConfig,
}

#[async_trait]
impl Harness for Kafka {
    async fn open(&self) -> Arc<dyn Log> {
        Arc::new(
            KafkaLog::connect(self.config.clone())
                .await
                .expect("connect"),
        )
    }
}

fn harness() -> Option<Kafka> {
    let broker = aorta_testkit::broker()?;
    let config = KafkaConfig {
        replication_factor: 1,
        session_timeout_ms: 6_000,
        ..KafkaConfig::new(broker.bootstrap.clone())
    };
    Some(Kafka {
        _broker: broker,
        config,
    })
}

macro_rules! conformance_test {
    ($name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let Some(h) = harness() else { return };
            conformance::$name(&h).await;
        }
    };
}

conformance_test!(ordering_and_no_loss);
conformance_test!(records_round_trip_exactly);
conformance_test!(errors_are_typed);
conformance_test!(committed_offsets_survive_restart);
conformance_test!(group_rebalances_on_join_and_leave);
