//! Several engines as one. Each engine has slots (a semaphore): a build or a run holds
//! one for as long as it lasts, and nothing else does. A spec's work goes through a
//! [`PoolSession`], which stays on one engine — the one with the fewest specs per slot
//! when it starts, since images and the layer cache of its earlier iterations are
//! there — until that engine is lost; then the next step goes to another engine.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_spec::ImageFacts;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::engine::Sandbox;
use crate::errors::SandboxError;
use crate::outcome::{
    BuildOutcome, BuildProgress, BuildStatus, CleanupReport, PulledImage, RunOutcome, Sealed,
};
use crate::port::{EnginePort, Inspect, Inspected, RemovalScope, Setup};
use crate::probe::ProbeRequest;
use crate::registry_auth::RegistryCredentials;
use crate::request::{BuildRequest, RunRequest};
use crate::service::{ServiceOutcome, ServiceRequest};
use crate::suite::{SuiteOutcome, SuiteRequest};

/// Engines that answered, with their slots. Cheap to clone.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    members: Vec<Member>,
    /// Sessions staying on each engine, by index; under one lock so that sessions
    /// starting at once spread.
    sessions: Mutex<Vec<usize>>,
}

struct Member {
    sandbox: Sandbox,
    slots: usize,
    free: Arc<Semaphore>,
    down: AtomicBool,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hosts: Vec<&str> = self
            .inner
            .members
            .iter()
            .map(|member| member.sandbox.engine().host.as_str())
            .collect();
        formatter
            .debug_struct("Pool")
            .field("engines", &hosts)
            .finish()
    }
}

impl Pool {
    /// A pool of connected engines; `slots` `None` takes the engine's CPU count.
    pub fn new(engines: Vec<(Sandbox, Option<usize>)>) -> Pool {
        let members: Vec<Member> = engines
            .into_iter()
            .map(|(sandbox, slots)| {
                let slots = slots.unwrap_or(sandbox.engine().cpus).max(1);
                Member {
                    sandbox,
                    slots,
                    free: Arc::new(Semaphore::new(slots)),
                    down: AtomicBool::new(false),
                }
            })
            .collect();
        let sessions = Mutex::new(vec![0; members.len()]);
        Pool {
            inner: Arc::new(Inner { members, sessions }),
        }
    }

    /// Every engine with its slots, lost ones included.
    pub fn engines(&self) -> Vec<(Sandbox, usize)> {
        self.inner
            .members
            .iter()
            .map(|member| (member.sandbox.clone(), member.slots))
            .collect()
    }

    /// Engines still answering.
    pub fn live(&self) -> Vec<Sandbox> {
        self.inner
            .members
            .iter()
            .filter(|member| !member.down.load(Ordering::SeqCst))
            .map(|member| member.sandbox.clone())
            .collect()
    }

    /// The addresses of the engines lost during the run.
    pub fn lost(&self) -> Vec<String> {
        self.inner
            .members
            .iter()
            .filter(|member| member.down.load(Ordering::SeqCst))
            .map(|member| member.sandbox.engine().host.clone())
            .collect()
    }

    /// Builds and runs the pool takes at once.
    pub fn total_slots(&self) -> usize {
        self.inner.members.iter().map(|member| member.slots).sum()
    }

    /// A session for one spec's work.
    pub fn session(&self) -> PoolSession {
        PoolSession {
            pool: self.clone(),
            state: Mutex::new(SessionState::default()),
        }
    }

    fn member(&self, index: usize) -> &Member {
        &self.inner.members[index]
    }

    fn is_down(&self, index: usize) -> bool {
        self.member(index).down.load(Ordering::SeqCst)
    }

    /// Moves a session from `leaving` (if any) to the live engine with the fewest
    /// sessions per slot; the first such engine on a tie.
    fn settle(&self, leaving: Option<usize>) -> Result<usize, SandboxError> {
        let mut sessions = self.inner.sessions.lock().expect("pool lock");
        if let Some(index) = leaving {
            sessions[index] = sessions[index].saturating_sub(1);
        }
        let engines: Vec<(usize, usize, bool)> = (0..self.inner.members.len())
            .map(|index| {
                (
                    sessions[index],
                    self.member(index).slots,
                    self.is_down(index),
                )
            })
            .collect();
        let chosen = least_loaded(&engines).ok_or_else(|| SandboxError::NoEngine {
            lost: self.lost().join(", "),
        })?;
        sessions[chosen] += 1;
        Ok(chosen)
    }

