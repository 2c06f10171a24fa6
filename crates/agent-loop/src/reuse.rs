//! Images from a registry in place of a build, or under one. A fresh lock's published
//! image is pulled and taken only when its labels say it was verified against this
//! very spec and built from this very bundle; then it is run and checked like a built
//! image. Anything short of that (no such image, other digests, a registry that does
//! not answer) is said once and the bundle is built instead; refused credentials end
//! the run, as they would a push. A build that is needed first pulls the images it may
//! take cached steps from (the lock's published image, `[docker] cache_from`), keeps
//! them under the spec's cache tags, and names them as the build's `cachefrom`.

use std::time::Duration;

use agent_sandbox::{EnginePort, PushRefusal, SandboxError};

use crate::errors::LoopError;
use crate::events::{Event, EventSink};
use crate::iteration::Halt;
use crate::job::Job;
use crate::report::Published;
use crate::seal::{LABEL_BUNDLE_DIGEST, LABEL_SPEC_DIGEST};

/// How long pulling the published image may take.
pub(crate) const PULL_TIMEOUT: Duration = Duration::from_secs(1800);

/// What a run must find on the published image to take it without a build.
pub(crate) struct Wanted<'a> {
    pub published: &'a Published,
    pub spec_digest: &'a str,
    pub bundle_digest: &'a str,
}

/// The id of the published image, pulled and matching `wanted`; `None` when the
/// bundle must be built (the reason was sent as an event).
pub(crate) async fn published_image<E: EnginePort>(
    job: &Job,
    engine: &E,
    events: &EventSink,
    wanted: &Wanted<'_>,
) -> Result<Option<String>, Halt> {
    let reference = pinned(wanted.published);
    let skipped = |reason: String| {
        events(Event::ReuseSkipped {
            spec: job.spec.name.clone(),
            reference: reference.clone(),
            reason,
        });
        Ok(None)
    };
    let credentials = credentials_for(job, &reference).await?;
    let pulled = match engine
        .pull(&reference, credentials.as_ref(), PULL_TIMEOUT)
        .await
    {
        Ok(pulled) => pulled,
        Err(
            error @ SandboxError::PullImage {
                refusal: PushRefusal::AuthRefused,
                ..
            },
        ) => return Err(Halt::Failed(LoopError::Engine(error))),
        Err(error) => return skipped(agent_model::error_chain(&error)),
    };
    let label = |key: &str| pulled.labels.get(key).map_or("none", String::as_str);
    for (key, expected) in [
        (LABEL_SPEC_DIGEST, wanted.spec_digest),
        (LABEL_BUNDLE_DIGEST, wanted.bundle_digest),
    ] {
        if label(key) != expected {
            return skipped(format!(
                "its label `{key}` is `{}`, the lock's is `{expected}`",
                label(key)
            ));
        }
    }
    Ok(Some(pulled.id))
}

/// The images a build may take cached steps from, pulled: the references of those
/// kept under the spec's cache tags. One that cannot be pulled is said and left out.
pub(crate) async fn cache_sources<E: EnginePort>(
    job: &Job,
    engine: &E,
    events: &EventSink,
    references: &[String],
) -> Result<Vec<String>, Halt> {
    let mut kept = Vec::new();
    for reference in references {
        let credentials = credentials_for(job, reference).await?;
        let pulled = engine
            .pull(reference, credentials.as_ref(), PULL_TIMEOUT)
            .await;
        let skipped = |error: SandboxError| {
            events(Event::CacheSourceSkipped {
                spec: job.spec.name.clone(),
                reference: reference.clone(),
                reason: agent_model::error_chain(&error),
            })
        };
        let image = match pulled {
            Ok(image) => image,
            Err(error) => {
                skipped(error);
                continue;
            }
        };
        // Under a cache tag the trim and `gc --cache` see it, and nothing dangles.
        let entry = agent_sandbox::cache_entry_reference(&job.cache_repository(), &image.id);
        match engine.tag(&image.id, &entry).await {
            Ok(()) => kept.push(entry),
            Err(error) => skipped(error),
        }
    }
    Ok(kept)
}

/// The credentials the Docker CLI would use for `reference`'s registry.
pub(crate) async fn credentials_for(
    job: &Job,
    reference: &str,
) -> Result<Option<agent_sandbox::RegistryCredentials>, LoopError> {
    let Some(source) = &job.credentials else {
        return Ok(None);
    };
    let server = agent_sandbox::registry_server(reference);
    agent_sandbox::resolve_credentials(source, &server)
        .await
        .map_err(LoopError::Engine)
}

/// The published image by its manifest digest, so a tag moved since cannot swap it.
pub(crate) fn pinned(published: &Published) -> String {
    let repository = match published.reference.rsplit_once(':') {
        // A colon after the last slash ends the name: it is the tag.
        Some((name, tag)) if !tag.contains('/') => name,
        _ => published.reference.as_str(),
    };
    format!("{repository}@{}", published.digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_image_is_pulled_by_its_digest() {
        let published = |reference: &str| Published {
            reference: reference.to_owned(),
            digest: "sha256:ab".to_owned(),
        };
        assert_eq!(
            pinned(&published("127.0.0.1:5000/ci/hello:0123456789ab")),
            "127.0.0.1:5000/ci/hello@sha256:ab"
        );
        assert_eq!(
            pinned(&published("127.0.0.1:5000/ci/hello")),
            "127.0.0.1:5000/ci/hello@sha256:ab"
        );
    }
}
