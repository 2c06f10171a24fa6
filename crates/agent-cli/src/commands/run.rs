//! `agent run`: the loop for one or many specs, `--jobs` at a time, with cleanup on
//! every exit path (Ctrl-C and SIGTERM included).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agent_loop::{Job, LockMode, Prompts, Report};
use agent_model::Model;
use agent_run_dir::RunDir;
use agent_sandbox::{ImageRole, Pool, PoolSession};
use agent_spec::{FlagOverrides, Settings, Spec};
use secrecy::SecretString;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::args::RunArgs;
use crate::env;
use crate::exit;
use crate::failure::Failure;
use crate::progress::Progress;
use crate::publish::Publisher;
use crate::settings;
use crate::summary::{self, SpecSummary};

/// How long cleanup may take after a signal before the process exits anyway.
const CLEANUP_GRACE: Duration = Duration::from_secs(30);
/// Specs in flight per engine slot by default: a spec spends most of its time waiting
/// for the model (two answers of a few seconds against about a second of build and
/// run), so one slot is kept busy by about four specs. Measured with `scripts/bench
/// scale`: two per slot left the engine 55 % busy, four 81 %.
const JOBS_PER_SLOT: usize = 4;

pub async fn run(args: RunArgs) -> Result<u8, Failure> {
    // Everything that can be wrong with the input is found before any model call.
    let flags = FlagOverrides {
        base_url: args.base_url.clone(),
        model: args.model.clone(),
        max_iterations: args.max_iterations,
        push: args.push.clone(),
        sign: args.sign,
        engines: args.engine.engines.clone(),
        candidates: args.candidates,
        cache_from: args.cache_from.clone(),
        builder: args.builder,
    };
    let resolved = Arc::new(settings::resolve(args.config.config.as_deref(), flags)?);
    // The signing key is checked before anything else is reached: a missing key is
    // bad usage, whatever else is wrong.
    let signer = crate::attest::Signer::from_settings(&resolved.publish)?;
    let prompts = Arc::new(Prompts::load(&resolved.prompts).map_err(Failure::usage)?);
    let mut specs = settings::load_specs(&args.specs)?;
    if let Some(shard) = args.shard {
        let all = specs.len();
        specs.retain(|spec| shard.holds(&spec.name));
        eprintln!(
            "agent: shard {}/{}: {} of {all} specs, {} skipped",
            shard.index,
            shard.count,
            specs.len(),
            all - specs.len()
        );
    }
    let model = model_for(&args, &resolved)?.with_bundle_limits(&resolved.bundle);
    let pool = crate::engines::pool(&resolved, &images_needed(&resolved, &specs)).await?;
    let jobs = args
        .jobs
        .map_or(pool.total_slots() * JOBS_PER_SLOT, |jobs| jobs as usize);
    // One line per run when builds are not limited to the allow-list.
    if let Some(warning) = resolved.docker.open_build_network_warning() {
        eprintln!("agent: warning: {warning}");
    }
    // As `[docker] builder` spells it: `auto`, `classic`, `buildkit`.
    let builder = resolved.docker.builder_for_network().as_str().to_owned();
    let publisher = Arc::new(
        Publisher::prepare(&resolved.publish, args.save.as_deref(), signer, builder).await?,
    );

    let cancel = CancellationToken::new();
    let signal = watch_signals(cancel.clone());
    let owner = agent_sandbox::owner_id();
    let progress = Progress::new();
    let shared = Shared {
        settings: resolved.clone(),
        prompts,
        model,
        pool: pool.clone(),
        sink: progress.sink(),
        cancel,
        owner: owner.clone(),
        jobs: Arc::new(Semaphore::new(jobs)),
        out: args.out.clone(),
        lock: lock_mode(&args),
        publisher,
    };
    let tasks: Vec<_> = specs.into_iter().map(|spec| shared.spawn(spec)).collect();
    let (summaries, infrastructure) = collect(tasks, &progress, &resolved.model.api_key_env).await;
    progress.finish();

    clean_up(&pool, &owner, resolved.docker.cache_max_mb).await;
    for host in pool.lost() {
        progress.println(&format!(
            "agent: engine `{host}` was lost during the run; its iterations went to the others"
        ));
    }
    finish(&args, &summaries, infrastructure, signal.received())
}