    fn leave(&self, index: usize) {
        let mut sessions = self.inner.sessions.lock().expect("pool lock");
        sessions[index] = sessions[index].saturating_sub(1);
    }
}

/// Of `(sessions, slots, down)` per engine, the live one with the fewest sessions per
/// slot; the first on a tie.
fn least_loaded(engines: &[(usize, usize, bool)]) -> Option<usize> {
    (0..engines.len())
        .filter(|&index| !engines[index].2)
        .min_by(|&a, &b| {
            let ((a_sessions, a_slots, _), (b_sessions, b_slots, _)) = (engines[a], engines[b]);
            (a_sessions * b_slots).cmp(&(b_sessions * a_slots))
        })
}

/// One spec's way into the pool: the engine it stays on, and every engine it used
/// (cleanup goes to each).
pub struct PoolSession {
    pool: Pool,
    state: Mutex<SessionState>,
}

#[derive(Default)]
struct SessionState {
    current: Option<usize>,
    used: BTreeSet<usize>,
}

impl PoolSession {
    /// The engine the session is on, choosing one when it has none or lost its own.
    fn current(&self) -> Result<usize, SandboxError> {
        let mut state = self.state.lock().expect("session lock");
        match state.current {
            Some(index) if !self.pool.is_down(index) => Ok(index),
            leaving => {
                let index = self.pool.settle(leaving)?;
                state.current = Some(index);
                state.used.insert(index);
                Ok(index)
            }
        }
    }

    async fn slot(&self) -> Result<(Sandbox, OwnedSemaphorePermit), SandboxError> {
        let index = self.current()?;
        let member = self.pool.member(index);
        let permit = member
            .free
            .clone()
            .acquire_owned()
            .await
            .expect("the slots are never closed");
        Ok((member.sandbox.clone(), permit))
    }

    /// The engine the session is on now, if it has started.
    pub fn engine(&self) -> Option<Sandbox> {
        let state = self.state.lock().expect("session lock");
        state
            .current
            .map(|index| self.pool.member(index).sandbox.clone())
    }

    /// The live engines this session used.
    fn used(&self) -> Vec<Sandbox> {
        let state = self.state.lock().expect("session lock");
        state
            .used
            .iter()
            .filter(|&&index| !self.pool.is_down(index))
            .map(|&index| self.pool.member(index).sandbox.clone())
            .collect()
    }

    /// `work` on every live engine the session used, what each removed together.
    async fn on_each_used<Work>(
        &self,
        work: impl Fn(Sandbox) -> Work,
    ) -> Result<CleanupReport, SandboxError>
    where
        Work: Future<Output = Result<CleanupReport, SandboxError>>,
    {
        let mut report = CleanupReport::default();
        for sandbox in self.used() {
            let removed = work(sandbox).await?;
            report.containers.extend(removed.containers);
            report.images.extend(removed.images);
            report.volumes.extend(removed.volumes);
        }
        Ok(report)
    }
}

impl EnginePort for PoolSession {
    /// Builds on the session's engine, holding one of its slots. A build that failed
    /// because its engine went away (the stream may just end) is that engine's
    /// failure, not the bundle's.
    async fn build(
        &self,
        request: BuildRequest<'_>,
        progress: &mut (dyn FnMut(BuildProgress) + Send),
    ) -> Result<BuildOutcome, SandboxError> {
        let (sandbox, _slot) = self.slot().await?;
        let built = sandbox.build(request, progress).await?;
        if matches!(built.status, BuildStatus::Failed { .. }) && !sandbox.answers().await {
            return Err(SandboxError::EngineLost {
                host: sandbox.engine().host.clone(),
            });
        }
        Ok(built)
    }

    /// Runs on the session's engine (where its images are), holding one of its slots
    /// for the setup commands and the run alike.
    async fn run(
        &self,
        request: RunRequest<'_>,
        setup: Option<Setup<'_>>,
    ) -> Result<RunOutcome, SandboxError> {
        let (sandbox, _slot) = self.slot().await?;
        match setup {
            Some(setup) => {
                sandbox
                    .run_after_setup(setup.commands, setup.env, request)
                    .await
            }
            None => sandbox.run(request).await,
        }
    }

    /// [`Sandbox::serve`] on the session's engine, holding one slot while the service
    /// runs (its probes' helper only relays bytes).
    async fn serve(
        &self,
        request: ServiceRequest<'_>,
        probes: &[ProbeRequest],
    ) -> Result<ServiceOutcome, SandboxError> {
        let (sandbox, _slot) = self.slot().await?;
        sandbox.serve(request, probes).await
    }

