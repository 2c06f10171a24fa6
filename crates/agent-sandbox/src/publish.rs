//! A verified image leaving the engine: tagged and pushed to a registry (the manifest
//! digest the registry answered is returned), or exported to a file `docker load`
//! reads, streamed to disk and hashed on the way.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::query_parameters::PushImageOptionsBuilder;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::engine::Sandbox;
use crate::errors::SandboxError;
use crate::outcome::PushRefusal;
use crate::registry_auth::RegistryCredentials;

/// A pushed image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// `<repository>:<tag>` as pushed.
    pub reference: String,
    /// The manifest digest the registry answered (`sha256:…`).
    pub digest: String,
}

/// An image written to a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    pub path: PathBuf,
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
    pub bytes: u64,
}

impl Sandbox {
    /// Tags `image` (an id or reference) as `<repository>:<tag>` (the repository with
    /// its registry host) and pushes that tag with `credentials` (anonymous when
    /// `None`), within `timeout`.
    pub async fn push(
        &self,
        image: &str,
        repository: &str,
        tag: &str,
        credentials: Option<&RegistryCredentials>,
        timeout: Duration,
    ) -> Result<Pushed, SandboxError> {
        let reference = format!("{repository}:{tag}");
        self.tag(image, &reference).await?;
        let refused = |refusal: PushRefusal, source| SandboxError::Push {
            reference: reference.clone(),
            refusal,
            source,
        };
        let options = PushImageOptionsBuilder::default().tag(tag).build();
        let pushed = tokio::time::timeout(timeout, async {
            let mut stream = self.docker.push_image(
                repository,
                Some(options),
                credentials.map(RegistryCredentials::to_docker),
            );
            let mut digest = None;
            while let Some(item) = stream.next().await {
                let info = item?;
                if let Some(found) = info.status.as_deref().and_then(digest_in_status) {
                    digest = Some(found);
                }
            }
            Ok::<_, bollard::errors::Error>(digest)
        })
        .await;
        let digest = match pushed {
            Ok(Ok(digest)) => digest,
            Ok(Err(error)) => {
                let refusal = PushRefusal::classify(&engine_words(&error));
                return Err(refused(refusal, error));
            }
            Err(_elapsed) => {
                let error = bollard::errors::Error::RequestTimeoutError;
                return Err(refused(PushRefusal::TimedOut, error));
            }
        };
        let digest = match digest {
            Some(digest) => digest,
            None => self.repository_digest(repository).await?.ok_or_else(|| {
                let error = bollard::errors::Error::DockerStreamError {
                    error: "the registry answered no manifest digest".to_owned(),
                };
                refused(PushRefusal::Other, error)
            })?,
        };
        Ok(Pushed { reference, digest })
    }

    /// The digest the engine recorded for `repository` (`RepoDigests`) after a push.
    async fn repository_digest(&self, repository: &str) -> Result<Option<String>, SandboxError> {
        let inspected = self
            .docker
            .inspect_image(repository)
            .await
            .map_err(|source| SandboxError::InspectImage {
                image: repository.to_owned(),
                source,
            })?;
        let prefix = format!("{repository}@");
        Ok(inspected
            .repo_digests
            .unwrap_or_default()
            .into_iter()
            .find_map(|entry| entry.strip_prefix(&prefix).map(str::to_owned)))
    }

    /// Writes `image` as the engine exports it (the tar `docker load` reads) to `path`,
    /// streamed and hashed on the way; written beside it first and renamed at the end,
    /// so `path` is never a partial file.
    pub async fn save(
        &self,
        image: &str,
        path: &Path,
        timeout: Duration,
    ) -> Result<Saved, SandboxError> {
        let partial = partial_path(path);
        let written = tokio::time::timeout(timeout, self.export_to(image, &partial)).await;
        let result = match written {
            Ok(result) => result,
            Err(_elapsed) => Err(SandboxError::Export {
                image: image.to_owned(),
                source: bollard::errors::Error::RequestTimeoutError,
            }),
        };
        let result = match result {
            Ok((sha256, bytes)) => tokio::fs::rename(&partial, path)
                .await
                .map(|()| (sha256, bytes))
                .map_err(|source| SandboxError::WriteImage {
                    path: path.to_path_buf(),
                    source,
                }),
            Err(error) => Err(error),
        };
        match result {
            Ok((sha256, bytes)) => Ok(Saved {
                path: path.to_path_buf(),
                sha256,
                bytes,
            }),
            Err(error) => {
                let _ = tokio::fs::remove_file(&partial).await;
                Err(error)
            }
        }
    }

    async fn export_to(&self, image: &str, path: &Path) -> Result<(String, u64), SandboxError> {
        let write_error = |source| SandboxError::WriteImage {
            path: path.to_path_buf(),
            source,
        };
        let mut file = tokio::fs::File::create(path).await.map_err(write_error)?;
        let mut hasher = Sha256::new();
        let mut bytes = 0u64;
        let mut stream = self.docker.export_image(image);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|source| SandboxError::Export {
                image: image.to_owned(),
                source,
            })?;
            hasher.update(&chunk);
            bytes += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(write_error)?;
        }
        file.flush().await.map_err(write_error)?;
        file.sync_all().await.map_err(write_error)?;
        Ok((format!("{:x}", hasher.finalize()), bytes))
    }
}

/// `t1: digest: sha256:… size: 527` → `sha256:…`.
fn digest_in_status(status: &str) -> Option<String> {
    let (_, rest) = status.split_once("digest: ")?;
    let digest = rest.split_whitespace().next()?;
    digest.starts_with("sha256:").then(|| digest.to_owned())
}

/// The engine's own words in a bollard error.
fn engine_words(error: &bollard::errors::Error) -> String {
    match error {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        bollard::errors::Error::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    }
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_read_from_the_last_status_line() {
        assert_eq!(
            digest_in_status("t1: digest: sha256:2f38 size: 527").as_deref(),
            Some("sha256:2f38")
        );
        assert_eq!(digest_in_status("Pushed"), None);
        assert_eq!(digest_in_status("digest: md5:x"), None);
    }

    #[test]
    fn refusals_are_sorted_by_the_engines_words() {
        let cases = [
            (
                "unauthorized: authentication required",
                PushRefusal::AuthRefused,
            ),
            ("no basic auth credentials", PushRefusal::AuthRefused),
            (
                "denied: requested access to the resource is denied",
                PushRefusal::AuthRefused,
            ),
            (
                "Get \"http://127.0.0.1:1/v2/\": dial tcp 127.0.0.1:1: connect: connection refused",
                PushRefusal::Unreachable,
            ),
            ("invalid reference format", PushRefusal::NameRejected),
            (
                "name unknown: repository name not known to registry",
                PushRefusal::NameRejected,
            ),
            ("something else", PushRefusal::Other),
        ];
        for (message, expected) in cases {
            assert_eq!(PushRefusal::classify(message), expected, "{message}");
        }
    }

    #[test]
    fn a_partial_file_sits_beside_the_target() {
        assert_eq!(
            partial_path(Path::new("/out/hello.tar")),
            Path::new("/out/hello.tar.partial")
        );
    }
}
