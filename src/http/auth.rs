//! Credentials: HTTP basic auth against bcrypt hashes, and bearer tokens
//! from a file.
//!
//! Contract:
//! - [`Authenticator::check`] says whether an `Authorization` header holds
//!   a known user with the right password or a listed token. Nothing it
//!   is given is logged or kept in plain text.
//! - A bcrypt check costs tens of milliseconds by design, so a verified
//!   user and password are remembered as their HMAC-SHA256 under a key
//!   drawn at start: an authorised client pays for bcrypt once, not per
//!   push. The cache is bounded; when full it starts over.
//! - At most one bcrypt check per core runs at once, off the async
//!   workers. A check that cannot start within a second answers
//!   [`Verdict::Busy`] (503), so a flood of wrong passwords costs the
//!   flooder, not the CPU. The caller applies its rate limit before this.
//! - Tokens are compared as HMACs in constant time. The token file is
//!   reread when its identity (inode, size, modification time) changes,
//!   checked at most once a second; a file that cannot be read keeps the
//!   tokens read before, and logs why.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::sync::Semaphore;

use super::file_stamp::{file_stamp, FileStamp};

/// Verified credentials remembered at most.
const CACHE_MAX: usize = 4096;
/// How long a bcrypt check may wait for a free slot.
const BCRYPT_WAIT: Duration = Duration::from_secs(1);
/// How often the token file's identity is looked at.
const TOKEN_RECHECK: Duration = Duration::from_secs(1);

type Digest = [u8; 32];

/// What a request's credentials are worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// No `Authorization` header, or one of a scheme not configured.
    Missing,
    /// Credentials given but wrong.
    Wrong,
    /// Too many bcrypt checks at once; retry shortly.
    Busy,
}

/// The credentials one listener accepts.
pub struct Authenticator {
    /// User name → bcrypt hash.
    users: BTreeMap<String, String>,
    tokens: Option<TokenFile>,
    key: Digest,
    verified: Mutex<HashSet<Digest>>,
    bcrypt_slots: Arc<Semaphore>,
    /// bcrypt checks run, for the tests of what costs one.
    bcrypt_runs: std::sync::atomic::AtomicU64,
}