    /// [`Sandbox::run_suite`] on the session's engine, holding one slot.
    async fn run_suite(&self, request: SuiteRequest<'_>) -> Result<SuiteOutcome, SandboxError> {
        let (sandbox, _slot) = self.slot().await?;
        sandbox.run_suite(request).await
    }

    /// On the session's engine; it starts nothing, so it holds no slot.
    async fn inspect(&self, image: &str, what: Inspect<'_>) -> Result<Inspected, SandboxError> {
        let sandbox = self.pool.member(self.current()?).sandbox.clone();
        Ok(match what {
            Inspect::Config => Inspected {
                config: sandbox.image_facts(image).await?,
                files: Vec::new(),
            },
            Inspect::Files {
                paths,
                labels,
                content_limit,
            } => Inspected {
                config: ImageFacts::default(),
                files: sandbox
                    .file_facts(image, paths, labels, content_limit)
                    .await?,
            },
        })
    }

    async fn tag(&self, image: &str, reference: &str) -> Result<(), SandboxError> {
        let index = self.current()?;
        self.pool.member(index).sandbox.tag(image, reference).await
    }

    /// [`Sandbox::pull`] on the session's engine, holding one of its slots: the image
    /// is then where the session runs.
    async fn pull(
        &self,
        reference: &str,
        credentials: Option<&RegistryCredentials>,
        timeout: Duration,
    ) -> Result<PulledImage, SandboxError> {
        let (sandbox, _slot) = self.slot().await?;
        sandbox.pull(reference, credentials, timeout).await
    }

    async fn find_image(&self, image: &str) -> Result<Option<PulledImage>, SandboxError> {
        let index = self.current()?;
        self.pool.member(index).sandbox.find_image(image).await
    }

    /// [`Sandbox::seal`] on the session's engine, where the image is. It holds no
    /// slot: most ways build nothing, and the label build's steps are a few
    /// config commits.
    async fn seal(
        &self,
        image: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<Sealed, SandboxError> {
        let index = self.current()?;
        self.pool.member(index).sandbox.seal(image, labels).await
    }

    /// On every live engine the session used; what each removed together. Labelled
    /// removals keep nothing but verified images; an engine without an id skips it.
    async fn remove(&self, scope: RemovalScope<'_>) -> Result<CleanupReport, SandboxError> {
        self.on_each_used(|sandbox| async move {
            match scope {
                RemovalScope::Labelled { key, value } => {
                    sandbox.remove_labelled(key, value, None).await
                }
                RemovalScope::Containers { key, value } => {
                    sandbox.remove_labelled_containers(key, value).await
                }
                RemovalScope::Untagged(ids) => sandbox.remove_untagged_images(ids).await,
            }
        })
        .await
    }

    fn engine_host(&self) -> Option<String> {
        self.engine().map(|sandbox| sandbox.engine().host.clone())
    }

    /// After an engine error: when the session's engine no longer answers, it is
    /// marked lost for every session, and this one moves on. Returns the lost engine's
    /// address when another engine can take the work over.
    async fn lose_engine(&self) -> Option<String> {
        let index = self.state.lock().expect("session lock").current?;
        let member = self.pool.member(index);
        if member.sandbox.answers().await {
            return None;
        }
        let host = member.sandbox.engine().host.clone();
        if !member.down.swap(true, Ordering::SeqCst) {
            tracing::warn!(engine = %host, "the engine stopped answering; it is left out");
        }
        let moved = self.current().is_ok();
        moved.then_some(host)
    }
}

impl Drop for PoolSession {
    fn drop(&mut self) {
        let current = self.state.get_mut().map(|state| state.current);
        if let Ok(Some(index)) = current {
            self.pool.leave(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::least_loaded;

    #[test]
    fn a_new_spec_goes_to_the_live_engine_with_the_fewest_specs_per_slot() {
        assert_eq!(least_loaded(&[(0, 2, false), (0, 2, false)]), Some(0));
        assert_eq!(least_loaded(&[(1, 2, false), (0, 2, false)]), Some(1));
        assert_eq!(least_loaded(&[(1, 2, false), (1, 2, false)]), Some(0));
        // 2 specs on 8 slots are a lighter load than 1 on 2.
        assert_eq!(least_loaded(&[(1, 2, false), (2, 8, false)]), Some(1));
        assert_eq!(least_loaded(&[(0, 2, true), (5, 2, false)]), Some(1));
        assert_eq!(least_loaded(&[(0, 2, true), (0, 2, true)]), None);
    }
}
