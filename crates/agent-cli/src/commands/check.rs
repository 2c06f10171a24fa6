//! `agent check`: validates specs and the config; no model, no engine.

use agent_spec::{FlagOverrides, SpecPart};

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

/// What a run of `spec` verifies: its checks, its cases, then each other part it has.
fn verified_parts(spec: &agent_spec::Spec) -> Vec<String> {
    let mut parts = vec![count(spec.checks.len(), "check")];
    if !spec.cases.is_empty() {
        parts.push(count(spec.cases.len(), "case"));
    }
    for (part, n) in spec.other_parts() {
        parts.push(match part {
            // One per result `[image]` gives, as its judge counts them.
            SpecPart::Image if n == 0 => continue,
            SpecPart::Image => count(n, "image check"),
            SpecPart::Files => count(n, "file check"),
            SpecPart::StructureTests => count(n, "structure-test file"),
            SpecPart::Service => format!("a service with {}", count(n, "probe")),
            SpecPart::Suites => count(n, "hidden suite"),
        });
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
