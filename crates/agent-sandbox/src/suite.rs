//! A hidden test suite's run on the engine: a container of the built image with the
//! suite's command, the suite's files copied in (`PUT /containers/{id}/archive`)
//! before it starts, the run under the limits and timeout with capped output, and the
//! JUnit file read back (`GET /containers/{id}/archive`) after it ends; the container
//! is removed on every path. Grading is [`crate::junit`]'s.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Instant;

use bollard::Docker;
use bollard::query_parameters::{
    DownloadFromContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use futures_util::StreamExt;

use crate::cleanup::is_status;
use crate::context::build_context;
use crate::deadline::{ENGINE_CALL_TIMEOUT, bounded};
use crate::engine::Sandbox;
use crate::errors::SandboxError;
use crate::junit::JunitFile;
use crate::outcome::RunOutcome;
use crate::request::{RunLimits, RunRequest};
use crate::run::{ContainerGuard, container_body, run_created};

/// Room for the tar headers around the JUnit file in the archive the engine sends.
const ARCHIVE_OVERHEAD_BYTES: usize = 64 * 1024;

pub struct SuiteRequest<'a> {
    pub image: &'a str,
    /// Replaces the image's ENTRYPOINT and CMD.
    pub command: &'a [String],
    /// Relative paths (`/`-separated, no `..`) to contents, copied under `dest`.
    pub files: &'a BTreeMap<String, Vec<u8>>,
    /// An absolute path whose parent exists in the image; made by the copy.
    pub dest: &'a str,
    /// The JUnit file the command writes.
    pub junit: &'a str,
    pub junit_limit_bytes: usize,
    pub env: &'a BTreeMap<String, String>,
    pub labels: &'a BTreeMap<String, String>,
    /// The run's limits; `timeout` bounds the command.
    pub limits: RunLimits,
}

#[derive(Debug, Clone)]
pub struct SuiteOutcome {
    /// `None` when the files could not be copied in (then nothing ran).
    pub run: Option<RunOutcome>,
    /// The engine's words when the copy was refused (e.g. no parent folder for
    /// `dest` in the image).
    pub copy_error: Option<String>,
    pub junit: JunitFile,
}

impl Sandbox {
    /// Runs a hidden suite and reads its JUnit file back; the container never
    /// outlives the call.
    pub async fn run_suite(&self, request: SuiteRequest<'_>) -> Result<SuiteOutcome, SandboxError> {
        let started = Instant::now();
        let mut config =
            container_body(request.image, request.env, request.labels, &request.limits);
        // An ENTRYPOINT given here keeps the image's CMD out as well.
        config.entrypoint = Some(request.command.to_vec());
        let created = bounded(self.docker.create_container(None, config))
            .await
            .map_err(|source| SandboxError::CreateContainer {
                image: request.image.to_owned(),
                source,
            })?;
        let guard = ContainerGuard::new(self.docker.clone(), created.id.clone());
        let result = run_created_suite(&self.docker, &created.id, &request, started).await;
        guard.remove().await;
        result
    }
}

async fn run_created_suite(
    docker: &Docker,
    id: &str,
    request: &SuiteRequest<'_>,
    started: Instant,
) -> Result<SuiteOutcome, SandboxError> {
    if let Some(refused) = copy_in(docker, id, request).await? {
        return Ok(SuiteOutcome {
            run: None,
            copy_error: Some(refused),
            junit: JunitFile::Missing,
        });
    }
    let no_args: [String; 0] = [];
    let run = RunRequest {
        image: request.image,
        args: &no_args,
        entrypoint: None,
        command: None,
        user: None,
        env: request.env,
        stdin: None,
        limits: request.limits.clone(),
        labels: request.labels,
    };
    let outcome = run_created(docker, id, &run, started).await?;
    let junit = read_junit(docker, id, request.junit, request.junit_limit_bytes).await?;
    Ok(SuiteOutcome {
        run: Some(outcome),
        copy_error: None,
        junit,
    })
}

