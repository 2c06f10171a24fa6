//! The base image a bundle is built on, pinned. The base is the image the
//! Dockerfile's last stage stands on (through earlier stages' names); its pin is its
//! repo digest (`repository@sha256:…`) when the engine got it from that repository's
//! registry, else its image id. Every build rewrites the `FROM` lines naming the base
//! to the pin, in the build context only (the bundle and its digest stay as written),
//! so the digest recorded is exactly the image built on, even when the tag moves
//! during the run; an id pin the name still resolves to is left as written (see
//! [`for_build`]). A fresh lock's pin is built on as recorded, pulled by digest when
//! the engine lacks it; `--refresh-base` pulls the base's name again instead.

use std::collections::BTreeMap;

use agent_sandbox::{EnginePort, PulledImage, SandboxError};

pub(crate) use crate::base_pin::BasePin;
use crate::bundle::{DOCKERFILE, from_images, normalise_image};
use crate::errors::LoopError;
use crate::events::{Event, EventSink};
use crate::job::Job;
use crate::lock::{Lock, LockMode};
use crate::report::LockState;
use crate::reuse::{PULL_TIMEOUT, credentials_for};

/// The image the Dockerfile's last stage is built on, following stage names back to
/// an image; `None` for `scratch`, a Dockerfile without `FROM` or a stage loop.
pub(crate) fn last_stage_base(dockerfile: &str) -> Option<String> {
    let froms = from_images(dockerfile);
    let (mut image, _) = froms.last()?.clone();
    for _ in 0..froms.len() {
        let earlier = froms.iter().rev().find(|(_, stage)| {
            stage
                .as_deref()
                .is_some_and(|stage| stage.eq_ignore_ascii_case(&image))
        });
        match earlier {
            Some((stage_image, _)) => image = stage_image.clone(),
            None if image.eq_ignore_ascii_case("scratch") => return None,
            None => return Some(image),
        }
    }
    None
}

/// How `image`, found on the engine under `name`, is pinned: the repo digest from
/// `name`'s repository, else its id.
pub(crate) fn pinned_reference(name: &str, image: &PulledImage) -> String {
    let repository = repository_of(name);
    image
        .repo_digests
        .iter()
        .find(|entry| repository_of(entry) == repository)
        .cloned()
        .unwrap_or_else(|| image.id.clone())
}

/// `python:3.11` → `docker.io/library/python`; a repo digest loses its digest.
fn repository_of(reference: &str) -> String {
    let normalised = normalise_image(reference);
    if let Some((name, _)) = normalised.split_once('@') {
        return name.to_owned();
    }
    let last_slash = normalised.rfind('/').map_or(0, |index| index + 1);
    match normalised[last_slash..].rfind(':') {
        Some(colon) => normalised[..last_slash + colon].to_owned(),
        None => normalised,
    }
}

/// `dockerfile` with each `FROM` that names `pin.name` naming `pin.reference`; the
/// lines keep their places, so the build's line numbers are the bundle's.
pub(crate) fn rewrite(dockerfile: &str, pin: &BasePin) -> String {
    let mut lines: Vec<String> = dockerfile.lines().map(str::to_owned).collect();
    for instruction in agent_sandbox::dockerfile_instructions(dockerfile) {
        if !instruction.keyword().eq_ignore_ascii_case("FROM")
            || !instruction
                .text
                .split_whitespace()
                .any(|word| word == pin.name)
        {
            continue;
        }
        // The image is on one of the instruction's lines: the last that names it, as
        // a later line of the instruction can only hold `AS <stage>`.
        let end = instruction.last_line.min(lines.len().saturating_sub(1));
        let line = lines[..=end]
            .iter_mut()
            .rev()
            .find(|line| !line.trim_start().starts_with('#') && has_word(line, &pin.name));
        if let Some(line) = line {
            *line = replace_word(line, &pin.name, &pin.reference);
        }
    }
    let mut text = lines.join("\n");
    if dockerfile.ends_with('\n') {
        text.push('\n');
    }
    text
}

