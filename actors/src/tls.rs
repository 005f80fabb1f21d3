//! TLS (rustls): the HTTPS server of `SslEnabled` and the HTTPS client of the peers, with
//! Orthanc's options (`SslCertificate`; `HttpsVerifyPeers`, `HttpsCACertificates`, and each
//! peer's `CertificateFile` / `CertificateKeyFile`). Reads files: call it at start-up or from
//! a blocking thread.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read the certificates of {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", path.display()));
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| format!("cannot read the private key of {}: {e}", path.display()))
}

/// The server side of `SslEnabled`: `SslCertificate` is one PEM file holding the certificate
/// chain and the private key, as Orthanc wants it.
pub fn server_config(certificate: &Path) -> Result<ServerConfig, String> {
    let certs = certificates(certificate)?;
    let key = private_key(certificate)?;
    ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("bad certificate or key in {}: {e}", certificate.display()))
}

/// How the HTTPS client checks peers and identifies itself.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// `HttpsVerifyPeers`: check the peer's certificate (default true).
    pub verify_peers: bool,
    /// `HttpsCACertificates`: a PEM file of trusted authorities (added to the usual roots).
    pub ca_certificates: Option<PathBuf>,
    /// A peer's `CertificateFile` and `CertificateKeyFile`: a client certificate.
    pub certificate: Option<(PathBuf, PathBuf)>,
}

/// The client side, for a peer.
pub fn client_config(tls: &ClientTls) -> Result<ClientConfig, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if tls.verify_peers {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(ca) = &tls.ca_certificates {
            for cert in certificates(ca)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("bad certificate in {}: {e}", ca.display()))?;
            }
        }
        builder.with_root_certificates(roots)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
    };
    match &tls.certificate {
        Some((cert, key)) => builder
            .with_client_auth_cert(certificates(cert)?, private_key(key)?)
            .map_err(|e| format!("bad client certificate {}: {e}", cert.display())),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// `HttpsVerifyPeers: false`: any certificate is accepted (its signatures still checked).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
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
