//! TLS client configuration for targets: rustls with the ring provider.
//!
//! `sslmode=require` accepts any certificate (as libpq does without a root certificate: the
//! connection is encrypted, the server is not authenticated); with `sslrootcert=` the chain
//! and the host name are verified. Session resumption is off so that every connection in a
//! connection storm pays a full handshake, as libpq's (it creates a fresh SSL context per
//! connection). This module builds configurations only; it never connects.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::{CryptoProvider, ring};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_rustls::TlsConnector;

use crate::url::{SslMode, Target};

/// Most certificates a root-certificate file may hold.
const MAX_ROOTS: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("sslrootcert {path}: {why}")]
    RootCert { path: String, why: String },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The connector for a target, or None when it never uses TLS.
pub fn connector(t: &Target) -> Result<Option<TlsConnector>, TlsError> {
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let mut config = match (t.ssl, &t.root_cert) {
        (SslMode::Disable, _) => return Ok(None),
        (SslMode::VerifyFull, Some(path)) => {
            let err = |why: String| TlsError::RootCert {
                path: path.display().to_string(),
                why,
            };
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path).map_err(|e| err(e.to_string()))?;
            for (i, c) in certs.enumerate() {
                if i >= MAX_ROOTS {
                    return Err(err(format!("more than {MAX_ROOTS} certificates")));
                }
                roots
                    .add(c.map_err(|e| err(e.to_string()))?)
                    .map_err(|e| err(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(err("no certificate found".into()));
            }
            let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| err(e.to_string()))?;
            builder.with_webpki_verifier(verifier).with_no_client_auth()
        }
        _ => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth(),
    };
    config.resumption = Resumption::disabled();
    Ok(Some(TlsConnector::from(Arc::new(config))))
}

/// sslmode=require: the certificate is not checked, the handshake signatures still are (so
/// the session keys really are shared with the holder of the presented key).
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
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
