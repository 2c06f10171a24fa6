//! The build cache kept under tags: the image each build ends on is tagged in
//! `agent-cache/<spec>`, so the engine's layer cache serves every unchanged step across
//! iterations, runs and specs, no cleanup removes a layer a later build can stand on
//! (the engine removes neither a tagged image nor its parents), and nothing a build
//! made is left dangling. One tag per build, at its end: a tag costs the engine a
//! rewrite of its tag store, so the steps in between are not tagged. The cache is
//! trimmed to a size cap, oldest use first, and removed whole by `gc --cache`; a build
//! whose cached parent that removes while it runs is built again (see `build`).

use std::collections::{HashMap, HashSet};

use bollard::Docker;
use bollard::models::ImageSummary;
use bollard::query_parameters::{
    ListImagesOptionsBuilder, RemoveImageOptionsBuilder, TagImageOptionsBuilder,
};

use crate::cleanup::is_status;
use crate::deadline::bounded;
use crate::errors::SandboxError;
use crate::labels::CACHE_REPOSITORY_PREFIX;
use crate::outcome::CacheUsage;

/// Tags `image` as `reference` (`repo:tag`, or `repo` for `latest`).
pub(crate) async fn tag(
    docker: &Docker,
    image: &str,
    reference: &str,
) -> Result<(), bollard::errors::Error> {
    // The tag is what follows the last `:` unless that `:` belongs to a registry
    // host with a port (`host:5000/repo`).
    let (repository, tag) = match reference.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => (repository, tag),
        _ => (reference, "latest"),
    };
    let options = TagImageOptionsBuilder::default()
        .repo(repository)
        .tag(tag)
        .build();
    bounded(docker.tag_image(image, Some(options))).await
}

/// Removes `reference` (a tag or an id) without force: only the tag when the image
/// has others; the image, and its parents left untagged and childless, when this was
/// its last. `Ok(false)` when the engine keeps it: gone already, or still used (a
/// container, a child image, another tag for an id).
pub(crate) async fn untag_or_remove(
    docker: &Docker,
    reference: &str,
) -> Result<bool, SandboxError> {
    let options = RemoveImageOptionsBuilder::default()
        .force(false)
        .noprune(false)
        .build();
    match bounded(docker.remove_image(reference, Some(options), None)).await {
        Ok(_) => Ok(true),
        Err(error) if is_status(&error, 404) || is_status(&error, 409) => Ok(false),
        Err(source) => Err(SandboxError::Remove {
            object: reference.to_owned(),
            source,
        }),
    }
}

/// Tags the image each stage of a build ended on as a cache entry
/// (`<repository>:<12 hex of its id>`, shared by every build that ends on it).
pub(crate) async fn keep_heads(docker: &Docker, repository: &str, heads: &[String]) {
    for head in heads {
        let reference = entry_reference(repository, head);
        if let Err(error) = tag(docker, head, &reference).await {
            tracing::warn!(image = %head, %error, "cannot tag a build result in the cache");
        }
    }
}

/// `<repository>:<12 hex of the image id>`: the tag that keeps `image` in the cache.
pub fn entry_reference(repository: &str, image: &str) -> String {
    let hex = image.strip_prefix("sha256:").unwrap_or(image);
    format!("{repository}:{}", &hex[..hex.len().min(12)])
}

fn cache_references(image: &ImageSummary) -> impl Iterator<Item = &String> {
    image
        .repo_tags
        .iter()
        .filter(|tag| crate::dialect::tag_under(tag, CACHE_REPOSITORY_PREFIX))
}

async fn all_images(docker: &Docker) -> Result<Vec<ImageSummary>, SandboxError> {
    let options = ListImagesOptionsBuilder::default().all(true).build();
    crate::cleanup::settled_image_list(docker, options).await
}

