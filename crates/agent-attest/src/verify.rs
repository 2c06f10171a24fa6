//! The check a deploy gate makes of an image's attestations: a Test Result, signed by
//! the given key, about this very digest, that says PASSED (and, when asked, for the
//! spec's current digest). Everything read is untrusted: each envelope is judged on
//! its own and the one that got furthest names the cause when none passes.

use crate::dsse::{Envelope, PAYLOAD_TYPE};
use crate::keys::PublicKey;
use crate::refusal::Refusal;
use crate::statement::{
    PASSED, ResourceDescriptor, STATEMENT_TYPE, Statement, TEST_RESULT, TestResultPredicate,
};
use crate::store::{Stored, attestation_tag};

/// What the attestation must say.
#[derive(Debug, Clone, Copy)]
pub struct Expectation<'a> {
    /// The image's manifest digest, `sha256:<hex>`.
    pub digest: &'a str,
    pub key: &'a PublicKey,
    /// The spec's current digest (hex), when a spec was given.
    pub spec_digest: Option<&'a str>,
}

/// A Test Result that vouches for the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attested {
    /// The envelope's digest in the registry.
    pub envelope: String,
    pub checks: Vec<String>,
    pub configuration: Vec<ResourceDescriptor>,
}

/// The outcome of the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Passed(Attested),
    Refused(Refusal),
}

/// Judges what was stored for `expected.digest` (`None`: no `.att` tag).
pub fn judge(stored: Option<&[Stored]>, expected: &Expectation<'_>) -> Verdict {
    let Some(stored) = stored else {
        return Verdict::Refused(Refusal::NoAttestation {
            tag: attestation_tag(expected.digest),
        });
    };
    // An annotation may lie; the statement inside decides. Envelopes annotated as
    // another predicate are still opened, so a mislabelled Test Result counts.
    let mut best: Option<Refusal> = None;
    let mut test_results = 0;
    for envelope in stored {
        match judge_one(envelope, expected) {
            Ok(attested) => return Verdict::Passed(attested),
            Err(None) => {}
            Err(Some(refusal)) => {
                test_results += 1;
                if best
                    .as_ref()
                    .is_none_or(|best| refusal.reach() > best.reach())
                {
                    best = Some(refusal);
                }
            }
        }
    }
    let annotated = stored
        .iter()
        .filter(|envelope| envelope.predicate_type.as_deref() == Some(TEST_RESULT))
        .count();
    match best {
        Some(refusal) if test_results > 0 && (annotated > 0 || refusal.reach() > 4) => {
            Verdict::Refused(refusal)
        }
        _ => Verdict::Refused(Refusal::NoTestResult {
            envelopes: stored.len(),
        }),
    }
}

/// One envelope: `Err(None)` when it is plainly not a Test Result (another predicate,
/// signed and valid, or annotated as another and unreadable).
fn judge_one(stored: &Stored, expected: &Expectation<'_>) -> Result<Attested, Option<Refusal>> {
    let annotated_other = stored
        .predicate_type
        .as_deref()
        .is_some_and(|predicate| predicate != TEST_RESULT);
    let opened = Envelope::parse(&stored.bytes).and_then(|envelope| {
        if envelope.payload_type != PAYLOAD_TYPE {
            return Err(Refusal::Malformed(format!(
                "its payload type is `{}`, not `{PAYLOAD_TYPE}`",
                envelope.payload_type
            )));
        }
        envelope.open(expected.key)
    });
    let payload = match opened {
        Ok(payload) => payload,
        Err(_) if annotated_other => return Err(None),
        Err(refusal) => return Err(Some(refusal)),
    };
    let statement: Statement = serde_json::from_slice(&payload).map_err(|error| {
        Some(Refusal::Malformed(format!(
            "its payload is not an in-toto Statement: {error}"
        )))
    })?;
    if statement.predicate_type != TEST_RESULT {
        return Err(None);
    }
    if statement.statement_type != STATEMENT_TYPE {
        return Err(Some(Refusal::Malformed(format!(
            "its statement type is `{}`",
            statement.statement_type
        ))));
    }
    if let Some(refusal) = other_digest(&statement, expected.digest) {
        return Err(Some(refusal));
    }
    let predicate: TestResultPredicate =
        serde_json::from_value(statement.predicate).map_err(|error| {
            Some(Refusal::Malformed(format!(
                "its predicate is not a Test Result: {error}"
            )))
        })?;
    if predicate.result != PASSED {
        return Err(Some(Refusal::NotPassed {
            result: predicate.result,
        }));
    }
    if let Some(current) = expected.spec_digest {
        let attested = predicate
            .configuration
            .first()
            .and_then(|spec| spec.digest.get("sha256"))
            .cloned()
            .unwrap_or_default();
        if attested != current {
            return Err(Some(Refusal::OlderSpec {
                attested,
                current: current.to_owned(),
            }));
        }
    }
    Ok(Attested {
        envelope: stored.digest.clone(),
        checks: predicate.passed_tests,
        configuration: predicate.configuration,
    })
}

