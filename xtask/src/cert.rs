//! Test certificates: made when a stage needs TLS (the https browser runs, the HTTP/2 and
//! HTTP/3 interop runs), never committed.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A self-signed certificate for 127.0.0.1 and localhost, written as PEM into `dir`: the
/// paths of the certificate and of its key.
pub(crate) fn test_certificate(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .context("cannot make a test certificate")?;
    std::fs::create_dir_all(dir)?;
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem())?;
    std::fs::write(&key, made.signing_key.serialize_pem())?;
    Ok((cert, key))
}
