//! What paths hold in an image, read through the archive API of one container that is
//! created and never started: each path's type, mode, owner, link target and the
//! first bytes of its content. The container is removed on every path.

use std::collections::HashMap;
use std::io::Read;

use bollard::Docker;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::DownloadFromContainerOptionsBuilder;
use futures_util::StreamExt;

use agent_spec::{FileEntry, FileFacts};

use crate::deadline::{ENGINE_CALL_TIMEOUT, bounded};
use crate::errors::SandboxError;
use crate::run::ContainerGuard;

/// Room in the archive beyond the content for the entry's headers (long names and
/// PAX records come before the entry itself).
const HEADER_ROOM: usize = 64 * 1024;
/// How many symbolic links a content read follows before it gives up.
const MAX_LINK_HOPS: usize = 8;
/// Never run: the container is only created, and the engine wants a command to do so.
const PLACEHOLDER_COMMAND: &str = "never-started";

/// Each of `paths` as the image has it; `content_limit` bytes of a regular file's
/// content are kept. A symbolic link keeps its own type, mode and target, and the
/// content of the file it leads to.
pub(crate) async fn file_facts(
    docker: &Docker,
    image: &str,
    paths: &[String],
    labels: &std::collections::BTreeMap<String, String>,
    content_limit: usize,
) -> Result<Vec<FileFacts>, SandboxError> {
    let config = ContainerCreateBody {
        image: Some(image.to_owned()),
        cmd: Some(vec![PLACEHOLDER_COMMAND.to_owned()]),
        labels: Some(labels.clone().into_iter().collect::<HashMap<_, _>>()),
        network_disabled: Some(true),
        ..Default::default()
    };
    let created = bounded(docker.create_container(None, config))
        .await
        .map_err(|source| SandboxError::CreateContainer {
            image: image.to_owned(),
            source,
        })?;
    let guard = ContainerGuard::new(docker.clone(), created.id.clone());
    let mut facts = Vec::new();
    let mut failure = None;
    for path in paths {
        match path_facts(docker, &created.id, path, content_limit).await {
            Ok(fact) => facts.push(fact),
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
    }
    guard.remove().await;
    match failure {
        Some(error) => Err(error),
        None => Ok(facts),
    }
}

async fn path_facts(
    docker: &Docker,
    container: &str,
    path: &str,
    content_limit: usize,
) -> Result<FileFacts, SandboxError> {
    let mut entry = read_entry(docker, container, path, content_limit).await?;
    if let Some(found) = &mut entry {
        let mut target = found.link_target.clone();
        let mut hops = 0;
        while let Some(link) = target.take().filter(|_| hops < MAX_LINK_HOPS) {
            hops += 1;
            let followed = absolute_target(&link);
            match read_entry(docker, container, &followed, content_limit).await? {
                Some(next) if next.link_target.is_some() => target = next.link_target,
                Some(next) => {
                    found.content = next.content;
                    found.content_truncated = next.content_truncated;
                }
                None => {}
            }
        }
    }
    Ok(FileFacts {
        path: path.to_owned(),
        entry,
    })
}

/// A relative link target is read from the root, as the archive API of the engine
/// resolves relative paths (and as container-structure-test reads them).
fn absolute_target(target: &str) -> String {
    if target.starts_with('/') {
        target.to_owned()
    } else {
        format!("/{target}")
    }
}

/// The first entry of `path`'s archive; `None` when the engine has no such path.
/// Only as many bytes as the entry needs are read: a directory's archive holds its
/// whole tree.
async fn read_entry(
    docker: &Docker,
    container: &str,
    path: &str,
    content_limit: usize,
) -> Result<Option<FileEntry>, SandboxError> {
    let engine_error = |source| SandboxError::ReadFile {
        container: container.to_owned(),
        path: path.to_owned(),
        source,
    };
    let options = DownloadFromContainerOptionsBuilder::new()
        .path(path)
        .build();
    let mut stream = docker.download_from_container(container, Some(options));
    let wanted = content_limit.saturating_add(HEADER_ROOM);
    let mut archive = Vec::new();
    let reading = async {
        while archive.len() < wanted {
            match stream.next().await {
                Some(Ok(chunk)) => archive.extend_from_slice(&chunk),
                Some(Err(error)) => return Err(error),
                None => break,
            }
        }
        Ok(())
    };
    match tokio::time::timeout(ENGINE_CALL_TIMEOUT, reading).await {
        Ok(Ok(())) => {}
        Ok(Err(bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        })) if (400..600).contains(&status_code) => {
            // 404: no such path; the engine says 500 for a path through a file.
            tracing::debug!(path, status_code, %message, "the path is not in the image");
            return Ok(None);
        }
        Ok(Err(source)) => return Err(engine_error(source)),
        Err(_elapsed) => return Err(engine_error(bollard::errors::Error::RequestTimeoutError)),
    }
    Ok(first_entry(&archive, content_limit))
}

