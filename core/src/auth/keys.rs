//! RSA key pairs as Kontrol stores them: an id, a PKIX public PEM (`BEGIN PUBLIC KEY`, the
//! form the reference's JWT library reads) and a PKCS#1 private PEM (`BEGIN RSA PRIVATE KEY`).

use std::fmt;

use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
use rsa::PrivateKey;

use super::AuthError;

/// Modulus size of generated keys, as in the reference.
pub const KEY_BITS: usize = 2048;

/// A Kontrol signing key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPair {
    /// Unique id of the pair (a UUID when generated).
    pub id: String,
    /// PKIX PEM public key; this text is what kite keys carry as `kontrolKey`.
    pub public_pem: String,
    /// PKCS#1 (or PKCS#8) PEM private key.
    pub private_pem: String,
}

impl KeyPair {
    /// Generates a new 2048-bit RSA pair with a fresh UUID id.
    pub fn generate() -> Result<KeyPair, AuthError> {
        let key = PrivateKey::new(&mut getrandom::SysRng, KEY_BITS)
            .map_err(|e| AuthError::Signing(format!("key generation: {e}")))?;
        Self::from_key(&key)
    }

    /// Builds a pair from a PEM private key (PKCS#1 or PKCS#8), deriving the public PEM and
    /// giving it a fresh UUID id.
    pub fn from_pem(private_pem: &str) -> Result<KeyPair, AuthError> {
        let pem = private_pem.trim();
        let key = PrivateKey::from_pkcs1_pem(pem)
            .or_else(|_| PrivateKey::from_pkcs8_pem(pem))
            .map_err(|e| {
                AuthError::InvalidKey(format!(
                    "key must be a PEM encoded PKCS1 or PKCS8 RSA private key ({e})"
                ))
            })?;
        let mut pair = Self::from_key(&key)?;
        // Keep the caller's text so that a stored pair round-trips byte for byte.
        pair.private_pem = private_pem.to_string();
        Ok(pair)
    }

    /// Replaces the id.
    pub fn with_id(mut self, id: impl Into<String>) -> KeyPair {
        self.id = id.into();
        self
    }

    fn from_key(key: &PrivateKey) -> Result<KeyPair, AuthError> {
        let public_pem = key
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| AuthError::InvalidKey(e.to_string()))?;
        let private_pem = key
            .to_pkcs1_pem(LineEnding::LF)
            .map_err(|e| AuthError::InvalidKey(e.to_string()))?;
        Ok(KeyPair {
            id: uuid::Uuid::new_v4().to_string(),
            public_pem,
            private_pem: private_pem.to_string(),
        })
    }
}

impl fmt::Debug for KeyPair {
    /// Never prints the private key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("id", &self.id)
            .field("public_pem", &self.public_pem)
            .field("private_pem", &"[redacted]")
            .finish()
    }
}
