//! `agent check`: validates specs and the config; no model, no engine.

use agent_spec::FlagOverrides;

use crate::args::CheckArgs;
use crate::exit;
use crate::failure::Failure;
use crate::settings;

pub fn check(args: CheckArgs) -> Result<u8, Failure> {
    let resolved = settings::resolve(args.config.config.as_deref(), FlagOverrides::default())?;
    agent_loop::Prompts::load(&resolved.prompts).map_err(Failure::usage)?;
    let specs = settings::load_specs(&args.specs)?;
    for spec in &specs {
        let limits = resolved.limits_for(spec);
        let mut parts = verified_parts(spec);
        parts.push(format!(
            "max {}",
            count(limits.max_iterations as usize, "iteration")
        ));
        println!(
            "ok  {}  {}  ({})",
            spec.name,
            spec.path.display(),
            parts.join(", ")
        );
    }
    Ok(exit::VERIFIED)
}

/// What a run of `spec` verifies: its checks, then each other part it has.
fn verified_parts(spec: &agent_spec::Spec) -> Vec<String> {
    let counted = [
        (spec.cases.len(), "case"),
        // One per result `[image]` gives, as its judge counts them.
        (
            spec.image.as_ref().map_or(0, |image| {
                image.judge(&agent_spec::ImageFacts::default()).len()
            }),
            "image check",
        ),
        (spec.files.len(), "file check"),
        (spec.structure_tests.len(), "structure-test file"),
    ];
    let mut parts = vec![count(spec.checks.len(), "check")];
    parts.extend(
        counted
            .into_iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, noun)| count(n, noun)),
    );
    if spec.service.is_some() {
        let probes = count(spec.probes.len(), "probe");
        parts.push(format!("a service with {probes}"));
    }
    if !spec.suites.is_empty() {
        parts.push(count(spec.suites.len(), "hidden suite"));
    }
    if spec.judge {
        parts.push("judged".to_owned());
    }
    parts
}

/// `1 check`, `2 checks`.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