/// The images every engine must hold before the first model call, each with what it
/// is for: the base images, the probe image when a spec has a service, and the egress
/// image when builds go through the egress gate.
fn images_needed<'a>(settings: &'a Settings, specs: &[Spec]) -> Vec<(ImageRole, &'a String)> {
    let mut images: Vec<(ImageRole, &String)> = crate::engines::base_images(&settings.docker)
        .into_iter()
        .map(|image| (ImageRole::Base, image))
        .collect();
    images.extend(crate::engines::probe_image(settings, specs));
    images.extend(crate::engines::egress_image(settings));
    images
}

/// Whatever this process made and did not keep goes, on every engine still there,
/// whatever path got here; then each build cache is trimmed to its cap, once.
async fn clean_up(pool: &Pool, owner: &str, cache_max_mb: u64) {
    let cap_bytes = cache_max_mb.saturating_mul(1024 * 1024);
    for sandbox in pool.live() {
        if let Err(error) = sandbox
            .remove_labelled(agent_sandbox::LABEL_OWNER, owner, None)
            .await
        {
            tracing::warn!("final cleanup failed: {error}");
        }
        if cap_bytes > 0
            && let Err(error) = sandbox.trim_cache(cap_bytes).await
        {
            tracing::warn!("cannot trim the build cache: {error}");
        }
    }
}

/// How the run uses the locks beside the specs.
fn lock_mode(args: &RunArgs) -> LockMode {
    match (args.locked, args.no_lock, args.refresh_base) {
        (true, _, _) => LockMode::Locked,
        (false, true, _) => LockMode::Off,
        (false, false, true) => LockMode::RefreshBase,
        (false, false, false) => LockMode::Use,
    }
}

/// The live endpoint, or the transcript that answers in its place. `--locked` never
/// calls the model, so it needs no key.
fn model_for(args: &RunArgs, resolved: &agent_spec::Settings) -> Result<Model, Failure> {
    if let Some(transcript) = &args.replay {
        return Model::replay(transcript).map_err(|error| {
            Failure::usage(error)
                .with_hint("`--replay` takes a transcript.jsonl written by an earlier run")
        });
    }
    let key_name = &resolved.model.api_key_env;
    let api_key = env::var(key_name).map(SecretString::from);
    let needs_key = !args.locked
        && resolved
            .model
            .base_url
            .starts_with("https://api.openai.com");
    if api_key.is_none() && needs_key {
        return Err(Failure::usage(anyhow::anyhow!(
            "no API key: the environment variable `{key_name}` is not set"
        ))
        .with_hint(format!(
            "export {key_name}=…, or point `--base-url` at a local server (vLLM, Ollama) that needs none"
        )));
    }
    Model::live(&resolved.model, api_key).map_err(|error| Failure::model(error, key_name))
}

/// What every spec's task shares.
struct Shared {
    settings: Arc<agent_spec::Settings>,
    prompts: Arc<Prompts>,
    model: Model,
    pool: Pool,
    sink: agent_loop::EventSink,
    cancel: CancellationToken,
    owner: String,
    /// Specs in flight at once (`--jobs`).
    jobs: Arc<Semaphore>,
    out: PathBuf,
    lock: LockMode,
    publisher: Arc<Publisher>,
}

impl Shared {
    /// Starts a spec's task; it waits for a `--jobs` place unless cancelled first.
    fn spawn(&self, spec: Spec) -> tokio::task::JoinHandle<SpecOutcome> {
        let run_id = new_run_id();
        let provenance =
            crate::provenance::of(spec.path.parent().unwrap_or(std::path::Path::new(".")));
        let job = Job {
            limits: self.settings.limits_for(&spec),
            run_dir: RunDir::new(self.out.join(&spec.name).join(&run_id)),
            spec,
            settings: self.settings.clone(),
            prompts: self.prompts.clone(),
            run_id,
            owner: self.owner.clone(),
            lock: self.lock,
            provenance,
            credentials: Some(crate::publish::credential_source()),
        };
        let (model, pool, sink) = (self.model.clone(), self.pool.clone(), self.sink.clone());
        let (cancel, jobs) = (self.cancel.clone(), self.jobs.clone());
        let publisher = self.publisher.clone();
        tokio::spawn(async move {
            let _permit = tokio::select! {
                permit = jobs.acquire_owned() => permit.expect("the semaphore is never closed"),
                () = cancel.cancelled() => return SpecOutcome::NotStarted(job.spec),
            };
            let engine = pool.session();
            run_one(job, &model, &engine, &sink, &cancel, &publisher).await
        })
    }
}

