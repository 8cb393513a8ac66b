//! `aorta serve` keeps its pipelines running: a sink whose destination is down makes `/readyz`
//! answer 503 naming it while it retries, a pipeline that fails is restarted from its
//! checkpoint (and says so in its status), and `POST /api/pipelines/{name}/restart` restarts a
//! failed pipeline at once and a running one cleanly. Nothing is lost on the way: every event
//! reaches the file and the webhook once their destinations are back.

use aorta_testkit::free_port;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const EVENTS: usize = 50;

fn aorta(config: &Path, args: &[&str], stdin: &[u8]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_aorta"))
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A webhook receiver that answers 200 to every request and keeps the bodies.
async fn hook_server(port: u16, seen: Arc<Mutex<Vec<Value>>>) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            loop {
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    let mut chunk = [0u8; 4096];
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    continue;
                };
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while buf.len() < end + 4 + len {
                    let mut chunk = [0u8; 4096];
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body: Vec<u8> = buf.drain(..end + 4 + len).skip(end + 4).collect();
                seen.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap());
                let ok = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                if s.write_all(ok.as_bytes()).await.is_err() {
                    return;
                }
            }
        });
    }
}

struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (
            status,
            serde_json::from_str(&r.text().await.unwrap()).unwrap_or(Value::Null),
        )
    }

    async fn restart(&self, name: &str) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/api/pipelines/{name}/restart", self.base))
            .bearer_auth(&self.token)
            .header("aorta-purpose", "supervisor test")
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (
            status,
            serde_json::from_str(&r.text().await.unwrap()).unwrap_or(Value::Null),
        )
    }

    async fn pipeline(&self, name: &str) -> Value {
        let (_, v) = self.get("/api/pipelines").await;
        v["pipelines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap()
    }

    /// Polls until `check` holds (20 s at most), returning the last `/readyz` answer.
    async fn until<F: AsyncFnMut(&Api) -> bool>(&self, what: &str, mut check: F) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !check(self).await {
            if Instant::now() > deadline {
                let ready = self
                    .http
                    .get(format!("{}/readyz", self.base))
                    .bearer_auth(&self.token)
                    .send()
                    .await;
                let ready = match ready {
                    Ok(r) => r.text().await.unwrap_or_default(),
                    Err(e) => e.to_string(),
                };
                panic!("{what}: never; /readyz says {ready}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_pipelines_restart_and_readyz_names_a_sink_that_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let (api_port, mllp_port, hook_port) = (free_port(), free_port(), free_port());
    // The file sink's directory cannot be made while a plain file has its name.
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let config = dir.path().join("aorta.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[log.embedded]
data_dir = "{data}"
[[sources.mllp]]
listen = "127.0.0.1:{mllp_port}"
[server]
listen = "127.0.0.1:{api_port}"

[[pipelines]]
name = "to-hook"
from = ["events"]
[[pipelines.sinks]]
type = "webhook"
url = "http://127.0.0.1:{hook_port}/in"
concurrency = 1
max_attempts = 100000
backoff = "50ms"
max_backoff = "200ms"
timeout = "2s"

[[pipelines]]
name = "to-file"
from = ["events"]
[[pipelines.sinks]]
type = "file"
path = "{file}"
"#,
            data = dir.path().join("data").display(),
            file = blocker.join("out.jsonl").display(),
        ),
    )
    .unwrap();
    aorta(&config, &["topics", "create", "events"], b"");
    let input: String = (0..EVENTS).map(|n| format!("{{\"n\":{n}}}\n")).collect();
    aorta(&config, &["produce", "events"], input.as_bytes());
    let token = aorta(&config, &["token", "create", "--role", "operator"], b"")
        .trim()
        .to_string();

    let mut server = Command::new(env!("CARGO_BIN_EXE_aorta"))
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let api = Api {
        base: format!("http://127.0.0.1:{api_port}"),
        token,
        http: reqwest::Client::new(),
    };
    api.until("the API answers", async |a| {
        a.http
            .get(format!("{}/healthz", a.base))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;

    // Both problems are named while they last.
    api.until(
        "/readyz names the webhook sink and the failed pipeline",
        async |a| {
            let (status, body) = a.get("/readyz").await;
            let text = body.to_string();
            status == 503
                && text.contains("pipeline to-hook sink webhook POST http://127.0.0.1:")
                && text.contains("down, retrying")
                && text.contains("pipeline to-file: ")
                && text.contains("restarting in")
        },
    )
    .await;
    let hook = api.pipeline("to-hook").await;
    assert_eq!(hook["status"]["state"], "running", "{hook}");
    assert_eq!(hook["sinks_down"].as_array().unwrap().len(), 1, "{hook}");
    api.until("the failed pipeline is restarted on its own", async |a| {
        let p = a.pipeline("to-file").await;
        p["restarts"].as_u64().unwrap() >= 1 && p["status"]["state"] == "failed"
    })
    .await;

    // The file's directory can be made now; a restart request does not wait for the back-off.
    std::fs::remove_file(&blocker).unwrap();
    let before = api.pipeline("to-file").await["restarts"].as_u64().unwrap();
    let (status, body) = api.restart("to-file").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["was"]["state"], "failed", "{body}");
    api.until("the file holds every event", async |_| {
        std::fs::read_to_string(blocker.join("out.jsonl"))
            .is_ok_and(|s| s.lines().count() == EVENTS)
    })
    .await;
    let file = api.pipeline("to-file").await;
    assert_eq!(file["status"]["state"], "running", "{file}");
    assert_eq!(file["restarts"].as_u64().unwrap(), before + 1, "{file}");

    // The webhook receiver comes up: the retries go through and /readyz is 200.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let receiver = tokio::spawn(hook_server(hook_port, seen.clone()));
    api.until("ready once the webhook answers", async |a| {
        a.get("/readyz").await.0 == 200
    })
    .await;
    api.until("every event reached the webhook", async |_| {
        let got: BTreeSet<i64> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|v| v["n"].as_i64().unwrap())
            .collect();
        got.len() == EVENTS
    })
    .await;
    assert!(
        api.pipeline("to-hook").await["sinks_down"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A running pipeline restarts cleanly and keeps its counters.
    let input_before = api.pipeline("to-hook").await["input"].as_u64().unwrap();
    let (status, body) = api.restart("to-hook").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["was"]["state"], "running", "{body}");
    api.until("the running pipeline restarted", async |a| {
        let p = a.pipeline("to-hook").await;
        p["restarts"] == 1 && p["status"]["state"] == "running"
    })
    .await;
    let hook = api.pipeline("to-hook").await;
    assert!(hook["input"].as_u64().unwrap() >= input_before, "{hook}");
    let (status, body) = api.restart("no-such-pipeline").await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body.to_string().contains("to-hook"),
        "the error lists the pipelines: {body}"
    );

    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    assert!(server.wait().unwrap().success(), "serve exits cleanly");
    receiver.abort();
}
