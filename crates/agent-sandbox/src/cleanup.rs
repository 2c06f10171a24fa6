//! Cleanup on the engine: containers and images found by label, build leftovers by
//! id, and `gc` of what earlier runs left, with the owner label deciding what is still
//! in use.

use std::collections::{HashMap, HashSet};

use bollard::Docker;
use bollard::models::{ContainerSummary, ImageSummary};
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListImagesOptionsBuilder, ListVolumesOptionsBuilder,
    RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder, RemoveVolumeOptions,
};

use crate::deadline::bounded;
use crate::errors::SandboxError;
use crate::labels::{LABEL_OWNER, LABEL_RUN, VERIFIED_REPOSITORY_PREFIX};
use crate::outcome::CleanupReport;

/// The value for [`crate::LABEL_OWNER`]: `<hostname>/<pid>` of this process.
pub fn owner_id() -> String {
    format!("{}/{}", hostname(), std::process::id())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Whether the owner label names a process that may still use the object: alive on
/// this host, or on another host (which cannot be checked from here).
fn owner_is_live(owner: Option<&str>, this_host: &str) -> bool {
    let Some(owner) = owner else {
        return false;
    };
    let Some((host, pid)) = owner.rsplit_once('/') else {
        return false;
    };
    if host != this_host {
        return true;
    }
    match pid.parse::<u32>() {
        Ok(pid) => process_is_alive(pid),
        Err(_) => false,
    }
}

/// Whether process `pid` of this host is running. A zombie (exited, not yet reaped by
/// its parent, as right after `kill -9`) still has its `/proc` entry but uses nothing:
/// dead.
fn process_is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => process_state(&stat).is_some_and(|state| state != 'Z' && state != 'X'),
        // No entry: gone. Another error (a `/proc` we may not read): assume alive,
        // since removing what a live run uses is the worse mistake.
        Err(error) => error.kind() != std::io::ErrorKind::NotFound,
    }
}

/// The state letter of a `/proc/<pid>/stat` line: the field after the command name,
/// which is in parentheses and may itself hold spaces and parentheses.
fn process_state(stat: &str) -> Option<char> {
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.trim_start().chars().next()
}

pub(crate) fn is_status(error: &bollard::errors::Error, status: u16) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError { status_code, .. } if *status_code == status
    )
}

/// Kills and removes a container with its anonymous volumes; a container already
/// gone is fine, other failures are logged (this runs on cleanup paths that must not
/// fail themselves).
pub(crate) async fn force_remove_container(docker: &Docker, id: &str) {
    if let Err(error) = remove_container(docker, id).await {
        tracing::warn!(container = id, %error, "cannot remove the container");
    }
}

async fn remove_container(docker: &Docker, id: &str) -> Result<bool, SandboxError> {
    let options = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    // 409: another client (a dropped run's guard) is removing it. That removal may
    // be cut short when its client exits, so ask again until the container is gone.
    let patience = tokio::time::Instant::now() + crate::deadline::ENGINE_CALL_TIMEOUT;
    loop {
        match bounded(docker.remove_container(id, Some(options.clone()))).await {
            Ok(()) => return Ok(true),
            Err(error) if is_status(&error, 404) => return Ok(false),
            Err(error) if is_status(&error, 409) && tokio::time::Instant::now() < patience => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(source) => {
                return Err(SandboxError::Remove {
                    object: id.to_owned(),
                    source,
                });
            }
        }
    }
}

/// Removes an image (force: its tags too) unless verified; `false` when it was gone
/// already or is still the parent of a kept image.
async fn remove_image(
    docker: &Docker,
    id: &str,
    prune_parents: bool,
) -> Result<bool, SandboxError> {
    let options = RemoveImageOptionsBuilder::default()
        .force(prune_parents)
        .noprune(!prune_parents)
        .build();
    match bounded(docker.remove_image(id, Some(options), None)).await {
        Ok(_) => Ok(true),
        Err(error) if is_status(&error, 404) || is_status(&error, 409) => Ok(false),
        Err(source) => Err(SandboxError::Remove {
            object: id.to_owned(),
            source,
        }),
    }
}

fn is_verified(image: &ImageSummary) -> bool {
    image
        .repo_tags
        .iter()
        .any(|tag| crate::dialect::tag_under(tag, VERIFIED_REPOSITORY_PREFIX))
}

