//! TLS for everything a kite dials (SockJS over websocket and XHR polling, raw `wss://`,
//! Kontrol's HTTP register and heartbeat), with rustls.
//!
//! Trust, in the order it is built:
//!
//! - the system's roots (`rustls-native-certs`: the operating system's store, as Go's
//!   `crypto/x509` uses), or, when `SSL_CERT_FILE` is set, the certificates of that file
//!   instead (what Go and OpenSSL do);
//! - plus the CA certificates of [`TlsTrust::ca_file`] (`KITE_TLS_CA_FILE`);
//! - or nothing at all with [`TlsTrust::insecure_skip_verify`]
//!   (`KITE_TLS_INSECURE_SKIP_VERIFY=1`): development only, logged as a warning.
//!
//! A kite builds its [`rustls::ClientConfig`] once (at its first `https`/`wss` dial) and
//! shares it with every connection; certificate problems come back as
//! [`Error::Tls`](crate::Error::Tls), naming the URL and the reason.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// The error type (`KiteError::kind`) of TLS failures: `tlsError`.
pub const TLS_ERROR: &str = "tlsError";
/// Environment variable naming an extra CA file (PEM) to trust.
pub const ENV_CA_FILE: &str = "KITE_TLS_CA_FILE";
/// Environment variable that turns certificate verification off (development only).
pub const ENV_INSECURE: &str = "KITE_TLS_INSECURE_SKIP_VERIFY";
/// The conventional variable replacing the system's roots with one PEM file.
pub const ENV_SSL_CERT_FILE: &str = "SSL_CERT_FILE";

/// What a client trusts (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsTrust {
    /// A PEM file of CA certificates trusted beside the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate. Development only: anyone on the path can read and change
    /// the traffic.
    pub insecure_skip_verify: bool,
}

impl TlsTrust {
    /// `KITE_TLS_CA_FILE` and `KITE_TLS_INSECURE_SKIP_VERIFY` (`1`, `true`, `yes`).
    pub fn from_env() -> TlsTrust {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        TlsTrust {
            ca_file: var(ENV_CA_FILE).map(PathBuf::from),
            insecure_skip_verify: var(ENV_INSECURE).is_some_and(|v| truthy(&v)),
        }
    }
}

pub(crate) fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system's roots, read and parsed into trust anchors once per process: the store does
/// not change under a running program, reading it takes milliseconds, and parsing its ~150
/// certificates again for every kite's first dial was 1.8% of `kontrol-bench`'s CPU (about
/// a thousand kites in one process).
fn system_store() -> &'static RootCertStore {
    static STORE: OnceLock<RootCertStore> = OnceLock::new();
    STORE.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::debug!(error = %e, "skipping part of the system's certificate store");
        }
        if found.certs.is_empty() {
            tracing::warn!(
                "no system root certificates found; only {ENV_CA_FILE} / {ENV_SSL_CERT_FILE} are trusted"
            );
        }
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(found.certs);
        roots
    })
}

/// Reads every certificate of a PEM file; an unreadable file, a broken PEM block or a file
/// without a certificate is an error naming the file.
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("CA file {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("CA file {} does not parse: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "CA file {} holds no PEM certificate",
            path.display()
        ));
    }
    Ok(certs)
}

