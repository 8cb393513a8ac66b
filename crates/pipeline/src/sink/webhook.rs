//! HTTP webhook sink: each event (or batch of events) is POSTed as JSON; failures are retried
//! with exponential backoff, and an event the endpoint still refuses after `max_attempts` —
//! or refuses for good at once (a 4xx other than 408/425/429) — is handed back to the runner,
//! which writes it to the pipeline's dead-letter topic with the reason. Nothing is dropped.
//!
//! ## Delivery
//! At-least-once. A request whose response was lost (timeout, reset) is sent again, so the
//! receiver may see it twice; every request carries the output's identity, which is the same
//! after a restart (the runner's `aorta.emit`), so a receiver deduplicates by it:
//! * `batch_size = 1` (default): the body is the event's JSON, with `Idempotency-Key: <id>` and
//!   `Aorta-Lineage: topic/partition/offset` of the source record;
//! * `batch_size > 1`: the body is a JSON array and `Aorta-Emit-Ids` lists the identities in
//!   the array's order, comma-separated.
//!
//! ## Retries
//! Transport errors (refused, reset, timeout) and 408, 425, 429 and 5xx answers are retried:
//! `backoff` doubling up to `max_backoff`, or the server's `Retry-After` seconds (capped by
//! `max_backoff`). Up to `concurrency` requests are in flight; with more than one, requests may
//! complete out of order. A slow or failing endpoint holds the round, so consumption slows with
//! it (backpressure); memory stays one round.

use super::{Sink, SinkHealth, Undelivered};
use crate::config::WebhookSinkConfig;
use crate::event::Event;
use async_trait::async_trait;
use futures::StreamExt;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use std::time::Duration;

/// The sink.
pub struct WebhookSink {
    config: WebhookSinkConfig,
    client: reqwest::Client,
    headers: HeaderMap,
    health: SinkHealth,
}

/// One request's outcome.
enum Outcome {
    Delivered,
    /// Refused for good, or out of attempts: the events go to the dead-letter topic.
    Failed(String),
}