fn has_word(line: &str, word: &str) -> bool {
    line.split_whitespace().any(|part| part == word)
}

/// `line` with its first whitespace-separated `word` replaced, spacing kept.
fn replace_word(line: &str, word: &str, by: &str) -> String {
    let mut start = 0;
    for part in line.split_whitespace() {
        let at = start + line[start..].find(part).expect("a part of the line");
        if part == word {
            return format!("{}{by}{}", &line[..at], &line[at + part.len()..]);
        }
        start = at + part.len();
    }
    line.to_owned()
}

/// The pin a build of `files` uses, and the files to build with it when they are not
/// `files` as written: `given` when it names the Dockerfile's base, else the base as
/// the engine has it now. A base the
/// engine lacks is left as written, for the build to fail on and say so. A repo
/// digest is always written into the `FROM`; an image id only when the name no longer
/// names it (BuildKit takes no id in `FROM`; the classic builder does).
pub(crate) async fn for_build<E: EnginePort>(
    engine: &E,
    given: Option<&BasePin>,
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<Option<(BasePin, Option<BTreeMap<String, Vec<u8>>>)>, SandboxError> {
    let Some(dockerfile) = files
        .get(DOCKERFILE)
        .map(|bytes| String::from_utf8_lossy(bytes))
    else {
        return Ok(None);
    };
    let Some(name) = last_stage_base(&dockerfile) else {
        return Ok(None);
    };
    let current = engine.find_image(&name).await?;
    let pin = match (given, &current) {
        (Some(pin), _) if pin.name == name => pin.clone(),
        (_, Some(image)) => BasePin {
            reference: pinned_reference(&name, image),
            name,
        },
        (_, None) => return Ok(None),
    };
    if current.is_some_and(|image| image.id == pin.reference) {
        return Ok(Some((pin, None)));
    }
    let mut pinned = files.clone();
    pinned.insert(
        DOCKERFILE.to_owned(),
        rewrite(&dockerfile, &pin).into_bytes(),
    );
    Ok(Some((pin, Some(pinned))))
}

/// The pin a run starts from: with `--refresh-base`, the base pulled again; with a
/// fresh lock, the lock's, made available (pulled by digest when missing); else none
/// (each build pins the base as the engine has it).
pub(crate) async fn for_run<E: EnginePort>(
    job: &Job,
    engine: &E,
    events: &EventSink,
    lock: Option<&(Lock, LockState)>,
) -> Result<Option<BasePin>, LoopError> {
    let locked_name = lock
        .and_then(|(lock, _)| lock.bundle.dockerfile.as_deref())
        .and_then(last_stage_base);
    if job.lock == LockMode::RefreshBase {
        let name = locked_name.unwrap_or_else(|| job.settings.docker.base_image.clone());
        let pin = refreshed(job, engine, name).await?;
        let previous = lock.and_then(|(lock, _)| lock.file.base_digest.clone());
        events(Event::BaseResolved {
            spec: job.spec.name.clone(),
            image: pin.name.clone(),
            moved: previous.as_ref() != Some(&pin.reference),
            previous,
            reference: pin.reference.clone(),
        });
        return Ok(Some(pin));
    }
    let Some((lock, LockState::Fresh)) = lock else {
        return Ok(None);
    };
    let (Some(name), Some(reference)) = (locked_name, lock.file.base_digest.clone()) else {
        return Ok(None);
    };
    make_available(job, engine, &reference).await?;
    Ok(Some(BasePin { name, reference }))
}

/// `name` pulled from its registry again, pinned.
async fn refreshed<E: EnginePort>(
    job: &Job,
    engine: &E,
    name: String,
) -> Result<BasePin, LoopError> {
    let credentials = credentials_for(job, &name).await?;
    let pulled = engine
        .pull(&name, credentials.as_ref(), PULL_TIMEOUT)
        .await
        .map_err(|source| LoopError::BaseRefresh {
            image: name.clone(),
            source: Box::new(source),
        })?;
    Ok(BasePin {
        reference: pinned_reference(&name, &pulled),
        name,
    })
}

/// Makes sure the engine has the lock's base `reference`: present, or pulled by its
/// repo digest; an image id the engine lacks cannot be fetched from anywhere.
async fn make_available<E: EnginePort>(
    job: &Job,
    engine: &E,
    reference: &str,
) -> Result<(), LoopError> {
    if engine.find_image(reference).await?.is_some() {
        return Ok(());
    }
    let unavailable = |source| LoopError::BaseUnavailable {
        reference: reference.to_owned(),
        source,
    };
    if !reference.contains('@') {
        return Err(unavailable(None));
    }
    let credentials = credentials_for(job, reference).await?;
    match engine
        .pull(reference, credentials.as_ref(), PULL_TIMEOUT)
        .await
    {
        Ok(_) => Ok(()),
        Err(error) => Err(unavailable(Some(Box::new(error)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(name: &str, reference: &str) -> BasePin {
        BasePin {
            name: name.to_owned(),
            reference: reference.to_owned(),
        }
    }

    #[test]
    fn the_last_stage_base_follows_stage_names_back_to_an_image() {
        assert_eq!(
            last_stage_base("FROM python:3.11\nCMD x\n").as_deref(),
            Some("python:3.11")
        );
        let staged = "FROM golang:1 AS build\nRUN go build\nFROM alpine:3 AS run\n\
            FROM run\nCOPY --from=build /x /x\n";
        assert_eq!(last_stage_base(staged).as_deref(), Some("alpine:3"));
        assert_eq!(
            last_stage_base("FROM --platform=linux/amd64 b:1 AS a\nFROM A\n").as_deref(),
            Some("b:1")
        );
        assert_eq!(last_stage_base("FROM x AS b\nFROM scratch\n"), None);
        assert_eq!(last_stage_base("RUN true\n"), None);
    }

    #[test]
    fn a_repo_digest_of_the_same_repository_pins_else_the_id() {
        let image = PulledImage {
            id: "sha256:1d".to_owned(),
            repo_digests: vec![
                "mirror.local/base@sha256:aa".to_owned(),
                "127.0.0.1:5000/base@sha256:bb".to_owned(),
            ],
            ..PulledImage::default()
        };
        assert_eq!(
            pinned_reference("127.0.0.1:5000/base:1", &image),
            "127.0.0.1:5000/base@sha256:bb"
        );
        assert_eq!(
            pinned_reference("agent-base/python:3.11", &image),
            "sha256:1d"
        );
        let hub = PulledImage {
            repo_digests: vec!["python@sha256:cc".to_owned()],
            ..image
        };
        assert_eq!(pinned_reference("python:3.11", &hub), "python@sha256:cc");
        assert_eq!(pin("python:3.11", "python@sha256:cc").digest(), "sha256:cc");
        assert_eq!(pin("b", "sha256:1d").digest(), "sha256:1d");
    }

    #[test]
    fn only_the_from_lines_naming_the_base_are_rewritten_in_place() {
        let dockerfile = "FROM  reg/base:1 AS build\nRUN echo reg/base:1\nFROM other:2\n\
            FROM \\\n  # the base\n  reg/base:1\nCMD [\"x\"]\n";
        let rewritten = rewrite(dockerfile, &pin("reg/base:1", "reg/base@sha256:ff"));
        assert_eq!(
            rewritten,
            "FROM  reg/base@sha256:ff AS build\nRUN echo reg/base:1\nFROM other:2\n\
            FROM \\\n  # the base\n  reg/base@sha256:ff\nCMD [\"x\"]\n"
        );
        assert_eq!(
            rewrite("FROM a:1", &pin("a:1", "sha256:1d")),
            "FROM sha256:1d"
        );
    }
}