/// Waits for every spec: their summaries, and the first infrastructure failure.
async fn collect(
    tasks: Vec<tokio::task::JoinHandle<SpecOutcome>>,
    progress: &Progress,
    api_key_env: &str,
) -> (Vec<SpecSummary>, Option<Failure>) {
    let mut summaries = Vec::new();
    let mut infrastructure: Option<Failure> = None;
    for task in tasks {
        match task.await {
            Ok(SpecOutcome::Finished {
                report,
                run_dir,
                spec_path,
                error,
                page_warning,
                publish_failure,
            }) => {
                if let Some(warning) = page_warning {
                    progress.println(&format!("{}: warning: {warning}", report.spec));
                }
                for line in crate::publish::lines(&report) {
                    progress.println(&line);
                }
                if let Some(failure) = publish_failure {
                    progress.println(&format!("{}: {}", report.spec, failure.render()));
                    infrastructure.get_or_insert(failure);
                }
                if let Some(refusal) = summary::lock_refusal(&report) {
                    progress.println(&format!("{}: {refusal}", report.spec));
                }
                if let Some(error) = error {
                    let failure = Failure::from_loop(error, api_key_env);
                    progress.println(&format!("{}: {}", report.spec, failure.render()));
                    infrastructure.get_or_insert(failure);
                }
                summaries.push(SpecSummary::from_report(&report, &run_dir, &spec_path));
            }
            Ok(SpecOutcome::NotStarted(spec)) => summaries.push(SpecSummary::not_started(&spec)),
            Ok(SpecOutcome::Failed { spec, failure }) => {
                summaries.push(SpecSummary::not_started(&spec));
                progress.println(&format!("{}: {}", spec.name, failure.render()));
                infrastructure.get_or_insert(failure);
            }
            Err(join_error) => {
                infrastructure.get_or_insert(Failure {
                    code: exit::INFRASTRUCTURE,
                    error: anyhow::anyhow!("a spec's task failed: {join_error}"),
                    hint: None,
                });
            }
        }
    }
    (summaries, infrastructure)
}

/// The table, `--json`, `--junit`, and the exit code: a signal's, else 3 after an
/// infrastructure failure, else 0 when every spec verified, else 1.
fn finish(
    args: &RunArgs,
    summaries: &[SpecSummary],
    infrastructure: Option<Failure>,
    signalled: Option<u8>,
) -> Result<u8, Failure> {
    summary::print_table(summaries);
    let code = if let Some(code) = signalled {
        code
    } else if infrastructure.is_some() {
        exit::INFRASTRUCTURE
    } else if summaries.iter().all(|summary| summary.verified) {
        exit::VERIFIED
    } else {
        exit::NOT_VERIFIED
    };
    if args.json {
        summary::print_json(summaries, code);
    }
    crate::ci::finish(summaries, &args.out);
    if let Some(path) = &args.junit {
        summary::write_junit(path, summaries).map_err(|error| Failure {
            code: exit::INFRASTRUCTURE,
            error: error.context(format!("cannot write JUnit report `{}`", path.display())),
            hint: None,
        })?;
    }
    match (signalled, infrastructure) {
        (None, Some(failure)) => Err(failure),
        _ => Ok(code),
    }
}

enum SpecOutcome {
    Finished {
        report: Report,
        run_dir: RunDir,
        /// The spec file, for annotations on it.
        spec_path: PathBuf,
        error: Option<agent_loop::LoopError>,
        /// Why `report.html` could not be written, if it could not.
        page_warning: Option<String>,
        /// How pushing or saving the verified image failed.
        publish_failure: Option<Failure>,
    },
    NotStarted(Spec),
    Failed {
        spec: Spec,
        failure: Failure,
    },
}

