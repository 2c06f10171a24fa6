//! `agent verify`: rebuilds a run's final bundle, re-runs it and re-checks it against
//! its spec, without the model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use agent_loop::{Job, Outcome, Prompts};
use agent_spec::FlagOverrides;

use crate::args::VerifyArgs;
use crate::env;
use crate::exit;
use crate::failure::Failure;
use crate::settings;

pub async fn verify(args: VerifyArgs) -> Result<u8, Failure> {
    let report_path = args.run_dir.join("report.json");
    let report_text = std::fs::read_to_string(&report_path).map_err(|error| {
        Failure::usage(
            anyhow::Error::new(error).context(format!("cannot read `{}`", report_path.display())),
        )
        .with_hint("give the run directory that holds report.json and final/")
    })?;
    let report: agent_loop::Report = serde_json::from_str(&report_text).map_err(|error| {
        Failure::usage(
            anyhow::Error::new(error)
                .context(format!("`{}` is not a run report", report_path.display())),
        )
    })?;
    let final_dir = args.run_dir.join("final");
    if !final_dir.is_dir() {
        return Err(Failure::usage(anyhow::anyhow!(
            "`{}` has no final bundle: the run was not verified",
            args.run_dir.display()
        )));
    }
    let spec = agent_spec::load_spec(Path::new(&report.spec_path)).map_err(Failure::usage)?;
    let resolved = Arc::new(settings::resolve(
        args.config.config.as_deref(),
        FlagOverrides::default(),
    )?);
    let files = read_tree(&final_dir).map_err(|error| {
        Failure::usage(error.context(format!("cannot read `{}`", final_dir.display())))
    })?;
    let sandbox = agent_sandbox::Sandbox::connect(env::var(env::DOCKER_HOST).as_deref())
        .await
        .map_err(Failure::engine)?;
    let job = Job {
        limits: resolved.limits_for(&spec),
        spec,
        settings: resolved,
        prompts: Arc::new(Prompts::default()),
        run_id: format!("verify-{}", report.run_id),
        run_dir: args.run_dir.clone(),
        owner: agent_sandbox::owner_id(),
    };
    let (record, context) = agent_loop::verify_bundle(&job, &files, &sandbox)
        .await
        .map_err(|error| Failure::from_loop(error, &job.settings.model.api_key_env))?;
    let passed = record.outcome == Outcome::Passed;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "spec": job.spec.name,
                "verified": passed,
                "context_digest": context.digest,
                "result": record,
            }))
            .expect("verify result serialises")
        );
    }
    for check in &record.checks {
        eprintln!(
            "{}  {}{}",
            if check.passed { "pass" } else { "FAIL" },
            check.name,
            if check.passed {
                String::new()
            } else {
                format!(": {}", check.detail)
            }
        );
    }
    if passed {
        eprintln!(
            "{}: verified again ({})",
            job.spec.name,
            record.outcome.as_str()
        );
        Ok(exit::VERIFIED)
    } else {
        eprintln!(
            "{}: not verified: {} {}",
            job.spec.name,
            record.outcome.as_str(),
            record.detail
        );
        Ok(exit::NOT_VERIFIED)
    }
}

fn read_tree(root: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    let mut pending: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                let relative = entry
                    .path()
                    .strip_prefix(root)?
                    .to_string_lossy()
                    .replace('\\', "/");
                files.insert(relative, std::fs::read(entry.path())?);
            }
        }
    }
    Ok(files)
}
