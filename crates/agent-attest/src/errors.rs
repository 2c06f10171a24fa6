//! What can go wrong while signing, storing and fetching attestations. The signing
//! key never appears in a message: errors about it name the variable only.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    #[error(
        "the variable `{variable}` does not hold an ECDSA P-256 private key in PEM (PKCS#8 `PRIVATE KEY` or `EC PRIVATE KEY`)"
    )]
    SigningKey { variable: String },

    #[error("cannot read the public key `{path}`")]
    PublicKeyFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("`{path}` is not an ECDSA P-256 public key in PEM (`PUBLIC KEY`)")]
    PublicKey { path: PathBuf },

    #[error("`{reference}` is not an image reference: {reason}")]
    Reference { reference: String, reason: String },

    #[error("cannot reach the registry `{registry}`")]
    Unreachable {
        registry: String,
        #[source]
        source: reqwest::Error,
    },

    #[error("the registry `{registry}` refused the credentials ({status} on {what})")]
    AuthRefused {
        registry: String,
        what: String,
        status: u16,
    },

    #[error("the registry `{registry}` answered {status} to {what}: {message}")]
    Registry {
        registry: String,
        what: String,
        status: u16,
        message: String,
    },

    #[error("{what} from `{registry}` is larger than {limit} bytes")]
    TooLarge {
        registry: String,
        what: String,
        limit: usize,
    },

    #[error("{what} from `{registry}` is not valid: {reason}")]
    Malformed {
        registry: String,
        what: String,
        reason: String,
    },

    #[error("`{reference}` is not in the registry")]
    NotFound { reference: String },
}

impl AttestError {
    /// The registry could not be asked at all (down, refused the credentials): an
    /// infrastructure failure rather than an answer about the image.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            AttestError::Unreachable { .. } | AttestError::AuthRefused { .. }
        ) || matches!(self, AttestError::Registry { status, .. } if *status >= 500)
    }
}
