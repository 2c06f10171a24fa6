//! Why an image's attestations do not vouch for it, each cause named for people.

/// One reason an attestation was not accepted, from the least to the most of the
/// checks it got through (the order [`Refusal::reach`] ranks them by).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No `.att` tag for the digest.
    NoAttestation { tag: String },
    /// The tag holds envelopes, none of them a Test Result.
    NoTestResult { envelopes: usize },
    /// Not an envelope, not base64, not a Statement, a layer whose bytes are not its
    /// digest: the reason in words.
    Malformed(String),
    /// An envelope with no signature at all.
    Unsigned,
    /// Signed by another key (its `keyid`).
    OtherKey { keyid: String },
    /// A signature that does not verify: the payload or its type changed after signing
    /// (when the signature names this key), or another key without a `keyid`.
    BadSignature { named_this_key: bool },
    /// A valid Test Result for other digests: copied from another image.
    OtherDigest { attested: Vec<String> },
    /// A valid Test Result whose `result` is not `PASSED`.
    NotPassed { result: String },
    /// A valid Test Result for an older spec.
    OlderSpec { attested: String, current: String },
}

impl Refusal {
    /// How far an envelope got before it was refused: the refusal to report is the
    /// one that got furthest.
    pub fn reach(&self) -> u8 {
        match self {
            Refusal::NoAttestation { .. } => 0,
            Refusal::NoTestResult { .. } => 1,
            Refusal::Malformed(_) => 2,
            Refusal::Unsigned => 3,
            Refusal::OtherKey { .. } | Refusal::BadSignature { .. } => 4,
            Refusal::OtherDigest { .. } => 5,
            Refusal::NotPassed { .. } => 6,
            Refusal::OlderSpec { .. } => 7,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NoAttestation { tag } => write!(formatter, "no attestation: no `{tag}` tag"),
            Refusal::NoTestResult { envelopes } => write!(
                formatter,
                "no attestation: none of the {envelopes} envelopes is a Test Result"
            ),
            Refusal::Malformed(reason) => write!(formatter, "malformed envelope: {reason}"),
            Refusal::Unsigned => write!(formatter, "malformed envelope: it has no signature"),
            Refusal::OtherKey { keyid } => {
                write!(formatter, "signed by another key (key id {keyid})")
            }
            Refusal::BadSignature {
                named_this_key: true,
            } => write!(
                formatter,
                "bad signature: the envelope changed after this key signed it"
            ),
            Refusal::BadSignature {
                named_this_key: false,
            } => write!(
                formatter,
                "bad signature: it does not verify with this key (another key, or changed after signing)"
            ),
            Refusal::OtherDigest { attested } => write!(
                formatter,
                "attested for another digest ({}): copied from another image",
                attested.join(", ")
            ),
            Refusal::NotPassed { result } => write!(formatter, "the attested result is {result}"),
            Refusal::OlderSpec { attested, current } => write!(
                formatter,
                "attested for an older spec (spec digest {attested}; the spec's is now {current})"
            ),
        }
    }
}
