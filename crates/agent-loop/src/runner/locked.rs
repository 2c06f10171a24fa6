//! A run and its lock: `--locked` refusing a missing or stale lock, the published
//! image a fresh lock names taken in place of a build, the images builds take cached
//! steps from, and the lock written once a bundle is verified.

use std::collections::BTreeMap;

use agent_sandbox::EnginePort;

use super::Run;
use super::setup::Setup;
use crate::artifacts::write_tree;
use crate::bundle::Bundle;
use crate::errors::LoopError;
use crate::events::{Event, Phase};
use crate::iteration::{Halt, Iteration};
use crate::job::Job;
use crate::lock::{self, LockFile, LockMode};
use crate::ports::ModelPort;
use crate::report::StopReason;
use crate::report::{LockState, Published};
use crate::reuse::{self, Wanted};
use crate::trial::Checked;

impl<M: ModelPort, E: EnginePort> Run<'_, M, E> {
    /// The published image a fresh lock names, pulled in place of a build when its
    /// labels match this spec and bundle: its id and where it came from.
    pub(super) async fn reuse(
        &mut self,
        setup: &Setup,
        files: &BTreeMap<String, Vec<u8>>,
        iteration: &mut Iteration,
        phase: &(dyn Fn(Phase) + Send + Sync),
    ) -> Result<Option<(String, Published)>, Halt> {
        let Some((lock, LockState::Fresh)) = &setup.lock else {
            return Ok(None);
        };
        let Some(published) = &lock.file.published else {
            return Ok(None);
        };
        // An image built on another base than the one this run builds on (the base
        // `--refresh-base` pulled moved) is no longer the lock's verified image.
        let base_digest = setup.base.as_ref().map(|pin| pin.reference.clone());
        if base_digest.is_some() && base_digest != lock.file.base_digest {
            return Ok(None);
        }
        let context = agent_sandbox::build_context(files)?;
        phase(Phase::Pulling);
        let wanted = Wanted {
            published,
            spec_digest: &setup.spec_digest,
            bundle_digest: &context.digest,
        };
        let Some(image_id) =
            reuse::published_image(self.job, self.engine, self.events, &wanted).await?
        else {
            return Ok(None);
        };
        (self.events)(Event::Reused {
            spec: self.job.spec.name.clone(),
            reference: published.reference.clone(),
        });
        let record = &mut iteration.record;
        record.context_digest = Some(context.digest);
        record.image_id = Some(image_id.clone());
        record.base_digest = lock.file.base_digest.clone();
        record.engine = self.engine.engine_host();
        Ok(Some((image_id, published.clone())))
    }

    /// A published image that passed: it carries its verification's labels already,
    /// so it is only tagged as this spec's verified image; the lock stays as it is.
    pub(super) async fn take_reused(
        &mut self,
        checked: Checked,
        files: &BTreeMap<String, Vec<u8>>,
        iteration: &Iteration,
        published: Published,
    ) -> Result<(), Halt> {
        let job = self.job;
        let digest = iteration
            .record
            .context_digest
            .as_deref()
            .unwrap_or_default();
        let tag = job.verified_tag(digest);
        self.engine.tag(&checked.image_id, &tag).await?;
        write_tree(&job.run_dir.final_bundle(), files)?;
        self.state.verified = Some((tag, checked.image_id, None));
        self.state.reused = Some(published);
        Ok(())
    }

    /// Before the first build: the lock's published image (under its digest), for
    /// the build to take every unchanged step from, however stale the lock; the
    /// repository's moving tags of the spec, where runs push (the previous push, when
    /// no committed lock names it); and `[docker] cache_from`.
    pub(super) async fn pull_cache_sources(&mut self, setup: &Setup) -> Result<(), Halt> {
        if self.state.cache_from.is_some() {
            return Ok(());
        }
        let published = setup
            .lock
            .as_ref()
            .and_then(|(lock, _)| lock.file.published.as_ref());
        let mut references: Vec<String> = published.map(reuse::pinned).into_iter().collect();
        for reference in self
            .job
            .moving_references()
            .into_iter()
            .chain(self.job.settings.docker.cache_from.iter().cloned())
        {
            if !references.contains(&reference) {
                references.push(reference);
            }
        }
        let kept = reuse::cache_sources(self.job, self.engine, self.events, &references).await?;
        self.state.cache_from = Some(kept);
        Ok(())
    }
}

/// With `--locked`, a missing or stale lock ends the run before anything is built.
pub(super) fn refused_by_lock(job: &Job, setup: &Setup) -> Option<StopReason> {
    if job.lock != LockMode::Locked {
        return None;
    }
    match &setup.lock {
        None => Some(StopReason::LockMissing),
        Some((_, LockState::Stale)) => Some(StopReason::LockStale),
        Some(_) => None,
    }
}

/// Writes the lock beside the spec unless it already says exactly this; whether it
/// wrote. A lock rewritten for the same bundle on the same base (the spec changed, the
/// bundle did not) keeps the image it was published as: its layers still serve the
/// next build as a cache. One whose base moved is rewritten with the new base.
pub(super) fn keep_lock(
    job: &Job,
    setup: &Setup,
    bundle: &Bundle,
    digest: &str,
    base_digest: Option<&str>,
) -> Result<bool, LoopError> {
    let verified_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let same_image = setup
        .lock
        .as_ref()
        .map(|(lock, _)| &lock.file)
        .filter(|file| {
            file.bundle_digest == digest
                && (file.base_digest.is_none() || file.base_digest.as_deref() == base_digest)
        });
    let file = LockFile {
        spec_digest: setup.spec_digest.clone(),
        base_image: job.settings.docker.base_image.clone(),
        base_digest: base_digest.map(str::to_owned),
        bundle_digest: digest.to_string(),
        model: job.settings.model.name.clone(),
        verified_at,
        published: same_image.and_then(|file| file.published.clone()),
        attestations: same_image
            .map(|file| file.attestations.clone())
            .unwrap_or_default(),
    };
    let unchanged = setup.lock.as_ref().is_some_and(|(lock, state)| {
        *state == LockState::Fresh
            && lock.file.bundle_digest == file.bundle_digest
            && lock.file.base_digest == file.base_digest
    });
    if unchanged {
        return Ok(false);
    }
    lock::write(&job.spec, bundle, &file)?;
    Ok(true)
}
