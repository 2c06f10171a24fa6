//! What `agent run` does with each verified image once its spec's run has ended:
//! pushes it (`--push`, else `[publish] repository`) as
//! `<repository>/<spec>:<12 hex of the bundle digest>` plus the `[publish] tags`, and
//! writes it as `<--save DIR>/<spec>.tar`; records both in `report.json`. A push or
//! save that fails leaves the spec verified, is recorded as `publish_error`, and ends
//! the run with exit 3. Credentials are found as the Docker CLI finds them, before
//! the first model call, and never written anywhere. With signing on, each pushed
//! image then gets its signed attestations (`crate::attest`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use agent_loop::{Published, Report, SavedImage};
use agent_run_dir::RunDir;
use agent_sandbox::{CredentialSource, RegistryCredentials, Sandbox};
use agent_spec::{PublishSettings, Spec};

use crate::attest::{self, Signer};
use crate::env;
use crate::failure::Failure;

/// How long one push may take.
const PUSH_TIMEOUT: Duration = Duration::from_secs(1800);
/// How long writing one image file may take.
const SAVE_TIMEOUT: Duration = Duration::from_secs(1800);
/// How long a `docker-credential-<name>` helper may take to answer.
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// Where verified images go; empty when neither pushing nor saving.
#[derive(Debug, Default)]
pub struct Publisher {
    push: Option<PushTarget>,
    save: Option<PathBuf>,
    signer: Option<Signer>,
    /// The `[docker] builder` setting, for the provenance.
    builder: String,
}

/// The spec run whose verified image is published.
pub struct SpecRun<'a> {
    pub spec: &'a Spec,
    pub run_dir: &'a RunDir,
}

#[derive(Debug)]
struct PushTarget {
    repository: String,
    /// Moving tags pushed beside the digest tag.
    tags: Vec<String>,
    credentials: Option<RegistryCredentials>,
}

impl Publisher {
    /// Finds the registry's credentials and makes the `--save` folder: what can be
    /// wrong is found before any model call. `settings` were checked when resolved
    /// (`--push` over `[publish] repository`).
    pub async fn prepare(
        settings: &PublishSettings,
        save: Option<&Path>,
        signer: Option<Signer>,
        builder: String,
    ) -> Result<Publisher, Failure> {
        let push = match &settings.repository {
            Some(repository) => Some(push_target(repository, &settings.tags).await?),
            None => None,
        };
        let save = match save {
            Some(dir) => Some(save_dir(dir)?),
            None => None,
        };
        Ok(Publisher {
            push,
            save,
            signer,
            builder,
        })
    }

    /// Pushes and saves the verified image of `report` and records what happened in
    /// it, before `report.json` is written. Returns the first failure (exit 3).
    pub async fn publish(
        &self,
        sandbox: &Sandbox,
        run: SpecRun<'_>,
        report: &mut Report,
    ) -> Option<Failure> {
        let image = report.image.clone().filter(|_| report.verified)?;
        if self.push.is_none() && self.save.is_none() {
            return None;
        }
        let mut failures = Vec::new();
        if let Some(target) = &self.push {
            let started = std::time::Instant::now();
            let (published, failure) = push(sandbox, target, &image).await;
            // The publishing times, for `scripts/bench-attest`.
            tracing::info!(spec = %report.spec, secs = started.elapsed().as_secs_f64(), "pushed");
            report.published = published;
            failures.extend(failure);
            if let (Some(signer), true) = (&self.signer, failures.is_empty()) {
                let started = std::time::Instant::now();
                let context = attest::Context {
                    spec: run.spec,
                    run_dir: run.run_dir,
                    sandbox,
                    credentials: target.credentials.as_ref(),
                    builder: &self.builder,
                };
                match attest::attest(signer, &context, report).await {
                    Ok(records) => report.attestations = records,
                    Err(failure) => failures.push(failure),
                }
                let secs = started.elapsed().as_secs_f64();
                tracing::info!(spec = %report.spec, secs, "attested");
            }
            failures.extend(record_in_lock(report));
        }
        if let Some(dir) = &self.save {
            let path = dir.join(format!("{}.tar", report.spec));
            match sandbox.save(&image, &path, SAVE_TIMEOUT).await {
                Ok(saved) => {
                    report.saved = Some(SavedImage {
                        path: saved.path.display().to_string(),
                        sha256: saved.sha256,
                    });
                }
                Err(error) => failures.push(Failure::publish(error)),
            }
        }
        report.publish_error = failures.first().map(|failure| failure.one_line());
        failures.into_iter().next()
    }
}

