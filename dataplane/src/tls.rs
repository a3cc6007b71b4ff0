//! TLS for client connections: a rustls server configuration from PEM files.
//! Only TLS 1.2 and 1.3 with rustls' default (safe) cipher suites.
//!
//! With `client-certs="request"` a client may present a certificate. It is not checked
//! against any CA — it proves nothing by itself — but its handshake signature is, so the
//! client holds its key: a token bound to the certificate's thumbprint (RFC 8705 §3,
//! `cnf` `x5t#S256`, checked by the session) is then usable only by that key's holder.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Loads the certificate chain and private key; errors name the file and the cause.
/// `client_certs`: ask clients for a certificate (optional).
pub fn acceptor(cert: &Path, key: &Path, client_certs: bool) -> Result<TlsAcceptor, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: cannot read certificates: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: bad certificate PEM: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("{}: cannot read private key: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?;
    let builder = if client_certs {
        builder.with_client_cert_verifier(Arc::new(AnyClientCert(provider)))
    } else {
        builder.with_no_client_auth()
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("{}: certificate and key do not fit: {e}", cert.display()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The SHA-256 thumbprint of a certificate (RFC 8705 §3.1 `x5t#S256`, before base64url).
pub fn thumbprint(der: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(der).into()
}

enum Tls {
    V12,
    V13,
}

/// A handshake signature, checked with the provider's algorithms: what the verifiers that
/// skip the chain (the peer's certificate is vouched for elsewhere) still check, so that
/// the peer holds the certificate's key.
fn signature(
    p: &rustls::crypto::CryptoProvider,
    version: Tls,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &rustls::DigitallySignedStruct,
) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
    let algs = &p.signature_verification_algorithms;
    match version {
        Tls::V12 => rustls::crypto::verify_tls12_signature(message, cert, dss, algs),
        Tls::V13 => rustls::crypto::verify_tls13_signature(message, cert, dss, algs),
    }
}

/// Optional client certificates, from anyone: the handshake signature is checked (the
/// client holds the key), the chain is not (the token says which certificate counts).
#[derive(Debug)]
struct AnyClientCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::server::danger::ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        signature(&self.0, Tls::V12, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        signature(&self.0, Tls::V13, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// TLS towards the upstream database.
///
/// `require` encrypts without verifying the server (libpq's `sslmode=require`): it protects
/// against passive eavesdropping only; `verify-full` checks the chain against the configured
/// CA and the host name.
pub fn connector(
    mode: crate::config::UpstreamTls,
    ca: Option<&Path>,
) -> Result<Option<tokio_rustls::TlsConnector>, String> {
    use crate::config::UpstreamTls;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("upstream TLS configuration: {e}"))?;
    let config = match mode {
        UpstreamTls::Disable => return Ok(None),
        UpstreamTls::VerifyFull => {
            let ca = ca.ok_or("upstream tls verify-full needs `ca`")?;
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca)
                .map_err(|e| format!("{}: cannot read CA certificates: {e}", ca.display()))?
            {
                let c = c.map_err(|e| format!("{}: bad CA PEM: {e}", ca.display()))?;
                roots
                    .add(c)
                    .map_err(|e| format!("{}: unusable CA certificate: {e}", ca.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("{}: no CA certificate found", ca.display()));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        UpstreamTls::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
            .with_no_client_auth(),
    };
    Ok(Some(tokio_rustls::TlsConnector::from(Arc::new(config))))
}

/// `sslmode=require`: any certificate is accepted, but the handshake signatures are still
/// checked (so the session keys are bound to whatever key the server presented).
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        signature(&self.0, Tls::V12, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        signature(&self.0, Tls::V13, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
