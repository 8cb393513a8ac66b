//! An MLLP client: send a message, wait for its acknowledgement.

use crate::codec::{CodecError, MllpCodec};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// What came back for one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    /// MSA-1: `AA`, `AE`, `AR` (or the enhanced-mode `CA`/`CE`/`CR`).
    pub code: String,
    /// MSA-2: the control id it acknowledges.
    pub control_id: String,
    /// The whole reply.
    pub raw: Bytes,
}

/// Client errors.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Could not connect or the connection failed.
    #[error("{0}")]
    Codec(#[from] CodecError),
    /// The peer closed the connection before acknowledging.
    #[error("the receiver closed the connection before acknowledging")]
    Closed,
    /// No reply within the timeout.
    #[error("no acknowledgement within {0:?}")]
    Timeout(Duration),
    /// TLS set-up failed.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The reply is not an HL7 ACK.
    #[error("the reply is not an HL7 acknowledgement: {0}")]
    BadAck(String),
}

/// A byte stream the client can speak MLLP over (plain TCP or TLS).
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// One connection.
pub struct MllpClient {
    framed: Framed<Box<dyn Io>, MllpCodec>,
    timeout: Duration,
}

impl MllpClient {
    /// Connects to `addr`.
    pub async fn connect(addr: &str, timeout: Duration) -> Result<MllpClient, ClientError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
            .map_err(CodecError::Io)?;
        let _ = stream.set_nodelay(true);
        Ok(MllpClient {
            framed: Framed::new(Box::new(stream), MllpCodec::new(64 << 20)),
            timeout,
        })
    }

    /// Connects over TLS, verifying the server's certificate for `server_name` against the CA
    /// certificates in `ca_path` (PEM).
    pub async fn connect_tls(
        addr: &str,
        server_name: &str,
        ca_path: &std::path::Path,
        timeout: Duration,
    ) -> Result<MllpClient, ClientError> {
        let config = crate::tls::client_config(ca_path)?;
        let name = crate::tls::server_name(server_name)?;
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
            .map_err(CodecError::Io)?;
        let _ = stream.set_nodelay(true);
        let tls = tokio::time::timeout(timeout, tokio_rustls::TlsConnector::from(config).connect(name, stream))
            .await
            .map_err(|_| ClientError::Timeout(timeout))?
            .map_err(|e| {
                // The most common surprise: `openssl req -x509` marks its certificate CA:TRUE,
                // which TLS verification refuses for a server's own certificate.
                let hint = if e.to_string().contains("CaUsedAsEndEntity") {
                    " (the server certificate is a CA certificate; issue a leaf certificate, or create the self-signed one with -addext basicConstraints=critical,CA:FALSE)"
                } else {
                    ""
                };
                CodecError::Io(std::io::Error::new(e.kind(), format!("TLS handshake with {addr}: {e}{hint}")))
            })?;
        Ok(MllpClient {
            framed: Framed::new(Box::new(tls), MllpCodec::new(64 << 20)),
            timeout,
        })
    }

    /// Sends one message and waits for its ACK.
    pub async fn send(&mut self, message: &[u8]) -> Result<Ack, ClientError> {
        self.framed.send(message).await?;
        let reply = tokio::time::timeout(self.timeout, self.framed.next())
            .await
            .map_err(|_| ClientError::Timeout(self.timeout))?
            .ok_or(ClientError::Closed)??;
        let raw = reply.payload;
        let parsed = aorta_hl7::parse(&raw).map_err(|e| ClientError::BadAck(e.to_string()))?;
        let msa = parsed
            .segment("MSA", 1)
            .ok_or_else(|| ClientError::BadAck("no MSA segment".into()))?;
        let field = |n| {
            msa.field(n)
                .map(|f| String::from_utf8_lossy(f.raw()).into_owned())
                .unwrap_or_default()
        };
        Ok(Ack {
            code: field(1),
            control_id: field(2),
            raw,
        })
    }
}
