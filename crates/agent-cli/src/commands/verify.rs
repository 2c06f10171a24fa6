//! `agent verify`: rebuilds a run's final bundle, re-runs it and re-checks it against
//! its spec, or runs an existing image against a spec; without the model.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use agent_loop::{Job, Outcome, Prompts};
use agent_run_dir::RunDir;
use agent_spec::FlagOverrides;

use crate::args::VerifyArgs;
use crate::exit;
use crate::failure::Failure;
use crate::settings;

pub async fn verify(args: VerifyArgs) -> Result<u8, Failure> {
    let flags = FlagOverrides {
        engines: args.engine.engines.clone(),
        ..FlagOverrides::default()
    };
    if let (Some(reference), Some(key)) = (&args.attestation, &args.key) {
        let wanted = super::attestation::Wanted {
            reference,
            key,
            spec: args.run_dir.as_deref(),
            json: args.json,
        };
        return super::attestation::verify(&wanted).await;
    }
    let Some(run_dir) = args.run_dir.clone() else {
        return Err(Failure::usage(anyhow::anyhow!(
            "give a run directory, or a spec with `--image`"
        )));
    };
    let resolved = Arc::new(settings::resolve(args.config.config.as_deref(), flags)?);
    if let Some(image) = &args.image {
        let spec = agent_spec::load_spec(&run_dir).map_err(crate::settings::every_failure)?;
        let pool = pool_for(&resolved, &spec).await?;
        let job = job(spec, resolved, format!("verify-{}", std::process::id()));
        let record = agent_loop::verify_image(&job, image, &pool.session())
            .await
            .map_err(|error| Failure::from_loop(error, &job.settings.model.api_key_env))?;
        return Ok(print_result(&job.spec.name, &record, args.json));
    }
    let shown = run_dir.display().to_string();
    let run_dir = RunDir::new(&run_dir);
    let report = read_report(&run_dir)?;
    let final_dir = run_dir.final_bundle();
    if !final_dir.is_dir() {
        return Err(Failure::usage(anyhow::anyhow!(
            "`{}` has no final bundle: the run was not verified",
            shown
        )));
    }
    let spec = load_spec(&run_dir, &report)?;
    let files = read_tree(&final_dir).map_err(|error| {
        Failure::usage(error.context(format!("cannot read `{}`", final_dir.display())))
    })?;
    let pool = pool_for(&resolved, &spec).await?;
    let job = job(spec, resolved, format!("verify-{}", report.run_id));
    let record = agent_loop::verify_bundle(&job, &files, &pool.session())
        .await
        .map_err(|error| Failure::from_loop(error, &job.settings.model.api_key_env))?;
    Ok(print_result(&job.spec.name, &record, args.json))
}

/// The engines, each holding the probe image when `spec` has a service and the egress
/// image when builds go through the egress gate (nothing is started before a missing
/// one is named).
async fn pool_for(
    settings: &agent_spec::Settings,
    spec: &agent_spec::Spec,
) -> Result<agent_sandbox::Pool, Failure> {
    let needed: Vec<_> = crate::engines::probe_image(settings, std::slice::from_ref(spec))
        .into_iter()
        .chain(crate::engines::egress_image(settings))
        .collect();
    crate::engines::pool(settings, &needed).await
}

/// A job that only builds, runs and checks: no model, no lock.
fn job(spec: agent_spec::Spec, settings: Arc<agent_spec::Settings>, run_id: String) -> Job {
    Job {
        limits: settings.limits_for(&spec),
        run_dir: RunDir::new(std::env::temp_dir()),
        spec,
        settings,
        prompts: Arc::new(Prompts::default()),
        run_id,
        owner: agent_sandbox::owner_id(),
        lock: agent_loop::LockMode::Off,
        provenance: agent_loop::Provenance::default(),
        credentials: None,
    }
}

fn read_report(run_dir: &RunDir) -> Result<agent_loop::Report, Failure> {
    let report_path = run_dir.report_json();
    let report_text = std::fs::read_to_string(&report_path).map_err(|error| {
        Failure::usage(
            anyhow::Error::new(error).context(format!("cannot read `{}`", report_path.display())),
        )
        .with_hint("give the run directory that holds report.json and final/")
    })?;
    serde_json::from_str(&report_text).map_err(|error| {
        Failure::usage(
            anyhow::Error::new(error)
                .context(format!("`{}` is not a run report", report_path.display())),
        )
    })
}

/// Each check on stderr, the verdict, and `--json` on stdout; the exit code.
fn print_result(spec: &str, record: &agent_loop::IterationRecord, json: bool) -> u8 {
    let passed = record.outcome == Outcome::Passed;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "spec": spec,
                "verified": passed,
                "context_digest": record.context_digest,
                "result": record,
            }))
            .expect("verify result serialises")
        );
    }
    for check in &record.checks {
        let detail = if check.passed {
            String::new()
        } else {
            format!(": {}", check.detail)
        };
        let word = if check.passed { "pass" } else { "FAIL" };
        eprintln!("{word}  {}: {}{detail}", check.group, check.name);
    }
    if passed {
        eprintln!("{spec}: verified again ({})", record.outcome.as_str());
        exit::VERIFIED
    } else {
        eprintln!(
            "{spec}: not verified: {} {}",
            record.outcome.as_str(),
            record.detail
        );
        exit::NOT_VERIFIED
    }
}

/// The spec as it was run: the run directory's own copy when it has one (its inputs
/// checked against the digests the run recorded), else the path the run was given.
fn load_spec(run_dir: &RunDir, report: &agent_loop::Report) -> Result<agent_spec::Spec, Failure> {
    let Some(copy) = &report.spec_copy else {
        return agent_spec::load_spec(Path::new(&report.spec_path))
            .map_err(crate::settings::every_failure);
    };
    let spec = agent_spec::load_spec(&run_dir.root().join(copy))
        .map_err(crate::settings::every_failure)?;
    let recorded: BTreeMap<&str, &str> = report
        .inputs
        .iter()
        .map(|input| (input.path.as_str(), input.sha256.as_str()))
        .collect();
    let found: BTreeMap<&str, String> = spec
        .inputs
        .iter()
        .map(|(name, path)| {
            let digest = std::fs::read(path)
                .map_or_else(|_| String::new(), |bytes| agent_loop::sha256_hex(&bytes));
            (name.as_str(), digest)
        })
        .collect();
    let changed: Vec<&str> = recorded
        .keys()
        .chain(found.keys())
        .filter(|name| recorded.get(*name).copied() != found.get(*name).map(String::as_str))
        .copied()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if !changed.is_empty() {
        return Err(Failure::usage(anyhow::anyhow!(
            "the inputs kept in `{}` differ from those the run used: {}",
            run_dir.spec_folder().display(),
            changed.join(", ")
        ))
        .with_hint("the run directory was changed after the run; verify an unchanged copy"));
    }
    Ok(spec)
}

/// Every file below `root`, by its path relative to it.
fn read_tree(root: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
        let entry = entry?;
        if entry.file_type().is_file() {
            let relative = entry
                .path()
                .strip_prefix(root)?
                .to_string_lossy()
                .replace('\\', "/");
            files.insert(relative, std::fs::read(entry.path())?);
        }
    }
    Ok(files)
}