impl WebhookSink {
    /// Checks the config (URL, headers, secrets from the environment) and builds the client.
    pub fn new(config: WebhookSinkConfig) -> Result<WebhookSink, String> {
        let url = reqwest::Url::parse(&config.url)
            .map_err(|e| format!("webhook url {:?}: {e}", config.url))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "webhook url {:?}: the scheme must be http or https",
                config.url
            ));
        }
        if config.batch_size == 0 || config.concurrency == 0 || config.max_attempts == 0 {
            return Err(
                "webhook batch_size, concurrency and max_attempts must be at least 1".into(),
            );
        }
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let mut put = |name: &str, value: String, secret: bool| -> Result<(), String> {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("webhook header name {name:?} is not a valid header name"))?;
            let mut v = HeaderValue::from_str(&value).map_err(|_| {
                format!("webhook header {name:?}: the value is not a valid header value")
            })?;
            v.set_sensitive(secret);
            headers.insert(n, v);
            Ok(())
        };
        for (name, value) in &config.headers {
            put(name, value.clone(), false)?;
        }
        for (name, var) in &config.headers_from_env {
            let value = std::env::var(var).map_err(|_| {
                format!("webhook header {name:?}: environment variable {var} is not set")
            })?;
            put(name, value, true)?;
        }
        let client = reqwest::Client::builder()
            .timeout(config.timeout.std())
            .connect_timeout(config.timeout.std())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("webhook client: {e}"))?;
        Ok(WebhookSink {
            config,
            client,
            headers,
            health: SinkHealth::default(),
        })
    }

    /// The body and identity headers of one request.
    fn request(&self, batch: &[(Event, String)]) -> (bytes::Bytes, HeaderMap) {
        let mut headers = self.headers.clone();
        let mut body = Vec::new();
        let mut set = |name: &'static str, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.insert(name, v);
            }
        };
        if let [(e, id)] = batch
            && self.config.batch_size == 1
        {
            body.extend_from_slice(&e.encode());
            set("idempotency-key", id);
            set("aorta-lineage", &e.origin.lineage());
        } else {
            body.push(b'[');
            for (i, (e, _)) in batch.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(&e.encode());
            }
            body.push(b']');
            let ids: Vec<&str> = batch.iter().map(|(_, id)| id.as_str()).collect();
            set("aorta-emit-ids", &ids.join(","));
        }
        (bytes::Bytes::from(body), headers)
    }

    /// One request with its retries; the body is shared by the attempts, not copied.
    async fn send(&self, body: bytes::Bytes, headers: HeaderMap) -> Outcome {
        let cfg = &self.config;
        let mut delay = cfg.backoff.std();
        let cap = cfg.max_backoff.std();
        for attempt in 1..=cfg.max_attempts {
            let sent = self
                .client
                .post(&cfg.url)
                .headers(headers.clone())
                .body(body.clone())
                .send()
                .await;
            let (why, wait) = match sent {
                Ok(resp) if resp.status().is_success() => {
                    self.health.up();
                    return Outcome::Delivered;
                }
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after = resp
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let text = resp.text().await.unwrap_or_default();
                    let text: String = text.chars().take(200).collect();
                    let why = format!("webhook answered {status}: {}", text.trim());
                    let retryable =
                        status.is_server_error() || matches!(status.as_u16(), 408 | 425 | 429);
                    if !retryable {
                        return Outcome::Failed(format!("{why} (not retried)"));
                    }
                    (why, retry_after.map(|r| r.min(cap)))
                }
                Err(e) => (format!("webhook request failed: {}", describe(&e)), None),
            };
            if attempt == cfg.max_attempts {
                return Outcome::Failed(format!("{why} (after {attempt} attempts)"));
            }
            tracing::warn!(url = %cfg.url, attempt, error = %why, "webhook delivery failed; retrying");
            self.health.down(&why);
            tokio::time::sleep(wait.unwrap_or(delay)).await;
            delay = (delay * 2).min(cap);
        }
        Outcome::Failed("webhook: no attempt made".into())
    }
}

/// A transport error with its causes (reqwest's own text is often just "error sending request").
fn describe(e: &reqwest::Error) -> String {
    let mut s = if e.is_timeout() {
        String::from("timed out")
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(c) = source {
        s.push_str(": ");
        s.push_str(&c.to_string());
        source = c.source();
    }
    s
}

#[async_trait]
impl Sink for WebhookSink {
    fn describe(&self) -> String {
        format!(
            "webhook POST {} (batch {}, {} in flight, {} attempts, then dead letter)",
            self.config.url,
            self.config.batch_size,
            self.config.concurrency,
            self.config.max_attempts
        )
    }

    fn set_health(&mut self, health: SinkHealth) {
        self.health = health;
    }

    async fn write(&mut self, events: &[(Event, String)]) -> Result<Vec<Undelivered>, String> {
        let size = self.config.batch_size;
        // Owned requests first: the stream below then borrows only `self`.
        let requests: Vec<(usize, usize, bytes::Bytes, HeaderMap)> = events
            .chunks(size)
            .enumerate()
            .map(|(i, c)| {
                let (body, headers) = self.request(c);
                (i * size, c.len(), body, headers)
            })
            .collect();
        let this = &*self;
        let outcomes: Vec<(usize, usize, Outcome)> = futures::stream::iter(requests)
            .map(|(start, len, body, headers)| async move {
                (start, len, this.send(body, headers).await)
            })
            .buffered(this.config.concurrency)
            .collect()
            .await;
        let mut failed = Vec::new();
        for (start, len, outcome) in outcomes {
            if let Outcome::Failed(reason) = outcome {
                failed.extend((start..start + len).map(|index| Undelivered {
                    index,
                    reason: reason.clone(),
                }));
            }
        }
        Ok(failed)
    }
}
