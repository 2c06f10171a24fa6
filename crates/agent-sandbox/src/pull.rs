//! Getting a base image onto the engine before a run: present already, or pulled,
//! within a deadline of our own.

use std::time::Duration;

use bollard::query_parameters::CreateImageOptionsBuilder;
use futures_util::StreamExt;

use crate::engine::Sandbox;
use crate::errors::SandboxError;

impl Sandbox {
    /// Makes sure `image` is on the engine: `Ok(true)` when it was there, `Ok(false)`
    /// when it was pulled, an error naming the image when it can be neither found nor
    /// pulled within `timeout`.
    pub async fn ensure_image(&self, image: &str, timeout: Duration) -> Result<bool, SandboxError> {
        if self.image_present(image).await? {
            return Ok(true);
        }
        let reference = with_tag(image);
        let options = CreateImageOptionsBuilder::default()
            .from_image(&reference)
            .build();
        let pulled = tokio::time::timeout(timeout, async {
            let mut stream = self.docker.create_image(Some(options), None, None);
            while let Some(item) = stream.next().await {
                item?;
            }
            Ok::<_, bollard::errors::Error>(())
        })
        .await;
        let failure = |reason: String| SandboxError::Pull {
            image: image.to_owned(),
            reason,
        };
        match pulled {
            Ok(Ok(())) => Ok(false),
            Ok(Err(error)) => Err(failure(engine_message(&error))),
            Err(_elapsed) => Err(failure(format!(
                "the pull did not finish within {} s",
                timeout.as_secs()
            ))),
        }
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
