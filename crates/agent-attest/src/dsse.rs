//! DSSE envelopes (`payloadType`, base64 `payload`, `signatures` of `keyid` and base64
//! `sig`): signed over DSSE's pre-authentication encoding, so the signature covers the
//! payload's type as well as its bytes; opened only through a check of a signature by
//! the given key.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::keys::{PublicKey, SigningKey};
use crate::refusal::Refusal;

/// The payload type of an in-toto Statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// An envelope as it is written and read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub payload: String,
    pub signatures: Vec<Signature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    #[serde(default)]
    pub keyid: String,
    pub sig: String,
}

/// A signed statement ready to store: its predicate type, the envelope's JSON and
/// that JSON's digest (`sha256:…`), which names it in the registry and the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub predicate_type: String,
    pub bytes: Vec<u8>,
    pub digest: String,
}

/// DSSE's pre-authentication encoding: `DSSEv1 <len> <type> <len> <payload>`.
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut encoded = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    encoded.extend_from_slice(payload);
    encoded
}

/// `sha256:<hex>` of `bytes`.
pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

impl Envelope {
    /// `payload` of `payload_type`, signed by `key`.
    pub fn sign(payload_type: &str, payload: &[u8], key: &SigningKey) -> Envelope {
        let signature = key.sign(&pae(payload_type, payload));
        Envelope {
            payload_type: payload_type.to_owned(),
            payload: STANDARD.encode(payload),
            signatures: vec![Signature {
                keyid: key.id().to_owned(),
                sig: STANDARD.encode(signature),
            }],
        }
    }

    /// The envelope as stored, with its predicate type.
    pub fn seal(&self, predicate_type: &str) -> Signed {
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        Signed {
            predicate_type: predicate_type.to_owned(),
            digest: sha256_digest(&bytes),
            bytes,
        }
    }

    /// An envelope read from untrusted bytes.
    pub fn parse(bytes: &[u8]) -> Result<Envelope, Refusal> {
        serde_json::from_slice(bytes)
            .map_err(|error| Refusal::Malformed(format!("not a DSSE envelope: {error}")))
    }

    /// The payload, when a signature on it verifies with `key`. Refused: no signature,
    /// a signature whose `keyid` names another key, or none that verifies.
    pub fn open(&self, key: &PublicKey) -> Result<Vec<u8>, Refusal> {
        let payload = decode(&self.payload)
            .ok_or_else(|| Refusal::Malformed("its payload is not base64".to_owned()))?;
        if self.signatures.is_empty() {
            return Err(Refusal::Unsigned);
        }
        let message = pae(&self.payload_type, &payload);
        let mut other_key = None;
        for signature in &self.signatures {
            if !signature.keyid.is_empty() && signature.keyid != key.id() {
                other_key = Some(signature.keyid.clone());
                continue;
            }
            let verified =
                decode(&signature.sig).is_some_and(|signature| key.verifies(&message, &signature));
            if verified {
                return Ok(payload);
            }
        }
        // A signature by this key's id that fails says more than another key's id.
        let named_this_key = self
            .signatures
            .iter()
            .any(|signature| signature.keyid == key.id());
        match other_key {
            Some(keyid) if !named_this_key => Err(Refusal::OtherKey { keyid }),
            _ => Err(Refusal::BadSignature { named_this_key }),
        }
    }
}

/// DSSE allows either base64 alphabet.
fn decode(text: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .ok()
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;
    use crate::keys::tests::TEST_KEY;

    fn key() -> SigningKey {
        SigningKey::from_pem(&SecretString::from(TEST_KEY), "K").unwrap()
    }

    #[test]
    fn the_encoding_is_dsse_v1() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[test]
    fn a_signed_envelope_opens_with_its_key_only_while_unchanged() {
        let key = key();
        let envelope = Envelope::sign(PAYLOAD_TYPE, b"{\"a\":1}", &key);
        assert_eq!(envelope.open(&key.public_key()).unwrap(), b"{\"a\":1}");

        let mut changed = envelope.clone();
        changed.payload = STANDARD.encode(b"{\"a\":2}");
        assert_eq!(
            changed.open(&key.public_key()),
            Err(Refusal::BadSignature {
                named_this_key: true
            })
        );

        let mut retyped = envelope.clone();
        retyped.payload_type = "text/plain".to_owned();
        assert!(retyped.open(&key.public_key()).is_err());

        let mut unsigned = envelope.clone();
        unsigned.signatures.clear();
        assert_eq!(unsigned.open(&key.public_key()), Err(Refusal::Unsigned));

        let mut anonymous = envelope;
        anonymous.signatures[0].keyid = "someone".to_owned();
        assert_eq!(
            anonymous.open(&key.public_key()),
            Err(Refusal::OtherKey {
                keyid: "someone".to_owned()
            })
        );
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for bytes in [&b""[..], b"{}", b"[1]", b"{\"payload\": 3}", &[0xff; 40]] {
            assert!(matches!(Envelope::parse(bytes), Err(Refusal::Malformed(_))));
        }
        let envelope = Envelope {
            payload_type: PAYLOAD_TYPE.to_owned(),
            payload: "***".to_owned(),
            signatures: Vec::new(),
        };
        assert!(matches!(
            envelope.open(&key().public_key()),
            Err(Refusal::Malformed(_))
        ));
    }
}
