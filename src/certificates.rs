//! TLS credentials that follow their files: when the certificate, key or
//! client CA file changes (cert-manager and Kubernetes replace them in
//! place, through a symlink swap), new connections get the new ones and
//! the connections already open keep theirs. No restart, no call dropped.
//!
//! The C core asks the server for credentials before every TLS handshake
//! (grpcio's [`ServerCredentialsFetcher`]); it compares each file's
//! identity (device, inode, size, modification time: a few `stat` calls,
//! next to a handshake's milliseconds) with the last it read, and reads
//! them again only when one has changed.

use std::error::Error;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use grpcio::{
    CertificateRequestType, ServerCredentials, ServerCredentialsBuilder, ServerCredentialsFetcher,
};

/// Where the server's TLS material is, as PEM files.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The server's certificate chain.
    pub cert_chain: PathBuf,
    /// The private key of the chain's first certificate.
    pub private_key: PathBuf,
    /// With a client CA, clients must present a certificate it signed
    /// (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

/// What identifies one version of a file: a file replaced (renamed over,
/// or a symlink pointed elsewhere) has another inode, one rewritten in
/// place another size or modification time.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FileVersion {
    device: u64,
    inode: u64,
    size: u64,
    modified: Option<SystemTime>,
}

impl TlsFiles {
    fn paths(&self) -> impl Iterator<Item = &PathBuf> {
        [&self.cert_chain, &self.private_key]
            .into_iter()
            .chain(&self.client_ca)
    }

    fn versions(&self) -> Result<Vec<FileVersion>, String> {
        self.paths()
            .map(|path| {
                let metadata =
                    fs::metadata(path).map_err(|error| format!("{}: {error}", path.display()))?;
                Ok(FileVersion {
                    device: metadata.dev(),
                    inode: metadata.ino(),
                    size: metadata.size(),
                    modified: metadata.modified().ok(),
                })
            })
            .collect()
    }

    /// Reads the files; an error names the file that could not be read.
    pub fn read(&self) -> Result<ServerCredentialsBuilder, String> {
        let read = |path: &PathBuf| {
            fs::read(path).map_err(|error| format!("cannot read {}: {error}", path.display()))
        };
        let mut builder = ServerCredentialsBuilder::new()
            .add_cert(read(&self.cert_chain)?, read(&self.private_key)?);
        if let Some(ca) = &self.client_ca {
            builder = builder.root_cert(read(ca)?, Self::request_type_for(true));
        }
        Ok(builder)
    }

    fn request_type_for(mutual: bool) -> CertificateRequestType {
        if mutual {
            CertificateRequestType::RequestAndRequireClientCertificateAndVerify
        } else {
            CertificateRequestType::DontRequestClientCertificate
        }
    }

    /// Server credentials that read these files now, and again whenever
    /// they change.
    pub fn credentials(&self) -> ServerCredentials {
        let request_type = Self::request_type_for(self.client_ca.is_some());
        ServerCredentials::with_fetcher(
            Box::new(CertificateFiles {
                files: self.clone(),
                last_read: Mutex::new(None),
            }),
            request_type,
        )
    }
}

/// The fetcher: the files, and the versions of them it last read (or
/// failed to read, so that a broken file is reported once, not at every
/// handshake).
struct CertificateFiles {
    files: TlsFiles,
    last_read: Mutex<Option<Vec<FileVersion>>>,
}

impl ServerCredentialsFetcher for CertificateFiles {
    /// `Ok(None)`: nothing changed, or the new files cannot be read (the
    /// core keeps what it has). Called on the core's threads: it must not
    /// panic, so a poisoned lock is taken as it is.
    fn fetch(&self) -> Result<Option<ServerCredentialsBuilder>, Box<dyn Error>> {
        let mut last_read = self
            .last_read
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let first = last_read.is_none();
        let versions = match self.files.versions() {
            Ok(versions) => versions,
            Err(error) if first => return Err(error.into()),
            Err(_) => return Ok(None), // mid-replacement: the next handshake looks again
        };
        if last_read.as_ref() == Some(&versions) {
            return Ok(None);
        }
        *last_read = Some(versions);
        match self.files.read() {
            Ok(builder) => {
                if !first {
                    log::info!(
                        "TLS: new connections get the certificate now in {}",
                        self.files.cert_chain.display()
                    );
                }
                Ok(Some(builder))
            }
            Err(error) if first => Err(error.into()),
            Err(error) => {
                log::warn!("TLS: keeping the certificate served so far: {error}");
                Ok(None)
            }
        }
    }
}