/// The first entry of a (possibly cut) tar archive.
fn first_entry(archive: &[u8], content_limit: usize) -> Option<FileEntry> {
    let mut reader = tar::Archive::new(archive);
    let mut entry = reader.entries().ok()?.next()?.ok()?;
    let header = entry.header();
    let kind = header.entry_type();
    let type_bits = match kind {
        tar::EntryType::Directory => 0o040_000,
        tar::EntryType::Symlink => 0o120_000,
        tar::EntryType::Char => 0o020_000,
        tar::EntryType::Block => 0o060_000,
        tar::EntryType::Fifo => 0o010_000,
        _ => 0o100_000,
    };
    let mode = header.mode().unwrap_or(0) & 0o7777 | type_bits;
    let uid = header.uid().unwrap_or(0);
    let gid = header.gid().unwrap_or(0);
    let size = header.size().unwrap_or(0);
    let link_target = match kind {
        tar::EntryType::Symlink => entry
            .link_name()
            .ok()
            .flatten()
            .map(|name| name.to_string_lossy().into_owned()),
        _ => None,
    };
    let content = if kind.is_file() || kind.is_hard_link() {
        let mut bytes = Vec::new();
        // A cut archive ends the read early; what arrived is kept.
        let _ = (&mut entry)
            .take(content_limit as u64)
            .read_to_end(&mut bytes);
        Some(bytes)
    } else {
        None
    };
    Some(FileEntry {
        mode,
        uid,
        gid,
        link_target,
        content_truncated: content.is_some() && size > content_limit as u64,
        content,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Name, type, mode, content and link target of one entry.
    type Entry<'a> = (&'a str, tar::EntryType, u32, &'a [u8], Option<&'a str>);

    fn archive(entries: &[Entry<'_>]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, kind, mode, content, link) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_mode(*mode);
            header.set_uid(1000);
            header.set_gid(100);
            header.set_size(content.len() as u64);
            if let Some(link) = link {
                header.set_link_name(link).unwrap();
            }
            builder.append_data(&mut header, name, *content).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn a_regular_file_has_its_type_bits_owner_and_capped_content() {
        let bytes = archive(&[(
            "main.py",
            tar::EntryType::Regular,
            0o755,
            b"print(1)\n",
            None,
        )]);
        let entry = first_entry(&bytes, 5).unwrap();
        assert_eq!(entry.mode, 0o100_755);
        assert_eq!((entry.uid, entry.gid), (1000, 100));
        assert_eq!(entry.content.as_deref(), Some(&b"print"[..]));
        assert!(entry.content_truncated);
    }

    #[test]
    fn a_directory_is_its_first_entry_and_a_link_keeps_its_target() {
        let bytes = archive(&[
            ("app/", tar::EntryType::Directory, 0o750, b"", None),
            ("app/x", tar::EntryType::Regular, 0o644, b"x", None),
        ]);
        let entry = first_entry(&bytes, 1024).unwrap();
        assert_eq!(entry.mode, 0o040_750);
        assert_eq!(entry.content, None);
        let bytes = archive(&[(
            "l",
            tar::EntryType::Symlink,
            0o777,
            b"",
            Some("/etc/passwd"),
        )]);
        let entry = first_entry(&bytes, 1024).unwrap();
        assert_eq!(entry.mode, 0o120_777);
        assert_eq!(entry.link_target.as_deref(), Some("/etc/passwd"));
    }

    #[test]
    fn a_cut_archive_keeps_what_arrived() {
        let content = vec![b'a'; 4096];
        let bytes = archive(&[("big", tar::EntryType::Regular, 0o644, &content, None)]);
        let entry = first_entry(&bytes[..512 + 100], 1024).unwrap();
        assert_eq!(entry.content.map(|content| content.len()), Some(100));
        assert!(entry.content_truncated);
    }
}
