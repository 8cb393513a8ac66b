//! A [`Log`] decorator that times appends (which resolve only once durable, so the time includes
//! the fsync or the broker's acknowledgement) and reads, for `/metrics`.

use aorta_log::{
    AppendAck, Histogram, Log, LogError, Membership, PartitionOffsets, ReadBatch, ReadOptions,
    Record, TopicConfig, TopicDescription, TopicPartition,
};
use async_trait::async_trait;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Latency and error counts of the log underneath.
#[derive(Default, Debug)]
pub struct LogMetrics {
    /// Durable appends (and produces), end to end.
    pub append: Histogram,
    /// Reads.
    pub read: Histogram,
    /// Appends that failed.
    pub append_errors: AtomicU64,
    /// Reads that failed.
    pub read_errors: AtomicU64,
}

/// Wraps a log; every call is forwarded unchanged.
pub struct MeteredLog {
    inner: Arc<dyn Log>,
    metrics: Arc<LogMetrics>,
}

impl MeteredLog {
    /// Wraps `inner`.
    pub fn wrap(inner: Arc<dyn Log>) -> (Arc<dyn Log>, Arc<LogMetrics>) {
        let metrics = Arc::new(LogMetrics::default());
        (
            Arc::new(MeteredLog {
                inner,
                metrics: metrics.clone(),
            }),
            metrics,
        )
    }
}

fn timed<T>(
    h: &Histogram,
    errors: &AtomicU64,
    start: Instant,
    r: Result<T, LogError>,
) -> Result<T, LogError> {
    h.record(start.elapsed());
    if r.is_err() {
        errors.fetch_add(1, Ordering::Relaxed);
    }
    r
}

#[async_trait]
impl Log for MeteredLog {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn create_topic(
        &self,
        name: &str,
        config: TopicConfig,
    ) -> Result<TopicDescription, LogError> {
        self.inner.create_topic(name, config).await
    }
    async fn delete_topic(&self, name: &str) -> Result<(), LogError> {
        self.inner.delete_topic(name).await
    }
    async fn list_topics(&self) -> Result<Vec<TopicDescription>, LogError> {
        self.inner.list_topics().await
    }
    async fn describe_topic(&self, name: &str) -> Result<TopicDescription, LogError> {
        self.inner.describe_topic(name).await
    }
    async fn append(
        &self,
        topic: &str,
        partition: u32,
        records: Vec<Record>,
    ) -> Result<AppendAck, LogError> {
        let start = Instant::now();
        let r = self.inner.append(topic, partition, records).await;
        timed(&self.metrics.append, &self.metrics.append_errors, start, r)
    }
    async fn read(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        options: ReadOptions,
    ) -> Result<ReadBatch, LogError> {
        let start = Instant::now();
        let r = self.inner.read(topic, partition, from, options).await;
        // A read that waited for new records measures the wait, not the log: only count
        // reads that returned at once or failed.
        if options.max_wait.is_zero() || r.is_err() {
            return timed(&self.metrics.read, &self.metrics.read_errors, start, r);
        }
        r
    }
    async fn offsets(&self, topic: &str, partition: u32) -> Result<PartitionOffsets, LogError> {
        self.inner.offsets(topic, partition).await
    }
    async fn commit(&self, group: &str, offsets: &[(TopicPartition, u64)]) -> Result<(), LogError> {
        self.inner.commit(group, offsets).await
    }
    async fn committed(&self, group: &str, tp: &TopicPartition) -> Result<Option<u64>, LogError> {
        self.inner.committed(group, tp).await
    }
    async fn join_group(&self, group: &str, topics: &[String]) -> Result<Membership, LogError> {
        self.inner.join_group(group, topics).await
    }
    async fn produce(
        &self,
        topic: &str,
        records: Vec<Record>,
        fallback_partition: u32,
    ) -> Result<Vec<(u32, u64)>, LogError> {
        let start = Instant::now();
        let r = self.inner.produce(topic, records, fallback_partition).await;
        timed(&self.metrics.append, &self.metrics.append_errors, start, r)
    }
}
