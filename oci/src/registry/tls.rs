//! TLS trust for registries with extra CA files.
//!
//! The system roots plus the configured certificates are trusted, through the platform
//! verifier. One addition, for Docker compatibility: the usual self-signed registry
//! certificate (`openssl req -x509 …`) is marked as a CA and used as the server's own
//! certificate; WebPKI rejects that (`CaUsedAsEndEntity`) while Go, and so Docker, accept it.
//! A server certificate byte-for-byte equal to one the user configured is therefore accepted
//! when the delegate's only objection is about its shape, not its identity.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// The platform verifier, plus pinned acceptance of configured self-signed certificates.
#[derive(Debug)]
struct PinnedOrPlatform {
    delegate: rustls_platform_verifier::Verifier,
    pinned: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for PinnedOrPlatform {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.delegate.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(v) => Ok(v),
            Err(e)
                if self
                    .pinned
                    .iter()
                    .any(|p| p.as_ref() == end_entity.as_ref())
                    && format!("{e:?}").contains("CaUsedAsEndEntity") =>
            {
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.delegate.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.delegate.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.delegate.supported_verify_schemes()
    }
}

/// A rustls client config trusting the system roots and `pem_files`' certificates.
pub(crate) fn client_config(pems: &[Vec<u8>]) -> Result<rustls::ClientConfig, String> {
    let mut certs = Vec::new();
    for pem in pems {
        for c in rustls::pki_types::pem::PemObject::pem_slice_iter(pem) {
            certs.push(c.map_err(|e| format!("bad PEM certificate: {e}"))?);
        }
    }
    if certs.is_empty() {
        return Err("no certificates found".into());
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let delegate =
        rustls_platform_verifier::Verifier::new_with_extra_roots(certs.clone(), provider.clone())
            .map_err(|e| format!("loading trust roots: {e}"))?;
    let verifier = PinnedOrPlatform {
        delegate,
        pinned: certs,
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(config)
}