async fn run_one(
    job: Job,
    model: &Model,
    engine: &PoolSession,
    sink: &agent_loop::EventSink,
    cancel: &CancellationToken,
    publisher: &Publisher,
) -> SpecOutcome {
    if let Err(source) = std::fs::create_dir_all(job.run_dir.root()) {
        return SpecOutcome::Failed {
            failure: Failure {
                code: exit::INFRASTRUCTURE,
                error: anyhow::Error::new(source).context(format!(
                    "cannot create run directory `{}`",
                    job.run_dir.root().display()
                )),
                hint: Some("check that `--out` is writable".to_string()),
            },
            spec: job.spec,
        };
    }
    let mut session = match model.session(&job.spec.name, &job.run_dir.transcript()) {
        Ok(session) => session,
        Err(error) => {
            return SpecOutcome::Failed {
                failure: Failure::model(error, &job.settings.model.api_key_env),
                spec: job.spec,
            };
        }
    };
    let mut result = agent_loop::run_spec(&job, &mut session, engine, sink, cancel).await;
    // The verified image is on the engine the spec ended on.
    let publish_failure = match engine.engine() {
        Some(sandbox) => {
            let run = crate::publish::SpecRun {
                spec: &job.spec,
                run_dir: &job.run_dir,
            };
            publisher.publish(&sandbox, run, &mut result.report).await
        }
        None => None,
    };
    // Written once, now that what became of the image is known; the page is made
    // from the report just written.
    if let Err(error) = agent_loop::write_report(&result.report, &job.run_dir) {
        result.error.get_or_insert(error);
    }
    SpecOutcome::Finished {
        page_warning: write_page(&job.run_dir).await,
        report: result.report,
        run_dir: job.run_dir,
        spec_path: job.spec.path,
        error: result.error,
        publish_failure,
    }
}

/// Writes the run directory's `report.html`. The page is for people reading the run:
/// one that cannot be written is a warning, and the run stays what it was.
async fn write_page(run_dir: &RunDir) -> Option<String> {
    let dir = run_dir.clone();
    match tokio::task::spawn_blocking(move || agent_report::write_run_report(&dir)).await {
        Ok(Ok(_)) => None,
        Ok(Err(error)) => Some(format!(
            "cannot write report.html: {:#}",
            anyhow::Error::new(error)
        )),
        Err(join_error) => Some(format!("cannot write report.html: {join_error}")),
    }
}

/// A run id: UTC time to the second and a random suffix, so runs sort by time and
/// never collide.
fn new_run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let now = time::OffsetDateTime::now_utc();
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let stamp = now
        .format(format)
        .unwrap_or_else(|_| now.unix_timestamp().to_string());
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(now.unix_timestamp_nanos() as u128);
    hasher.write_u32(std::process::id());
    format!("{stamp}-{:06x}", hasher.finish() & 0xff_ffff)
}

struct SignalWatch {
    received: Arc<std::sync::Mutex<Option<u8>>>,
}

impl SignalWatch {
    fn received(&self) -> Option<u8> {
        *self.received.lock().expect("signal lock")
    }
}

/// Cancels `cancel` on Ctrl-C or SIGTERM; the loop then stops, cleans up and writes its
/// report. A second signal, or cleanup that outlasts the grace period, exits at once.
fn watch_signals(cancel: CancellationToken) -> SignalWatch {
    use tokio::signal::unix::{SignalKind, signal};
    let received = Arc::new(std::sync::Mutex::new(None));
    let record = received.clone();
    tokio::spawn(async move {
        let (Ok(mut interrupt), Ok(mut terminate)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        let first = tokio::select! {
            _ = interrupt.recv() => exit::INTERRUPTED,
            _ = terminate.recv() => exit::TERMINATED,
        };
        *record.lock().expect("signal lock") = Some(first);
        eprintln!(
            "agent: stopping, removing containers and images (a second signal exits at once)"
        );
        cancel.cancel();
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
            () = tokio::time::sleep(CLEANUP_GRACE) => {}
        }
        std::process::exit(i32::from(first));
    });
    SignalWatch { received }
}
