//! Getting images onto the engine from a registry, within a deadline of our own: a
//! base image before a run (present already, or pulled), and a published verified
//! image that a fresh lock names, pulled with the registry's credentials.

use std::time::Duration;

use bollard::query_parameters::CreateImageOptionsBuilder;
use futures_util::StreamExt;

use crate::engine::Sandbox;
use crate::errors::SandboxError;
use crate::outcome::{ImageRole, PulledImage, PushRefusal};
use crate::registry_auth::RegistryCredentials;

impl Sandbox {
    /// Makes sure `image` is on the engine: `Ok(true)` when it was there, `Ok(false)`
    /// when it was pulled, an error naming the image when it can be neither found nor
    /// pulled within `timeout`, saying what it is for.
    pub async fn ensure_image(
        &self,
        role: ImageRole,
        image: &str,
        timeout: Duration,
    ) -> Result<bool, SandboxError> {
        if self.image_present(image).await? {
            return Ok(true);
        }
        let reference = with_tag(image);
        match self.pull_stream(&reference, None, timeout).await {
            Ok(()) => Ok(false),
            Err(error) => Err(SandboxError::Pull {
                role,
                image: image.to_owned(),
                reason: match error {
                    Some(error) => engine_message(&error),
                    None => format!("the pull did not finish within {} s", timeout.as_secs()),
                },
            }),
        }
    }

    /// Pulls `reference` (a tag or `repository@digest`) with `credentials` (anonymous
    /// when `None`) within `timeout`, and inspects what arrived.
    pub async fn pull(
        &self,
        reference: &str,
        credentials: Option<&RegistryCredentials>,
        timeout: Duration,
    ) -> Result<PulledImage, SandboxError> {
        let reference = with_tag(reference);
        if let Err(error) = self.pull_stream(&reference, credentials, timeout).await {
            let (refusal, source) = match error {
                Some(error) => (PushRefusal::classify(&engine_message(&error)), error),
                None => (
                    PushRefusal::TimedOut,
                    bollard::errors::Error::RequestTimeoutError,
                ),
            };
            return Err(SandboxError::PullImage {
                reference,
                refusal,
                source,
            });
        }
        let inspected = self
            .docker
            .inspect_image(&reference)
            .await
            .map_err(|source| SandboxError::InspectImage {
                image: reference.clone(),
                source,
            })?;
        Ok(described(inspected))
    }

    /// `image` (a reference or id) as the engine holds it, without pulling; `None`
    /// when the engine does not have it.
    pub async fn find_image(&self, image: &str) -> Result<Option<PulledImage>, SandboxError> {
        match crate::deadline::bounded(self.docker.inspect_image(image)).await {
            Ok(inspected) => Ok(Some(described(inspected))),
            Err(error) if crate::cleanup::is_status(&error, 404) => Ok(None),
            Err(source) => Err(SandboxError::InspectImage {
                image: image.to_owned(),
                source,
            }),
        }
    }

    /// Streams a pull to its end: `Err(None)` when it ran out of time.
    async fn pull_stream(
        &self,
        reference: &str,
        credentials: Option<&RegistryCredentials>,
        timeout: Duration,
    ) -> Result<(), Option<bollard::errors::Error>> {
        let options = CreateImageOptionsBuilder::default()
            .from_image(reference)
            .build();
        let credentials = credentials.map(RegistryCredentials::to_docker);
        let pulled = tokio::time::timeout(timeout, async {
            let mut stream = self.docker.create_image(Some(options), None, credentials);
            while let Some(item) = stream.next().await {
                item?;
            }
            Ok::<_, bollard::errors::Error>(())
        })
        .await;
        match pulled {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(Some(error)),
            Err(_elapsed) => Err(None),
        }
    }
}

/// What the engine says of an image, as the loop reads it.
fn described(inspected: bollard::models::ImageInspect) -> PulledImage {
    PulledImage {
        id: inspected.id.unwrap_or_default(),
        labels: inspected
            .config
            .and_then(|config| config.labels)
            .unwrap_or_default()
            .into_iter()
            .collect(),
        repo_digests: inspected.repo_digests.unwrap_or_default(),
    }
}

/// A reference with a tag or digest: without one the engine would pull every tag.
fn with_tag(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || last.contains('@') {
        image.to_owned()
    } else {
        format!("{image}:latest")
    }
}

/// The engine's own words for a failed pull, without bollard's wrapping.
fn engine_message(error: &bollard::errors::Error) -> String {
    match error {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        bollard::errors::Error::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::with_tag;

    #[test]
    fn an_untagged_reference_gets_latest_and_others_stay() {
        assert_eq!(with_tag("python"), "python:latest");
        assert_eq!(with_tag("python:3.10-slim"), "python:3.10-slim");
        assert_eq!(
            with_tag("localhost:5000/base"),
            "localhost:5000/base:latest"
        );
        assert_eq!(with_tag("base@sha256:abc"), "base@sha256:abc");
    }
}