/// A Statement whose subjects do not name `digest`: copied from another image.
fn other_digest(statement: &Statement, digest: &str) -> Option<Refusal> {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    let names_digest = statement
        .subject
        .iter()
        .any(|subject| subject.digest.get("sha256").map(String::as_str) == Some(hex));
    if names_digest {
        return None;
    }
    let attested = statement
        .subject
        .iter()
        .filter_map(|subject| subject.digest.get("sha256"))
        .map(|hex| format!("sha256:{hex}"))
        .collect();
    Some(Refusal::OtherDigest { attested })
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;
    use crate::keys::SigningKey;
    use crate::keys::tests::TEST_KEY;
    use crate::statement::{Subject, TestFacts, test_result_statement};

    const DIGEST: &str = "sha256:0011";

    fn stored(statement: &Statement, key: &SigningKey) -> Stored {
        let payload = serde_json::to_vec(statement).unwrap();
        let signed = Envelope::sign(PAYLOAD_TYPE, &payload, key).seal(&statement.predicate_type);
        Stored {
            predicate_type: Some(signed.predicate_type),
            digest: signed.digest,
            bytes: signed.bytes,
        }
    }

    fn statement(digest: &str, spec_digest: &str) -> Statement {
        let facts = TestFacts {
            passed: vec!["default/sequence".to_owned()],
            configuration: vec![ResourceDescriptor::new("s", None, "sha256", spec_digest)],
        };
        test_result_statement(Subject::image("r/s", digest), &facts)
    }

    #[test]
    fn each_cause_is_named() {
        let key = SigningKey::from_pem(&SecretString::from(TEST_KEY), "K").unwrap();
        let public = key.public_key();
        let expected = Expectation {
            digest: DIGEST,
            key: &public,
            spec_digest: Some("aa"),
        };
        let good = stored(&statement(DIGEST, "aa"), &key);
        assert!(matches!(
            judge(Some(std::slice::from_ref(&good)), &expected),
            Verdict::Passed(Attested { ref checks, .. }) if checks == &["default/sequence"]
        ));
        assert!(matches!(
            judge(None, &expected),
            Verdict::Refused(Refusal::NoAttestation { .. })
        ));
        let older = stored(&statement(DIGEST, "bb"), &key);
        assert!(matches!(
            judge(Some(&[older]), &expected),
            Verdict::Refused(Refusal::OlderSpec { .. })
        ));
        let elsewhere = stored(&statement("sha256:99", "aa"), &key);
        assert!(matches!(
            judge(Some(&[elsewhere]), &expected),
            Verdict::Refused(Refusal::OtherDigest { .. })
        ));
        let garbage = Stored {
            predicate_type: Some(TEST_RESULT.to_owned()),
            digest: "sha256:x".to_owned(),
            bytes: b"{not json".to_vec(),
        };
        assert!(matches!(
            judge(Some(&[garbage]), &expected),
            Verdict::Refused(Refusal::Malformed(_))
        ));
    }
}