/// Builds the client configuration for `trust` (plus `SSL_CERT_FILE` from the environment).
/// Errors are the reason, e.g. a CA file that does not parse.
pub fn client_config(trust: &TlsTrust) -> Result<Arc<rustls::ClientConfig>, String> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    if trust.insecure_skip_verify {
        tracing::warn!(
            "{ENV_INSECURE}: TLS certificates are NOT verified; anyone on the network path can \
             impersonate the servers this kite dials. Use it for development only."
        );
        let config = builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
            .with_no_client_auth();
        return Ok(Arc::new(config));
    }
    let mut roots = RootCertStore::empty();
    match std::env::var_os(ENV_SSL_CERT_FILE).filter(|v| !v.is_empty()) {
        Some(file) => {
            for c in read_ca_file(Path::new(&file))? {
                roots.add(c).map_err(|e| {
                    format!("{ENV_SSL_CERT_FILE} {}: {e}", Path::new(&file).display())
                })?;
            }
        }
        None => roots = system_store().clone(),
    }
    if let Some(path) = &trust.ca_file {
        for c in read_ca_file(path)? {
            roots
                .add(c)
                .map_err(|e| format!("CA file {}: {e}", path.display()))?;
        }
    }
    let config = builder.with_root_certificates(roots).with_no_client_auth();
    Ok(Arc::new(config))
}

/// The configuration of programs that dial without a kite (e.g. `sockjs::connect` alone):
/// [`TlsTrust::from_env`], built once per process.
pub fn default_client_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| client_config(&TlsTrust::from_env()))
        .clone()
}

/// A plain-words reason for a rustls error (what an operator should check).
pub fn describe(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "certificate has expired".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "certificate is not valid yet".into()
            }
            CertificateError::UnknownIssuer => format!(
                "certificate signed by an unknown authority (self-signed, or its CA is not \
                 trusted: add it with {ENV_CA_FILE} or {ENV_SSL_CERT_FILE})"
            ),
            CertificateError::NotValidForName => {
                "certificate is not valid for this host name".into()
            }
            CertificateError::NotValidForNameContext {
                expected,
                presented,
            } => format!(
                "certificate is not valid for {expected:?} (it names {})",
                presented.join(", ")
            ),
            CertificateError::BadSignature => "certificate has a bad signature".into(),
            CertificateError::Revoked => "certificate has been revoked".into(),
            other => format!("invalid certificate: {other:?}"),
        },
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            "the server did not answer with TLS (is it a plain http:// port?)".into()
        }
        other => other.to_string(),
    }
}

/// The rustls error somewhere in `e`'s chain of causes (directly, or inside an I/O error).
pub(crate) fn find_rustls_error<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        // An I/O error's `source()` skips the error it wraps (it returns that one's source):
        // step into the wrapped error itself.
        cur = match err.downcast_ref::<std::io::Error>() {
            Some(io) => match io.get_ref() {
                Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
                None => None,
            },
            None => err.source(),
        };
    }
    None
}

/// What a plain HTTP client reads from a TLS port of ours (and of Go's `net/http`).
pub(crate) const PLAIN_ON_TLS_BODY: &str = "Client sent an HTTP request to an HTTPS server.";

/// The reason when a plain `http://`/`ws://` request reached a TLS port.
pub(crate) fn plain_on_tls_reason() -> String {
    "the server speaks TLS: dial it with https:// (or wss://)".into()
}

/// Accepts every certificate; handshake signatures are still checked.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_ca_files_are_named() {
        let dir = std::env::temp_dir().join(format!("kite-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = read_ca_file(&empty).unwrap_err();
        assert!(
            e.contains("empty.pem") && e.contains("no PEM certificate"),
            "{e}"
        );
        let broken = dir.join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = read_ca_file(&broken).unwrap_err();
        assert!(
            e.contains("broken.pem") && e.contains("does not parse"),
            "{e}"
        );
        let missing = dir.join("missing.pem");
        assert!(read_ca_file(&missing).unwrap_err().contains("missing.pem"));
        let e = client_config(&TlsTrust {
            ca_file: Some(broken),
            insecure_skip_verify: false,
        })
        .unwrap_err();
        assert!(e.contains("broken.pem"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reasons_in_plain_words() {
        let e = rustls::Error::InvalidCertificate(CertificateError::Expired);
        assert_eq!(describe(&e), "certificate has expired");
        let e = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert!(describe(&e).contains("unknown authority"));
        assert!(truthy("1") && truthy("TRUE") && !truthy("0") && !truthy(""));
    }
}
