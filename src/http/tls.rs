//! TLS on the listener: the server certificate, its key and an optional
//! client CA, read from PEM files and reread when they change.
//!
//! Contract:
//! - [`TlsFiles::load`] either gives a whole rustls `ServerConfig` or says
//!   which file is wrong and why; nothing half-loaded is ever served.
//! - [`TlsReloader`] always holds a working config. A reload that fails
//!   keeps the old one and logs why, so a bad rotation never takes the
//!   listener down. Each handshake takes the config current at its start.
//! - Changes are found by polling each file's identity (device, inode,
//!   size, modification time) through its path, once a second. Kubernetes
//!   rotates a Secret volume by swapping the `..data` symlink of its
//!   directory: the path stays, the file behind it changes, and a watch on
//!   the old file would never fire. SIGHUP forces a reload at once.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};

use super::file_stamp::{file_stamp, FileStamp};

/// How often the files are checked for a change.
const POLL: Duration = Duration::from_secs(1);

/// The oldest protocol version served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinVersion {
    Tls12,
    Tls13,
}

/// Where the PEM files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Set: every client must present a certificate signed by one of these.
    pub client_ca: Option<PathBuf>,
    pub min_version: MinVersion,
}

impl TlsFiles {
    /// Reads the files into a server config; the error names the file.
    pub fn load(&self) -> Result<Arc<ServerConfig>, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("cert {}: {e}", self.cert.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "cert {}: no PEM certificate in it",
                self.cert.display()
            ));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| format!("privkey {}: {e}", self.key.display()))?;
        let versions: &[&rustls::SupportedProtocolVersion] = match self.min_version {
            MinVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            MinVersion::Tls13 => &[&rustls::version::TLS13],
        };
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| format!("TLS versions: {e}"))?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                let cas = CertificateDer::pem_file_iter(ca)
                    .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("client_ca {}: {e}", ca.display()))?;
                for cert in cas {
                    roots
                        .add(cert)
                        .map_err(|e| format!("client_ca {}: {e}", ca.display()))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| format!("client_ca {}: {e}", ca.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(certs, key).map_err(|e| {
            format!(
                "cert {} with privkey {}: {e}",
                self.cert.display(),
                self.key.display()
            )
        })?;
        // HTTP/1.1 only: that is all the server speaks.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// The identity of each file now, to notice a change.
    fn stamp(&self) -> Vec<FileStamp> {
        let mut out = vec![file_stamp(&self.cert), file_stamp(&self.key)];
        out.extend(self.client_ca.as_deref().map(file_stamp));
        out
    }
}

/// The config served now, kept current with the files.
pub struct TlsReloader {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
    stamp: std::sync::Mutex<Vec<FileStamp>>,
}

impl TlsReloader {
    /// Loads the files; an error here stops the agent from starting.
    pub fn new(files: TlsFiles) -> Result<Arc<TlsReloader>, String> {
        let stamp = files.stamp();
        let config = files.load()?;
        Ok(Arc::new(TlsReloader {
            files,
            current: RwLock::new(config),
            stamp: std::sync::Mutex::new(stamp),
        }))
    }

    /// The config for a handshake starting now.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Rereads the files if they changed (or always, with `force`); keeps
    /// the old config when the new files do not load. True when swapped.
    pub fn reload(&self, force: bool) -> bool {
        let stamp = self.files.stamp();
        {
            let mut seen = self.stamp.lock().unwrap_or_else(|e| e.into_inner());
            if !force && *seen == stamp {
                return false;
            }
            // A failed load is not retried until the files change again.
            *seen = stamp;
        }
        match self.files.load() {
            Ok(config) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = config;
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
                true
            }
            Err(why) => {
                tracing::warn!("TLS files changed but do not load, so the old ones stay: {why}");
                false
            }
        }
    }

    /// Polls the files, and reloads on SIGHUP, until the returned task is
    /// aborted (the server does so when it stops).
    pub fn watch(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut hup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            let mut tick = tokio::time::interval(POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let forced = match &mut hup {
                    Some(hup) => tokio::select! {
                        _ = tick.tick() => false,
                        _ = hup.recv() => true,
                    },
                    None => {
                        tick.tick().await;
                        false
                    }
                };
                let me = me.clone();
                // File reads and key parsing are blocking work.
                let _ = tokio::task::spawn_blocking(move || me.reload(forced)).await;
            }
        })
    }
}
