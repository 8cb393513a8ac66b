//! [`PipelineError`]: what stops a pipeline. (An operator failing on one event is not an error
//! of the pipeline: that event is dead-lettered and the pipeline goes on.)

use aorta_log::LogError;

/// Why a pipeline could not be built or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The declaration is wrong; the text names the pipeline, step and fix.
    #[error("pipeline {pipeline:?}: {message}")]
    Config {
        /// Pipeline name.
        pipeline: String,
        /// What is wrong.
        message: String,
    },
    /// The log failed (reading input, writing output, committing).
    #[error("pipeline {pipeline:?}: {source}")]
    Log {
        /// Pipeline name.
        pipeline: String,
        /// The log's error.
        #[source]
        source: LogError,
    },
    /// The state store failed.
    #[error("pipeline state store {path}: {message}")]
    State {
        /// The store file.
        path: String,
        /// What failed.
        message: String,
    },
    /// A sink failed for good (after its retries).
    #[error("pipeline {pipeline:?}, sink {sink}: {message}")]
    Sink {
        /// Pipeline name.
        pipeline: String,
        /// The sink, as described in the topology.
        sink: String,
        /// What failed.
        message: String,
    },
}
