//! HTTPS for the client: rustls on the ring provider, verifying servers against the system's
//! roots plus an optional extra CA file (PEM), through the same platform verifier reqwest uses.
//!
//! reqwest's own `rustls` feature builds aws-lc (a large C build), and with
//! `rustls-no-provider` every `reqwest::Client` built without a configuration of its own panics
//! unless a process-wide provider was installed. So every client of a program that links this
//! crate is built from [`builder`]: the server's outbound clients too.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, OtherError, SignatureScheme};

use crate::error::Error;

/// A reqwest client builder speaking HTTPS through [`config`].
pub fn builder(ca_file: Option<&Path>) -> Result<reqwest::ClientBuilder, Error> {
    Ok(reqwest::Client::builder().tls_backend_preconfigured(config(ca_file)?))
}

/// The client's TLS configuration: TLS 1.2 and 1.3 on ring, HTTP/1.1, the system's roots and
/// those of `ca_file`. Without a CA file on a system that has no roots, the configuration still
/// builds (plain HTTP keeps working) and every HTTPS server is refused as untrusted.
pub fn config(ca_file: Option<&Path>) -> Result<ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let extra = match ca_file {
        Some(path) => read_ca_file(path)?,
        None => Vec::new(),
    };
    let verifier: Arc<dyn ServerCertVerifier> =
        match rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone()) {
            Ok(v) => Arc::new(v),
            Err(e) => match ca_file {
                Some(path) => {
                    return Err(Error::CaFile {
                        path: path.to_path_buf(),
                        reason: e.to_string(),
                    });
                }
                None => Arc::new(NoRoots(provider.clone())),
            },
        };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::TlsSetup(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let failed = |reason: String| Error::CaFile {
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| failed(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| failed(format!("not PEM certificates ({e})")))?;
    if certs.is_empty() {
        return Err(failed("holds no PEM certificate".into()));
    }
    Ok(certs)
}

/// The verifier of a system without CA certificates: every certificate is untrusted.
#[derive(Debug)]
struct NoRoots(Arc<CryptoProvider>);

#[derive(Debug, thiserror::Error)]
#[error("the system has no CA certificates")]
struct NoSystemRoots;

impl ServerCertVerifier for NoRoots {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            OtherError(Arc::new(NoSystemRoots)),
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_ca_file_is_named() {
        let dir =
            std::env::temp_dir().join(format!("cloudphone-client-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        for path in [junk.as_path(), &dir.join("absent.pem")] {
            let e = config(Some(path)).unwrap_err();
            assert!(
                matches!(&e, Error::CaFile { path: p, .. } if p == path),
                "{e}"
            );
            assert!(e.to_string().contains(&path.display().to_string()));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn without_a_ca_file_it_builds() {
        let c = config(None).unwrap();
        assert_eq!(c.alpn_protocols, [b"http/1.1".to_vec()]);
    }
}
