//! ECDSA P-256 keys as `openssl` and cosign's `import-key-pair` write them: the
//! private key from PEM (PKCS#8, or SEC1 `EC PRIVATE KEY`) held only in memory and
//! wiped on drop, the public key from PEM (`PUBLIC KEY`). A key's id is the SHA-256 of
//! its public key's DER, which envelopes carry as `keyid`.

use std::path::Path;

use p256::ecdsa::{self, signature::Signer as _, signature::Verifier as _};
use p256::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _, EncodePublicKey as _};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest as _, Sha256};

use crate::errors::AttestError;

/// The private key. `Debug` shows its id only.
pub struct SigningKey {
    key: ecdsa::SigningKey,
    id: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SigningKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The key in `pem`, read from the variable `variable` (named in the error, the
    /// text never is).
    pub fn from_pem(pem: &SecretString, variable: &str) -> Result<SigningKey, AttestError> {
        let text = pem.expose_secret().trim();
        let key = ecdsa::SigningKey::from_pkcs8_pem(text)
            .ok()
            .or_else(|| {
                p256::SecretKey::from_sec1_pem(text)
                    .ok()
                    .map(ecdsa::SigningKey::from)
            })
            .ok_or_else(|| AttestError::SigningKey {
                variable: variable.to_owned(),
            })?;
        let id = key_id(key.verifying_key());
        Ok(SigningKey { key, id })
    }

    /// The SHA-256 of the public key's DER, lowercase hex.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The DER signature of `message` (hashed with SHA-256).
    pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
        let signature: ecdsa::Signature = self.key.sign(message);
        signature.to_der().as_bytes().to_vec()
    }

    /// The public half, as `openssl ec -pubout` writes it.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            key: *self.key.verifying_key(),
            id: self.id.clone(),
        }
    }
}

/// A public key that envelopes are checked with.
#[derive(Debug, Clone)]
pub struct PublicKey {
    key: ecdsa::VerifyingKey,
    id: String,
}

impl PublicKey {
    /// The key in the PEM file at `path`.
    pub fn read(path: &Path) -> Result<PublicKey, AttestError> {
        let text = std::fs::read_to_string(path).map_err(|source| AttestError::PublicKeyFile {
            path: path.to_path_buf(),
            source,
        })?;
        PublicKey::from_pem(&text).ok_or_else(|| AttestError::PublicKey {
            path: path.to_path_buf(),
        })
    }

    pub fn from_pem(text: &str) -> Option<PublicKey> {
        let key = ecdsa::VerifyingKey::from_public_key_pem(text.trim()).ok()?;
        Some(PublicKey {
            id: key_id(&key),
            key,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The PEM text (`-----BEGIN PUBLIC KEY-----`).
    pub fn to_pem(&self) -> String {
        self.key
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .unwrap_or_default()
    }

    /// Whether `signature` (DER, or the 64 bytes of r and s) signs `message`.
    pub(crate) fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let parsed = ecdsa::Signature::from_der(signature)
            .or_else(|_| ecdsa::Signature::from_slice(signature));
        parsed.is_ok_and(|signature| self.key.verify(message, &signature).is_ok())
    }
}

fn key_id(key: &ecdsa::VerifyingKey) -> String {
    let der = key
        .to_public_key_der()
        .map(|der| der.as_bytes().to_vec())
        .unwrap_or_default();
    format!("{:x}", Sha256::digest(der))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A key made once with `openssl genpkey -algorithm EC -pkeyopt
    /// ec_paramgen_curve:P-256`, for these tests only.
    pub(crate) const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgNUTznOEU7P3+lwnj
qVfkfDm/ifcU6Qy3kSXRdReW5G+hRANCAARZVci8aXPyTvxPrRQlTIX/g0pXFLLW
BtBwRqw1b9DOEQRwowAFlcCOgnV5VEJg3vk8spNM15qEcMvNz+Dfzu2C
-----END PRIVATE KEY-----
";

    #[test]
    fn a_pkcs8_key_signs_what_its_public_key_verifies() {
        let key = SigningKey::from_pem(&SecretString::from(TEST_KEY), "K").unwrap();
        let public = PublicKey::from_pem(&key.public_key().to_pem()).unwrap();
        assert_eq!(public.id(), key.id());
        let signature = key.sign(b"message");
        assert!(public.verifies(b"message", &signature));
        assert!(!public.verifies(b"messagf", &signature));
        assert!(!public.verifies(b"message", b"not a signature"));
    }

    #[test]
    fn a_bad_key_names_the_variable_and_never_the_text() {
        let error = SigningKey::from_pem(&SecretString::from("secret words"), "MY_KEY")
            .unwrap_err()
            .to_string();
        assert!(error.contains("`MY_KEY`"), "{error}");
        assert!(!error.contains("secret words"), "{error}");
        let debug = format!(
            "{:?}",
            SigningKey::from_pem(&SecretString::from(TEST_KEY), "K").unwrap()
        );
        assert!(!debug.contains("MIGH"), "{debug}");
    }
}
