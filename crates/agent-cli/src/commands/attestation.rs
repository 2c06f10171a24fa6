//! `agent verify --attestation <REF> --key <PUB.pem> [SPEC]`: the check a deploy gate
//! makes, from the registry alone (no engine, no model). Exit 0 only when a Test
//! Result signed by the key names REF's digest and says PASSED (and, given SPEC, the
//! spec's current digest); 1 naming why otherwise; 3 when the registry cannot be
//! asked. The checks attested go to stdout, one a line (or `--json`); the verdict to
//! stderr.

use std::path::Path;

use agent_attest::{
    AttestError, Expectation, ImageReference, PublicKey, Refusal, Registry, Verdict,
};
use serde_json::json;

use crate::exit;
use crate::failure::Failure;

/// What was asked for.
pub struct Wanted<'a> {
    pub reference: &'a str,
    pub key: &'a Path,
    pub spec: Option<&'a Path>,
    pub json: bool,
}

pub async fn verify(wanted: &Wanted<'_>) -> Result<u8, Failure> {
    let key = PublicKey::read(wanted.key).map_err(|error| {
        Failure::usage(error).with_hint(
            "give the public half of the signing key: `openssl pkey -in KEY.pem -pubout`",
        )
    })?;
    let reference = ImageReference::parse(wanted.reference).map_err(Failure::usage)?;
    let spec_digest = match wanted.spec {
        Some(path) => {
            let spec = agent_spec::load_spec(path).map_err(Failure::usage)?;
            let digest = agent_loop::current_spec_digest(&spec).map_err(Failure::usage)?;
            Some(digest)
        }
        None => None,
    };
    let server = agent_sandbox::registry_server(wanted.reference);
    let credentials =
        agent_sandbox::resolve_credentials(&crate::publish::credential_source(), &server)
            .await
            .map_err(Failure::publish)?;
    let login = credentials.as_ref().and_then(crate::attest::login);
    let registry = Registry::new(&reference.registry, login).map_err(unreachable)?;
    let digest = match agent_attest::resolve(&registry, &reference).await {
        Ok(digest) => digest,
        Err(error) if error.is_unreachable() => return Err(unreachable(error)),
        Err(error) => return Ok(refused(wanted, None, &error.to_string())),
    };
    let stored = match agent_attest::fetch(&registry, &reference.path, &digest).await {
        Ok(stored) => stored,
        Err(error) if error.is_unreachable() => return Err(unreachable(error)),
        Err(error) => {
            let refusal = Refusal::Malformed(error.to_string());
            return Ok(refused(wanted, Some(&digest), &refusal.to_string()));
        }
    };
    let expectation = Expectation {
        digest: &digest,
        key: &key,
        spec_digest: spec_digest.as_deref(),
    };
    match agent_attest::judge(stored.as_deref(), &expectation) {
        Verdict::Passed(attested) => {
            if wanted.json {
                let summary = json!({
                    "reference": wanted.reference,
                    "digest": digest,
                    "verified": true,
                    "key_id": key.id(),
                    "envelope": attested.envelope,
                    "checks": attested.checks,
                    "configuration": attested.configuration,
                });
                println!("{summary:#}");
            } else {
                for check in &attested.checks {
                    println!("{check}");
                }
            }
            eprintln!(
                "agent: {} ({digest}): a Test Result signed by key {} says PASSED for {} checks",
                wanted.reference,
                key.id(),
                attested.checks.len()
            );
            Ok(exit::VERIFIED)
        }
        Verdict::Refused(refusal) => Ok(refused(wanted, Some(&digest), &refusal.to_string())),
    }
}

/// Says why the image is not vouched for; exit 1.
fn refused(wanted: &Wanted<'_>, digest: Option<&str>, reason: &str) -> u8 {
    if wanted.json {
        let summary = json!({
            "reference": wanted.reference,
            "digest": digest,
            "verified": false,
            "reason": reason,
        });
        println!("{summary:#}");
    }
    let at = digest
        .map(|digest| format!(" ({digest})"))
        .unwrap_or_default();
    eprintln!("agent: {}{at}: not verified: {reason}", wanted.reference);
    exit::NOT_VERIFIED
}

fn unreachable(error: AttestError) -> Failure {
    Failure::infrastructure(anyhow::Error::new(error)).with_hint(
        "is the registry running and reachable? its credentials are read as the Docker CLI reads them (`docker login`)",
    )
}
