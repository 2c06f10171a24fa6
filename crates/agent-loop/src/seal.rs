//! The verified image's labels: ownership and provenance, put on once, on the
//! verified image only, by the cheapest way the engine accepts (the sandbox's seal);
//! then the tag.

use std::collections::BTreeMap;

use agent_sandbox::{EnginePort, RemovalScope, Sealed};

use crate::base_pin::BasePin;
use crate::errors::LoopError;
use crate::job::Job;

/// The label holding the digest of the spec an image was verified against.
pub(crate) const LABEL_SPEC_DIGEST: &str = "dev.agent.spec-digest";
/// The label holding the digest of the build context an image was built from.
pub(crate) const LABEL_BUNDLE_DIGEST: &str = "dev.agent.bundle-digest";

/// The label holding the base image the image was built on, pinned as the lock pins it.
pub(crate) const LABEL_BASE_DIGEST: &str = "dev.agent.base-digest";

/// What the labels say of the verification.
pub(crate) struct Verification<'a> {
    pub image_id: &'a str,
    pub spec_digest: &'a str,
    pub bundle_digest: &'a str,
    /// The base image it was built on, pinned.
    pub base: Option<&'a BasePin>,
    pub iterations: u32,
    pub checks: Vec<&'a str>,
}

/// Labels `verification.image_id` and tags the result; the new image and how it was
/// made.
pub(crate) async fn seal<E: EnginePort>(
    job: &Job,
    engine: &E,
    verification: &Verification<'_>,
    tag: &str,
) -> Result<Sealed, LoopError> {
    let sealed = engine
        .seal(verification.image_id, &labels(job, verification))
        .await
        .map_err(|error| LoopError::Seal {
            image: verification.image_id.to_string(),
            reason: agent_model::error_chain(&error),
        })?;
    // A re-run moves the tag from the previous run's image; `tag` removes that image
    // unless something still uses it. An image that could not be tagged goes at once.
    if let Err(error) = engine.tag(&sealed.image_id, tag).await {
        let _ = engine
            .remove(RemovalScope::Untagged(std::slice::from_ref(
                &sealed.image_id,
            )))
            .await;
        return Err(error.into());
    }
    Ok(sealed)
}

/// The run's own labels, the OCI annotations and the verification's.
fn labels(job: &Job, verification: &Verification<'_>) -> BTreeMap<String, String> {
    let mut labels = job.labels();
    let created = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let oci = "org.opencontainers.image";
    labels.insert(format!("{oci}.title"), job.spec.name.clone());
    labels.insert(format!("{oci}.created"), created);
    if let Some(revision) = &job.provenance.revision {
        labels.insert(format!("{oci}.revision"), revision.clone());
    }
    if let Some(source) = &job.provenance.source {
        labels.insert(format!("{oci}.source"), source.clone());
    }
    labels.insert(LABEL_SPEC_DIGEST.into(), verification.spec_digest.into());
    labels.insert(
        LABEL_BUNDLE_DIGEST.into(),
        verification.bundle_digest.into(),
    );
    if let Some(base) = verification.base {
        // The OCI annotations for the base, as labels: its name as the Dockerfile
        // writes it and its digest (the manifest's, or the image id of a local base).
        labels.insert(format!("{oci}.base.name"), base.name.clone());
        labels.insert(format!("{oci}.base.digest"), base.digest().to_owned());
        labels.insert(LABEL_BASE_DIGEST.into(), base.reference.clone());
    }
    labels.insert("dev.agent.model".into(), job.settings.model.name.clone());
    labels.insert(
        "dev.agent.iterations".into(),
        verification.iterations.to_string(),
    );
    labels.insert("dev.agent.checks".into(), verification.checks.join(","));
    labels
}
