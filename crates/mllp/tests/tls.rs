//! MLLP over TLS: a client that trusts the server's certificate is served; a plain TCP client
//! or one that does not trust the certificate gets no acknowledgement.

use aorta_log::{EmbeddedConfig, EmbeddedLog, Log};
use aorta_mllp::tls::TlsConfig;
use aorta_mllp::{MllpClient, MllpServer, MllpSourceConfig};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const MSG: &[u8] =
    b"MSH|^~\\&|LAB|HOSP|AORTA|AORTA|20260101120000||ORU^R01|TLS1|P|2.5.1\rPID|1||123\r";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_clients_are_served_and_others_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.key_pair.serialize_pem()).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let untrusted = dir.path().join("other.pem");
    std::fs::write(&untrusted, other.cert.pem()).unwrap();

    let log: Arc<dyn Log> =
        Arc::new(EmbeddedLog::open(EmbeddedConfig::new(dir.path().join("data"))).unwrap());
    let config = MllpSourceConfig {
        listen: "127.0.0.1:0".into(),
        tls: Some(TlsConfig {
            cert_path: cert.clone(),
            key_path: key.clone(),
        }),
        ..MllpSourceConfig::default()
    };
    let server = MllpServer::bind(config, log.clone()).await.unwrap();
    let addr = server.local_addr().unwrap().to_string();
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(server.run(rx));

    let mut client = MllpClient::connect_tls(&addr, "localhost", &cert, Duration::from_secs(10))
        .await
        .unwrap();
    let ack = client.send(MSG).await.unwrap();
    assert_eq!((ack.code.as_str(), ack.control_id.as_str()), ("AA", "TLS1"));

    let mut plain = MllpClient::connect(&addr, Duration::from_secs(3))
        .await
        .unwrap();
    assert!(
        plain.send(MSG).await.is_err(),
        "plain MLLP to a TLS listener is not acknowledged"
    );
    assert!(
        MllpClient::connect_tls(&addr, "localhost", &untrusted, Duration::from_secs(5))
            .await
            .is_err(),
        "an untrusted certificate is refused"
    );

    // A missing key file names itself.
    let bad = MllpSourceConfig {
        listen: "127.0.0.1:0".into(),
        tls: Some(TlsConfig {
            cert_path: cert,
            key_path: dir.path().join("missing.pem"),
        }),
        ..MllpSourceConfig::default()
    };
    let err = MllpServer::bind(bad, log.clone())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("missing.pem"), "{err}");

    stop.send(true).unwrap();
    task.await.unwrap();
    let stored = log
        .read("hl7.inbound", 0, 0, Default::default())
        .await
        .unwrap();
    assert_eq!(stored.records.len(), 1);
    assert_eq!(stored.records[0].record.value.as_ref(), MSG);
}