/// Copies the files under `dest`: the archive holds `dest`'s last component and is
/// unpacked in its parent, so no folder above it is touched (a `tmp/` entry would
/// reset `/tmp`'s mode). The engine's refusal is returned, not raised: it is about
/// the image and the spec, not the engine.
async fn copy_in(
    docker: &Docker,
    id: &str,
    request: &SuiteRequest<'_>,
) -> Result<Option<String>, SandboxError> {
    if !request.dest.starts_with('/') {
        return Ok(Some(format!("`{}` is not an absolute path", request.dest)));
    }
    let (parent, name) = request
        .dest
        .trim_end_matches('/')
        .rsplit_once('/')
        .unwrap_or(("", ""));
    let prefixed: BTreeMap<String, Vec<u8>> = request
        .files
        .iter()
        .map(|(path, content)| {
            let path = if name.is_empty() {
                path.clone()
            } else {
                format!("{name}/{path}")
            };
            (path, content.clone())
        })
        .collect();
    let archive = build_context(&prefixed)?;
    let parent = if parent.is_empty() { "/" } else { parent };
    let options = UploadToContainerOptionsBuilder::default()
        .path(parent)
        .build();
    let uploaded = bounded(docker.upload_to_container(
        id,
        Some(options),
        bollard::body_full(archive.bytes.into()),
    ))
    .await;
    match uploaded {
        Ok(()) => Ok(None),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        }) if (400..500).contains(&status_code) => Ok(Some(message.trim().to_owned())),
        Err(source) => Err(SandboxError::Run {
            container: id.to_owned(),
            source,
        }),
    }
}

/// Reads the file at `path` out of the stopped container, at most `limit` bytes.
async fn read_junit(
    docker: &Docker,
    id: &str,
    path: &str,
    limit: usize,
) -> Result<JunitFile, SandboxError> {
    let options = DownloadFromContainerOptionsBuilder::default()
        .path(path)
        .build();
    let mut archive = Vec::new();
    let read = tokio::time::timeout(ENGINE_CALL_TIMEOUT, async {
        let mut stream = docker.download_from_container(id, Some(options));
        while let Some(chunk) = stream.next().await {
            archive.extend_from_slice(&chunk?);
            if archive.len() > limit.saturating_add(ARCHIVE_OVERHEAD_BYTES) {
                return Ok(false);
            }
        }
        Ok::<_, bollard::errors::Error>(true)
    })
    .await
    .unwrap_or(Err(bollard::errors::Error::RequestTimeoutError));
    let engine_error = |source| SandboxError::Run {
        container: id.to_owned(),
        source,
    };
    match read {
        Ok(true) => Ok(file_in_archive(&archive, limit)),
        Ok(false) => Ok(JunitFile::TooLarge { limit_bytes: limit }),
        Err(error) if is_status(&error, 404) => Ok(JunitFile::Missing),
        Err(error) => Err(engine_error(error)),
    }
}

/// The first entry of the engine's archive: the file itself, or what it is instead.
fn file_in_archive(archive: &[u8], limit: usize) -> JunitFile {
    let mut entries = tar::Archive::new(archive);
    let Some(Ok(mut entry)) = entries
        .entries()
        .ok()
        .and_then(|mut entries| entries.next())
    else {
        return JunitFile::Missing;
    };
    if entry.header().entry_type() != tar::EntryType::Regular {
        return JunitFile::NotAFile;
    }
    if entry.size() > limit as u64 {
        return JunitFile::TooLarge { limit_bytes: limit };
    }
    let mut bytes = Vec::new();
    match entry.read_to_end(&mut bytes) {
        Ok(_) => JunitFile::Read(bytes),
        Err(_) => JunitFile::Missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(entry_type: tar::EntryType, content: &[u8]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(entry_type);
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, "junit.xml", content)
            .expect("entry");
        builder.into_inner().expect("archive")
    }

    #[test]
    fn the_file_is_read_from_the_archive_within_the_limit() {
        let bytes = archive(tar::EntryType::Regular, b"<testsuite/>");
        assert_eq!(
            file_in_archive(&bytes, 100),
            JunitFile::Read(b"<testsuite/>".to_vec())
        );
        assert_eq!(
            file_in_archive(&bytes, 5),
            JunitFile::TooLarge { limit_bytes: 5 }
        );
    }

    #[test]
    fn a_directory_or_a_broken_archive_is_no_file() {
        assert_eq!(
            file_in_archive(&archive(tar::EntryType::Directory, b""), 100),
            JunitFile::NotAFile
        );
        assert_eq!(file_in_archive(b"", 100), JunitFile::Missing);
    }
}