/// What the cache holds: its entries, and the bytes of the layers only it keeps (every
/// image from an entry down to, not including, the first image with a tag of its own
/// outside the cache, such as the base image).
fn usage_of(images: &[ImageSummary]) -> CacheUsage {
    let by_id: HashMap<&str, &ImageSummary> = images
        .iter()
        .map(|image| (image.id.as_str(), image))
        .collect();
    let outside_cache = |image: &ImageSummary| {
        image.repo_tags.iter().any(|tag| {
            tag != "<none>:<none>" && !crate::dialect::tag_under(tag, CACHE_REPOSITORY_PREFIX)
        })
    };
    let mut counted: HashSet<&str> = HashSet::new();
    let mut usage = CacheUsage::default();
    for image in images {
        let references: Vec<&String> = cache_references(image).collect();
        if references.is_empty() {
            continue;
        }
        usage.entries += references.len();
        let mut next = Some(image);
        while let Some(current) = next {
            if outside_cache(current) || !counted.insert(current.id.as_str()) {
                break;
            }
            let parent = by_id.get(current.parent_id.as_str()).copied();
            let own = current.size - parent.map_or(0, |parent| parent.size);
            usage.bytes += u64::try_from(own).unwrap_or(0);
            next = parent;
        }
    }
    usage
}

pub(crate) async fn usage(docker: &Docker) -> Result<CacheUsage, SandboxError> {
    Ok(usage_of(&all_images(docker).await?))
}

/// Removes cache entries, the least recently used first, until the cache holds at
/// most `max_bytes`.
pub(crate) async fn trim(docker: &Docker, max_bytes: u64) -> Result<CacheUsage, SandboxError> {
    let images = all_images(docker).await?;
    let mut usage = usage_of(&images);
    if usage.bytes <= max_bytes {
        return Ok(usage);
    }
    let mut candidates: Vec<(String, String)> = Vec::new();
    for reference in images.iter().flat_map(cache_references) {
        let inspected = bounded(docker.inspect_image(reference)).await;
        let last_used = inspected
            .ok()
            .and_then(|image| image.metadata)
            .and_then(|metadata| metadata.last_tag_time)
            .map(|time| time.to_string())
            .unwrap_or_default();
        candidates.push((last_used, reference.clone()));
    }
    candidates.sort();
    for (_, reference) in candidates {
        untag_or_remove(docker, &reference).await?;
        usage = usage_of(&all_images(docker).await?);
        if usage.bytes <= max_bytes {
            break;
        }
    }
    Ok(usage)
}

/// Removes every cache entry; returns the ids of images removed.
pub(crate) async fn remove_all(docker: &Docker) -> Result<Vec<String>, SandboxError> {
    let before: HashSet<String> = all_images(docker)
        .await?
        .into_iter()
        .map(|image| image.id)
        .collect();
    for image in all_images(docker).await? {
        for reference in cache_references(&image) {
            untag_or_remove(docker, reference).await?;
        }
    }
    let after: HashSet<String> = all_images(docker)
        .await?
        .into_iter()
        .map(|image| image.id)
        .collect();
    let mut removed: Vec<String> = before.difference(&after).cloned().collect();
    removed.sort();
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, parent: &str, size: i64, tags: &[&str]) -> ImageSummary {
        ImageSummary {
            id: id.to_owned(),
            parent_id: parent.to_owned(),
            size,
            repo_tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
            ..ImageSummary::default()
        }
    }

    #[test]
    fn usage_counts_shared_layers_once_and_stops_at_the_base() {
        let images = [
            image("base", "", 100, &["agent-base/python:3.11"]),
            image("deps", "base", 150, &[]),
            image("one", "deps", 151, &["agent-cache/a:one"]),
            image(
                "two",
                "deps",
                153,
                &["agent-cache/b:two", "agent-cache/a:two"],
            ),
            image("other", "base", 500, &[]),
        ];
        let usage = usage_of(&images);
        assert_eq!(usage.entries, 3);
        assert_eq!(usage.bytes, 50 + 1 + 3);
    }

    #[test]
    fn entries_are_named_by_the_image_id() {
        assert_eq!(
            entry_reference("agent-cache/fizz", "sha256:0875231f4aa41f6c1a81"),
            "agent-cache/fizz:0875231f4aa4"
        );
        assert_eq!(
            entry_reference("agent-cache/fizz", "ab12"),
            "agent-cache/fizz:ab12"
        );
    }
}