/// Writes where the verified image went into the lock beside the spec, so the next run
/// of the unchanged spec pulls it instead of building.
fn record_in_lock(report: &Report) -> Option<Failure> {
    let published = report.published.as_ref()?;
    let lock = report.lock.as_ref()?;
    let digest = report.history.last()?.context_digest.as_deref()?;
    let dir = Path::new(&lock.path);
    let digests: Vec<String> = report
        .attestations
        .iter()
        .map(|record| record.digest.clone())
        .collect();
    let recorded = agent_loop::record_published(dir, digest, published)
        .and_then(|_| agent_loop::record_attestations(dir, digest, &digests));
    recorded.err().map(|error| {
        Failure::infrastructure(
            anyhow::Error::new(error).context("cannot record the pushed image in the lock"),
        )
    })
}

/// What a report says was published, as lines for people.
pub fn lines(report: &Report) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(published) = &report.published {
        lines.push(format!(
            "{}: pushed {} ({})",
            report.spec, published.reference, published.digest
        ));
    }
    if let Some(first) = report.attestations.first() {
        lines.push(format!(
            "{}: signed {} attestations, stored under {}",
            report.spec,
            report.attestations.len(),
            first.reference
        ));
    }
    if let Some(saved) = &report.saved {
        lines.push(format!("{}: saved {}", report.spec, saved.path));
    }
    lines
}

/// Pushes `image` under the target's repository: the digest tag, then the moving tags.
/// The digest tag's result stays even when a moving tag fails.
async fn push(
    sandbox: &Sandbox,
    target: &PushTarget,
    image: &str,
) -> (Option<Published>, Option<Failure>) {
    // The loop's tag is `agent/<name>:<12 hex>`: the same name and hex go out.
    let Some((name, short_digest)) = image
        .strip_prefix(agent_sandbox::VERIFIED_REPOSITORY_PREFIX)
        .and_then(|rest| rest.rsplit_once(':'))
    else {
        let error =
            anyhow::anyhow!("the verified image `{image}` has no `agent/<spec>:<digest>` tag");
        return (None, Some(Failure::infrastructure(error)));
    };
    let repository = format!("{}/{name}", target.repository);
    let credentials = target.credentials.as_ref();
    let pushed = match sandbox
        .push(image, &repository, short_digest, credentials, PUSH_TIMEOUT)
        .await
    {
        Ok(pushed) => pushed,
        Err(error) => return (None, Some(Failure::publish(error))),
    };
    let published = Published {
        reference: pushed.reference,
        digest: pushed.digest,
    };
    for tag in &target.tags {
        if let Err(error) = sandbox
            .push(image, &repository, tag, credentials, PUSH_TIMEOUT)
            .await
        {
            return (Some(published), Some(Failure::publish(error)));
        }
    }
    (Some(published), None)
}

/// Where registry credentials are found, as the Docker CLI finds them: for pushes,
/// and for the loop's pulls of a lock's published image.
pub fn credential_source() -> CredentialSource {
    CredentialSource {
        config_file: env::docker_config_dir().join("config.json"),
        helper_path: std::env::var_os(env::PATH),
        helper_timeout: HELPER_TIMEOUT,
    }
}

async fn push_target(repository: &str, tags: &[String]) -> Result<PushTarget, Failure> {
    let server = agent_sandbox::registry_server(repository);
    let credentials = agent_sandbox::resolve_credentials(&credential_source(), &server)
        .await
        .map_err(Failure::publish)?;
    tracing::debug!(
        server,
        found = credentials.is_some(),
        "registry credentials"
    );
    Ok(PushTarget {
        repository: repository.to_owned(),
        tags: tags.to_vec(),
        credentials,
    })
}

/// The `--save` folder, made when missing, as an absolute path for the report.
fn save_dir(dir: &Path) -> Result<PathBuf, Failure> {
    std::fs::create_dir_all(dir)
        .and_then(|()| std::path::absolute(dir))
        .map_err(|error| {
            Failure::usage(anyhow::Error::new(error).context(format!(
                "cannot make the `--save` folder `{}`",
                dir.display()
            )))
            .with_hint("give a folder that can be created and written")
        })
}
