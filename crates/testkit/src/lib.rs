//! # aorta-testkit — shared test fixtures (never a runtime dependency)
//!
//! A real Kafka-compatible broker for tests: nisshi 0.8.1 on a free loopback port, in memory,
//! killed when the fixture is dropped. The binary comes from `AORTA_NISSHI`, or the cache that
//! `scripts/ensure-nisshi.sh` fills. In CI a missing broker fails the test; elsewhere it is a
//! loud skip with the command that fixes it.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running broker; killed on drop.
pub struct Broker {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub bootstrap: String,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("AORTA_NISSHI") {
        return Some(PathBuf::from(p));
    }
    let home = std::env::var("HOME").ok()?;
    let cache = std::env::var("AORTA_CACHE").unwrap_or_else(|_| format!("{home}/.cache/aorta"));
    let p = PathBuf::from(cache).join("nisshi-0.8.1/nisshi");
    p.exists().then_some(p)
}

/// A loopback port that was free a moment ago (for a child process to listen on).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a broker, or returns `None` (after saying so loudly) when none is installed outside CI.
pub fn broker() -> Option<Broker> {
    let Some(bin) = binary() else {
        let msg = "no nisshi broker found: run scripts/ensure-nisshi.sh (or set AORTA_NISSHI)";
        if std::env::var_os("CI").is_some() {
            panic!("{msg}");
        }
        eprintln!("SKIPPED (not in CI): {msg}");
        return None;
    };
    let port = free_port();
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(&bin)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args([
            "--storage-engine",
            "memory://nisshi/",
            "--group-initial-rebalance-delay",
            "0s",
            "--silent",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
    let bootstrap = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&bootstrap).is_err() {
        assert!(
            Instant::now() < deadline,
            "nisshi did not listen on {bootstrap} within 20 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(Broker { child, bootstrap })
}

/// A folder of the external test corpora (`$AORTA_CORPUS/<sub>`, default `../shared/data`
/// beside the repository). In CI a missing corpus fails the test; elsewhere it is a loud skip.
pub fn corpus(sub: &str) -> Option<PathBuf> {
    let root = std::env::var_os("AORTA_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
        });
    let dir = root.join(sub);
    if dir.is_dir() {
        return Some(dir);
    }
    let msg = format!(
        "test corpus not found at {} (set AORTA_CORPUS)",
        dir.display()
    );
    if std::env::var_os("CI").is_some() {
        panic!("{msg}");
    }
    eprintln!("SKIPPED (not in CI): {msg}");
    None
}

/// A Python interpreter with DuckDB (the independent reference for window results):
/// `$AORTA_DUCKDB_PYTHON`, else the virtualenv that `scripts/ensure-duckdb.sh` makes in the
/// cache. In CI a missing one fails the test; elsewhere it is a loud skip with the fix.
pub fn duckdb_python() -> Option<PathBuf> {
    let candidate = std::env::var_os("AORTA_DUCKDB_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            let home = std::env::var("HOME").ok()?;
            let cache =
                std::env::var("AORTA_CACHE").unwrap_or_else(|_| format!("{home}/.cache/aorta"));
            Some(PathBuf::from(cache).join("venv-duckdb/bin/python"))
        });
    if let Some(p) = candidate
        && Command::new(&p)
            .args(["-c", "import duckdb"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    {
        return Some(p);
    }
    let msg =
        "no Python with duckdb found: run scripts/ensure-duckdb.sh (or set AORTA_DUCKDB_PYTHON)";
    if std::env::var_os("CI").is_some() {
        panic!("{msg}");
    }
    eprintln!("SKIPPED (not in CI): {msg}");
    None
}

/// Whether a PostgreSQL server answers at `AORTA_PG_URL`'s host (default 127.0.0.1:5432). In
/// CI an absent server fails the test; elsewhere it is a loud skip.
pub fn postgres_url() -> Option<String> {
    let url = std::env::var("AORTA_PG_URL")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".to_string());
    let host = url
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("host="))
        .unwrap_or("127.0.0.1");
    let port = url
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("port="))
        .unwrap_or("5432");
    if std::net::TcpStream::connect(format!("{host}:{port}")).is_ok() {
        return Some(url);
    }
    let msg = format!("no PostgreSQL at {host}:{port} (.ci/run starts one; or set AORTA_PG_URL)");
    if std::env::var_os("CI").is_some() {
        panic!("{msg}");
    }
    eprintln!("SKIPPED (not in CI): {msg}");
    None
}
