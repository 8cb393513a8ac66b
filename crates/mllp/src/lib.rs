//! # aorta-mllp — HL7 v2 over MLLP
//!
//! | module | what it owns |
//! |---|---|
//! | [`codec`] | MLLP framing as a tokio codec: frame limit, resync after junk, several frames per read |
//! | [`server`] | [`MllpServer`]: parse, append to the log, **ACK AA only after the append is durable**; AR + dead-letter for what cannot be accepted; duplicate suppression; limits; graceful shutdown |
//! | [`client`] | [`MllpClient`]: send a message, wait for its ACK |
//! | [`tls`] | MLLP over TLS: rustls server and client configuration from PEM files |
//!
//! ## Invariants
//! * An AA is never sent for a message that is not durable in the log.
//! * Every frame gets exactly one reply on its connection, in order.
//! * Logs never contain message content (PHI); they name problems and control ids only.
//!
//! ## Must not depend on
//! A concrete log backend (only the `Log` trait), FHIR, or clinical logic.

pub mod client;
pub mod codec;
pub mod server;
pub mod tls;

pub use client::{Ack, MllpClient};
pub use server::{MllpServer, MllpSourceConfig, Stats};
