//! Bearer tokens and roles.
//!
//! A token is `aorta_<id>_<secret>`: `id` (8 hex digits) names it in the audit trail and in
//! `aorta token list`; `secret` is 32 random bytes (base64url). Only the SHA-256 of the whole
//! token is stored, so a copy of the token file grants nothing. The secret has 256 bits of
//! entropy, which is why a fast hash is enough here (a password would need a slow one).
//!
//! The token file is JSON, written atomically (temp file, fsync, rename) and re-read by a running
//! server when its modification time changes, so `aorta token create` / `revoke` take effect
//! without a restart.

use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// What a token may do. Each route names the roles it admits (see [`crate::routes::ROUTES`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including message bodies (every such read is audited).
    Admin,
    /// Pipelines, topics, metrics, dead letters and their replay; never message bodies.
    Operator,
    /// Alerts (list, acknowledge) and patient-scoped reads, audited.
    Clinician,
    /// The audit trail only.
    Auditor,
    /// Writes only: FHIR REST ingest for interface engines and feeds.
    Ingest,
}

impl Role {
    /// Every role, for tables and help text.
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Operator,
        Role::Clinician,
        Role::Auditor,
        Role::Ingest,
    ];

    /// The role's name as written in config and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Clinician => "clinician",
            Role::Auditor => "auditor",
            Role::Ingest => "ingest",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = AuthError;
    fn from_str(s: &str) -> Result<Self, AuthError> {
        Role::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| AuthError::UnknownRole(s.to_string()))
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Errors of the token store.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A role name that does not exist.
    #[error("unknown role {0:?}: expected one of admin, operator, clinician, auditor, ingest")]
    UnknownRole(String),
    /// The token file could not be read or written.
    #[error("token file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The token file is not what `aorta token create` writes.
    #[error("token file {path} is not valid: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `revoke` of an id that is not in the file.
    #[error("no token with id {0:?}")]
    NoSuchToken(String),
}

/// One stored token: never the token itself, only its hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// Public id, the `<id>` part of the token.
    pub id: String,
    /// A label for people (`ops-alice`, `lab-feed`).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// Hex SHA-256 of the whole token string.
    pub sha256: String,
    /// Creation time (RFC 3339, UTC).
    pub created: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    tokens: Vec<TokenEntry>,
}

/// Who a request is, once its token checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// Token id.
    pub id: String,
    /// Token label.
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// Why a request was refused authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No `Authorization: Bearer` header.
    Missing,
    /// A token that is malformed, unknown or revoked.
    Invalid,
}

/// The token file, cached and re-read when it changes.
#[derive(Debug)]
pub struct TokenStore {
    path: PathBuf,
    cache: Mutex<Cache>,
}

#[derive(Debug)]
struct Cache {
    entries: Vec<TokenEntry>,
    mtime: Option<SystemTime>,
    checked: Instant,
}

/// Hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Compares without an early exit, so the time taken does not tell how much of a hash matched.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl TokenStore {
    /// Opens the store at `path` (a missing file is an empty store: every request is refused).
    pub fn open(path: impl Into<PathBuf>) -> Result<TokenStore, AuthError> {
        let path = path.into();
        let (entries, mtime) = read_file(&path)?;
        Ok(TokenStore {
            path,
            cache: Mutex::new(Cache {
                entries,
                mtime,
                checked: Instant::now(),
            }),
        })
    }

    /// The file this store reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates a token, stores its hash and returns the token (shown once, never stored).
    pub fn create(&self, role: Role, name: &str) -> Result<(TokenEntry, String), AuthError> {
        let (mut entries, _) = read_file(&self.path)?;
        let mut rng = rand::rng();
        let id = loop {
            let id = format!("{:08x}", rng.next_u32());
            if !entries.iter().any(|e| e.id == id) {
                break id;
            }
        };
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        let token = format!(
            "aorta_{id}_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
        );
        let entry = TokenEntry {
            id,
            name: name.to_string(),
            role,
            sha256: sha256_hex(token.as_bytes()),
            created: crate::audit::rfc3339_now(),
        };
        entries.push(entry.clone());
        self.write(&entries)?;
        Ok((entry, token))
    }

    /// Removes a token; requests bearing it are refused from the next file check on.
    pub fn revoke(&self, id: &str) -> Result<TokenEntry, AuthError> {
        let (mut entries, _) = read_file(&self.path)?;
        let i = entries
            .iter()
            .position(|e| e.id == id)
            .ok_or_else(|| AuthError::NoSuchToken(id.to_string()))?;
        let gone = entries.remove(i);
        self.write(&entries)?;
        Ok(gone)
    }

    /// The stored entries (hashes, not tokens).
    pub fn list(&self) -> Result<Vec<TokenEntry>, AuthError> {
        Ok(read_file(&self.path)?.0)
    }

    /// Checks an `Authorization` header value.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Principal, Denied> {
        let token = header
            .ok_or(Denied::Missing)?
            .strip_prefix("Bearer ")
            .ok_or(Denied::Invalid)?
            .trim();
        let id = token
            .strip_prefix("aorta_")
            .and_then(|rest| rest.split_once('_'))
            .map(|(id, _)| id)
            .ok_or(Denied::Invalid)?;
        let hash = sha256_hex(token.as_bytes());
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        self.refresh(&mut cache);
        cache
            .entries
            .iter()
            .find(|e| e.id == id && same(e.sha256.as_bytes(), hash.as_bytes()))
            .map(|e| Principal {
                id: e.id.clone(),
                name: e.name.clone(),
                role: e.role,
            })
            .ok_or(Denied::Invalid)
    }

    /// Re-reads the file when its mtime changed, at most once every 250 ms. A file that became
    /// unreadable keeps the old entries (and says so) rather than locking everyone out silently.
    fn refresh(&self, cache: &mut Cache) {
        if cache.checked.elapsed() < Duration::from_millis(250) {
            return;
        }
        cache.checked = Instant::now();
        let mtime = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        if mtime == cache.mtime {
            return;
        }
        match read_file(&self.path) {
            Ok((entries, mtime)) => {
                cache.entries = entries;
                cache.mtime = mtime;
            }
            Err(e) => {
                tracing::error!(error = %e, "token file unreadable; keeping the tokens loaded before")
            }
        }
    }

    fn write(&self, entries: &[TokenEntry]) -> Result<(), AuthError> {
        let io = |source| AuthError::Io {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let body = serde_json::to_vec_pretty(&TokenFile {
            tokens: entries.to_vec(),
        })
        .map_err(|e| io(std::io::Error::other(e)))?;
        let tmp = self.path.with_extension("json.tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                f.set_permissions(std::fs::Permissions::from_mode(0o600))
                    .map_err(io)?;
            }
            f.write_all(&body).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        // A later check must see the new file even within the same mtime granularity.
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.entries = entries.to_vec();
        cache.mtime = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        Ok(())
    }
}

fn read_file(path: &Path) -> Result<(Vec<TokenEntry>, Option<SystemTime>), AuthError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let file: TokenFile =
                serde_json::from_slice(&bytes).map_err(|e| AuthError::Invalid {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?;
            let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
            Ok((file.tokens, mtime))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Vec::new(), None)),
        Err(source) => Err(AuthError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_tokens_authenticate_and_revoked_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(dir.path().join("tokens.json")).unwrap();
        assert_eq!(store.authenticate(None), Err(Denied::Missing));
        let (entry, token) = store.create(Role::Operator, "ops").unwrap();
        assert!(
            !std::fs::read_to_string(store.path())
                .unwrap()
                .contains(&token)
        );
        let p = store
            .authenticate(Some(&format!("Bearer {token}")))
            .unwrap();
        assert_eq!((p.role, p.id.as_str()), (Role::Operator, entry.id.as_str()));
        // One character off, another id, no scheme: all refused.
        let mut wrong = token.clone();
        wrong.pop();
        wrong.push('x');
        for bad in [
            format!("Bearer {wrong}"),
            token.clone(),
            format!("Bearer {}", token.replacen(&entry.id, "00000000", 1)),
            "Bearer aorta_".into(),
        ] {
            assert_eq!(
                store.authenticate(Some(&bad)),
                Err(Denied::Invalid),
                "{bad}"
            );
        }
        store.revoke(&entry.id).unwrap();
        assert_eq!(
            store.authenticate(Some(&format!("Bearer {token}"))),
            Err(Denied::Invalid)
        );
        assert!(matches!(
            store.revoke(&entry.id),
            Err(AuthError::NoSuchToken(_))
        ));
    }

    #[test]
    fn a_second_store_sees_tokens_created_by_another_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let server = TokenStore::open(&path).unwrap();
        let (_, token) = TokenStore::open(&path)
            .unwrap()
            .create(Role::Auditor, "a")
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            server
                .authenticate(Some(&format!("Bearer {token}")))
                .map(|p| p.role),
            Ok(Role::Auditor)
        );
    }
}