impl Authenticator {
    /// `users` are bcrypt hashes by name; `tokens_file` is read now, and
    /// an error here stops the agent from starting.
    pub fn new(
        users: BTreeMap<String, String>,
        tokens_file: Option<PathBuf>,
    ) -> Result<Authenticator, String> {
        let key = random_key().map_err(|e| format!("reading /dev/urandom: {e}"))?;
        let tokens = match tokens_file {
            Some(path) => Some(TokenFile::open(path, &key)?),
            None => None,
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Authenticator {
            users,
            tokens,
            key,
            verified: Mutex::new(HashSet::new()),
            bcrypt_slots: Arc::new(Semaphore::new(cores)),
            bcrypt_runs: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The `WWW-Authenticate` values of a 401: each scheme configured.
    pub fn challenges(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if !self.users.is_empty() {
            out.push(r#"Basic realm="pushkit", charset="UTF-8""#);
        }
        if self.tokens.is_some() {
            out.push(r#"Bearer realm="pushkit""#);
        }
        out
    }

    /// Checks an `Authorization` header value.
    pub async fn check(&self, authorization: Option<&str>) -> Verdict {
        let Some(value) = authorization else {
            return Verdict::Missing;
        };
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("basic") && !self.users.is_empty() {
            self.check_basic(rest).await
        } else if scheme.eq_ignore_ascii_case("bearer") {
            match &self.tokens {
                Some(tokens) if tokens.contains(&hmac(&self.key, rest.as_bytes())) => Verdict::Ok,
                Some(_) => Verdict::Wrong,
                None => Verdict::Missing,
            }
        } else {
            Verdict::Missing
        }
    }

    async fn check_basic(&self, encoded: &str) -> Verdict {
        let Some((user, password)) = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|text| {
                let (u, p) = text.split_once(':')?;
                Some((u.to_string(), p.to_string()))
            })
        else {
            return Verdict::Wrong;
        };
        // An unknown user is checked against a known user's hash, and then
        // refused: the time taken does not tell which user names exist.
        let (known, hash) = match self.users.get(&user) {
            Some(hash) => (true, hash.clone()),
            None => match self.users.values().next() {
                Some(hash) => (false, hash.clone()),
                None => return Verdict::Wrong,
            },
        };
        let mut pair = Vec::with_capacity(user.len() + 1 + password.len());
        pair.extend_from_slice(user.as_bytes());
        pair.push(0);
        pair.extend_from_slice(password.as_bytes());
        let digest = hmac(&self.key, &pair);
        if self.lock().contains(&digest) {
            return Verdict::Ok;
        }
        let slot = match tokio::time::timeout(
            BCRYPT_WAIT,
            self.bcrypt_slots.clone().acquire_owned(),
        )
        .await
        {
            Ok(Ok(slot)) => slot,
            _ => return Verdict::Busy,
        };
        self.bcrypt_runs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ok = tokio::task::spawn_blocking(move || {
            let ok = bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false);
            drop(slot);
            ok
        })
        .await
        .unwrap_or(false);
        if !ok || !known {
            return Verdict::Wrong;
        }
        let mut verified = self.lock();
        if verified.len() >= CACHE_MAX {
            verified.clear();
        }
        verified.insert(digest);
        Verdict::Ok
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<Digest>> {
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// HMAC-SHA256 of `data` under `key`.
fn hmac(key: &Digest, data: &[u8]) -> Digest {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key size");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Equality that takes the same time wherever the inputs differ.
fn same(a: &Digest, b: &Digest) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn random_key() -> std::io::Result<Digest> {
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
    Ok(key)
}

/// The bearer tokens, as HMACs, with the file they came from.
struct TokenFile {
    path: PathBuf,
    key: Digest,
    state: Mutex<TokenState>,
}

struct TokenState {
    tokens: Vec<Digest>,
    stamp: FileStamp,
    checked: Instant,
}

impl TokenFile {
    fn open(path: PathBuf, key: &Digest) -> Result<TokenFile, String> {
        let stamp = file_stamp(&path);
        let tokens = read_tokens(&path, key)?;
        Ok(TokenFile {
            path,
            key: *key,
            state: Mutex::new(TokenState {
                tokens,
                stamp,
                checked: Instant::now(),
            }),
        })
    }

    fn contains(&self, digest: &Digest) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.checked.elapsed() >= TOKEN_RECHECK {
            state.checked = Instant::now();
            let now = file_stamp(&self.path);
            if now != state.stamp {
                state.stamp = now;
                match read_tokens(&self.path, &self.key) {
                    Ok(tokens) => {
                        tracing::info!(file = %self.path.display(), tokens = tokens.len(), "bearer tokens reloaded");
                        state.tokens = tokens;
                    }
                    Err(why) => tracing::warn!("{why}; the tokens read before stay"),
                }
            }
        }
        // Every token is compared, so the time says nothing of which matched.
        state
            .tokens
            .iter()
            .fold(false, |found, t| found | same(t, digest))
    }
}

/// One token per line; blank lines and `#` comments skipped.
fn read_tokens(path: &std::path::Path, key: &Digest) -> Result<Vec<Digest>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("bearer_tokens_file {}: {e}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|t| hmac(key, t.as_bytes()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// bcrypt of "s3cret-push" at cost 4 (cheap, for tests).
    const HASH: &str = "$2b$04$isFOm4DC5eSoFgmG0QESLOPuwLBKrrwozU0uuor243PoF8.R90EbW";

    fn basic(user: &str, pw: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
        )
    }

    #[tokio::test]
    async fn basic_users_and_bearer_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::write(&tokens, "# ci\ntok-1\n\n  tok-2  \n").unwrap();
        let auth = Authenticator::new(
            [("alice".to_string(), HASH.to_string())].into(),
            Some(tokens.clone()),
        )
        .unwrap();
        assert_eq!(auth.check(None).await, Verdict::Missing);
        assert_eq!(
            auth.check(Some(&basic("alice", "s3cret-push"))).await,
            Verdict::Ok
        );
        // Cached now; still right, and a wrong one still wrong.
        assert_eq!(
            auth.check(Some(&basic("alice", "s3cret-push"))).await,
            Verdict::Ok
        );
        assert_eq!(
            auth.check(Some(&basic("alice", "nope"))).await,
            Verdict::Wrong
        );
        assert_eq!(
            auth.check(Some(&basic("bob", "s3cret-push"))).await,
            Verdict::Wrong
        );
        assert_eq!(auth.check(Some("Basic !!!")).await, Verdict::Wrong);
        assert_eq!(auth.check(Some("Bearer tok-1")).await, Verdict::Ok);
        assert_eq!(auth.check(Some("bearer tok-2")).await, Verdict::Ok);
        assert_eq!(auth.check(Some("Bearer tok-3")).await, Verdict::Wrong);
        assert_eq!(auth.check(Some("Digest x")).await, Verdict::Missing);
        assert_eq!(auth.challenges().len(), 2);

        // A new file replaces the tokens once its identity changes.
        let next = dir.path().join("tokens.new");
        std::fs::write(&next, "tok-3\n").unwrap();
        std::fs::rename(&next, &tokens).unwrap();
        auth.tokens.as_ref().unwrap().state.lock().unwrap().checked -= TOKEN_RECHECK;
        assert_eq!(auth.check(Some("Bearer tok-3")).await, Verdict::Ok);
        assert_eq!(auth.check(Some("Bearer tok-1")).await, Verdict::Wrong);
        // A file gone keeps what was read.
        std::fs::remove_file(&tokens).unwrap();
        auth.tokens.as_ref().unwrap().state.lock().unwrap().checked -= TOKEN_RECHECK;
        assert_eq!(auth.check(Some("Bearer tok-3")).await, Verdict::Ok);
    }

    #[test]
    fn an_unreadable_token_file_is_an_error() {
        let e = Authenticator::new(BTreeMap::new(), Some("/nonexistent/tokens".into()))
            .err()
            .unwrap();
        assert!(
            e.starts_with("bearer_tokens_file /nonexistent/tokens: "),
            "{e}"
        );
    }
}