/// Whether `id` (full `sha256:…` or a prefix, with or without the algorithm) names
/// the image `image_id`.
pub(crate) fn same_image(image_id: &str, id: &str) -> bool {
    let image_id = image_id.strip_prefix("sha256:").unwrap_or(image_id);
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    !id.is_empty() && image_id.starts_with(id)
}

async fn list_containers(
    docker: &Docker,
    labels: &[String],
) -> Result<Vec<ContainerSummary>, SandboxError> {
    let filters = HashMap::from([("label", labels.to_vec())]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    settled(|| docker.list_containers(Some(options.clone()))).await
}

async fn list_images(
    docker: &Docker,
    labels: &[String],
) -> Result<Vec<ImageSummary>, SandboxError> {
    let filters = HashMap::from([("label", crate::dialect::image_label_filter(labels))]);
    let options = ListImagesOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let mut images = settled_image_list(docker, options).await?;
    images.retain(|image| crate::dialect::has_labels(&image.labels, labels));
    Ok(images)
}

/// The engine's images as `options` select them, listed as [`settled`] lists.
pub(crate) async fn settled_image_list(
    docker: &Docker,
    options: bollard::query_parameters::ListImagesOptions,
) -> Result<Vec<ImageSummary>, SandboxError> {
    settled(|| docker.list_images(Some(options.clone()))).await
}

/// What `list` gives, asked again (up to 8 times, 100 ms more apart each time, about
/// 3.6 s in all) while the engine is in one of Podman's passing states
/// ([`crate::dialect::is_listing_race`]).
async fn settled<T, F, Fut>(list: F) -> Result<Vec<T>, SandboxError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<T>, bollard::errors::Error>>,
{
    const ATTEMPTS: u32 = 8;
    let mut attempt = 1;
    loop {
        match bounded(list()).await {
            Err(error) if attempt < ATTEMPTS && crate::dialect::is_listing_race(&error) => {
                tracing::debug!(%error, attempt, "the engine was between two states; listing again");
                tokio::time::sleep(std::time::Duration::from_millis(100 * u64::from(attempt)))
                    .await;
                attempt += 1;
            }
            listed => return listed.map_err(SandboxError::List),
        }
    }
}

pub(crate) async fn remove_labelled(
    docker: &Docker,
    key: &str,
    value: &str,
    keep: Option<&str>,
) -> Result<CleanupReport, SandboxError> {
    let labels = [format!("{key}={value}")];
    // Containers first: an image still used by one cannot go.
    let mut report = remove_labelled_containers(docker, key, value).await?;
    for image in list_images(docker, &labels).await? {
        let kept = keep.is_some_and(|keep| same_image(&image.id, keep));
        if kept || is_verified(&image) {
            continue;
        }
        if remove_image(docker, &image.id, true).await? {
            report.images.push(image.id);
        }
    }
    Ok(report)
}

/// Removes every container labelled `key=value`: the one listing a spec's end needs,
/// since its images are kept (the verified one, the build cache) or removed by id.
pub(crate) async fn remove_labelled_containers(
    docker: &Docker,
    key: &str,
    value: &str,
) -> Result<CleanupReport, SandboxError> {
    let labels = [format!("{key}={value}")];
    let mut report = CleanupReport::default();
    for container in list_containers(docker, &labels).await? {
        let Some(id) = container.id else { continue };
        if remove_container(docker, &id).await? {
            report.containers.push(id);
        }
    }
    report.volumes = remove_labelled_volumes(docker, &labels, |_| true).await?;
    Ok(report)
}

/// Removes the volumes labelled with every one of `labels` that `remove` lets go
/// (the build egress gates' sockets live in one each); their containers went first.
async fn remove_labelled_volumes(
    docker: &Docker,
    labels: &[String],
    remove: impl Fn(Option<&HashMap<String, String>>) -> bool,
) -> Result<Vec<String>, SandboxError> {
    let filters = HashMap::from([("label", labels.to_vec())]);
    let options = ListVolumesOptionsBuilder::default()
        .filters(&filters)
        .build();
    let listed = bounded(docker.list_volumes(Some(options)))
        .await
        .map_err(SandboxError::List)?;
    let mut removed = Vec::new();
    for volume in listed.volumes.unwrap_or_default() {
        if !remove(Some(&volume.labels)) {
            continue;
        }
        match bounded(docker.remove_volume(&volume.name, None::<RemoveVolumeOptions>)).await {
            Ok(()) => removed.push(volume.name),
            Err(error) if is_status(&error, 404) => {}
            Err(source) => {
                return Err(SandboxError::Remove {
                    object: volume.name,
                    source,
                });
            }
        }
    }
    Ok(removed)
}

pub(crate) async fn gc(
    docker: &Docker,
    include_live: bool,
    scope: Option<(&str, &str)>,
) -> Result<CleanupReport, SandboxError> {
    let mut labels = vec![LABEL_RUN.to_owned()];
    if let Some((key, value)) = scope {
        labels.push(format!("{key}={value}"));
    }
    let this_host = hostname();
    let in_use = |object_labels: Option<&HashMap<String, String>>| {
        let owner = object_labels.and_then(|labels| labels.get(LABEL_OWNER));
        !include_live && owner_is_live(owner.map(String::as_str), &this_host)
    };
    let mut report = CleanupReport::default();
    for container in list_containers(docker, &labels).await? {
        if in_use(container.labels.as_ref()) {
            continue;
        }
        let Some(id) = container.id else { continue };
        if remove_container(docker, &id).await? {
            report.containers.push(id);
        }
    }
    for image in list_images(docker, &labels).await? {
        if is_verified(&image) || in_use(Some(&image.labels)) {
            continue;
        }
        if remove_image(docker, &image.id, true).await? {
            report.images.push(image.id);
        }
    }
    report.volumes = remove_labelled_volumes(docker, &labels, |labels| !in_use(labels)).await?;
    Ok(report)
}

/// Removes the given images, children first, each only when it has no tag and no
/// child image left; ids already gone are skipped.
pub(crate) async fn remove_untagged_images(
    docker: &Docker,
    ids: &[String],
) -> Result<CleanupReport, SandboxError> {
    let options = ListImagesOptionsBuilder::default().all(true).build();
    let images = settled_image_list(docker, options).await?;
    let mut removed: HashSet<String> = HashSet::new();
    let mut report = CleanupReport::default();
    // A build prints parents before children, so the reverse order meets children
    // first and their parents become childless as it goes.
    for id in ids.iter().rev() {
        let Some(image) = images.iter().find(|image| same_image(&image.id, id)) else {
            continue;
        };
        if removed.contains(&image.id) || !crate::dialect::is_untagged(&image.repo_tags) {
            continue;
        }
        let has_child = images
            .iter()
            .any(|other| other.parent_id == image.id && !removed.contains(&other.id));
        if has_child {
            continue;
        }
        if remove_image(docker, &image.id, false).await? {
            removed.insert(image.id.clone());
            report.images.push(image.id.clone());
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_id_names_this_host_and_process() {
        let owner = owner_id();
        let (host, pid) = owner.rsplit_once('/').expect("host/pid");
        assert_eq!(host, hostname());
        assert_eq!(pid, std::process::id().to_string());
        assert!(owner_is_live(Some(&owner), &hostname()));
    }

    #[test]
    fn liveness_follows_the_owner_label() {
        let host = hostname();
        assert!(!owner_is_live(None, &host));
        assert!(!owner_is_live(Some("garbage"), &host));
        assert!(owner_is_live(Some("some-other-host/1"), &host));
        // Above the kernel's pid_max (4194304 at most): never a live process.
        assert!(!owner_is_live(Some(&format!("{host}/99999999")), &host));
    }

    #[test]
    fn the_state_is_read_past_a_command_name_with_spaces_and_parentheses() {
        assert_eq!(process_state("42 (agent) S 1 42 42"), Some('S'));
        assert_eq!(process_state("42 (a (b) c) Z 1 42 42"), Some('Z'));
        assert_eq!(process_state("garbage"), None);
    }

    #[test]
    fn a_zombie_owner_is_dead_and_a_running_one_alive() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn");
        let pid = child.id();
        assert!(process_is_alive(pid));
        let owner = format!("{}/{pid}", hostname());
        assert!(owner_is_live(Some(&owner), &hostname()));
        child.kill().expect("kill");
        // Not waited for: the child stays a zombie until reaped below.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while process_is_alive(pid) {
            assert!(std::time::Instant::now() < deadline, "the child never died");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(
            std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "a zombie"
        );
        assert!(!owner_is_live(Some(&owner), &hostname()));
        child.wait().expect("reaped");
    }

    #[test]
    fn image_ids_match_with_or_without_the_algorithm() {
        let full = "sha256:0875231f4aa41f6c1a8159cdb9a3e766de311dec594c1a634231a78a6f8e91d9";
        assert!(same_image(full, full));
        assert!(same_image(full, "0875231f4aa4"));
        assert!(!same_image(full, "b5df0a0be371"));
        assert!(!same_image(full, ""));
    }
}
