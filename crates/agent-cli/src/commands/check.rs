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
        println!(
            "ok  {}  {}  ({}{}, max {})",
            spec.name,
            spec.path.display(),
            count(spec.checks.len(), "check"),
            if spec.judge { ", judged" } else { "" },
            count(limits.max_iterations as usize, "iteration")
        );
    }
    Ok(exit::VERIFIED)
}

/// `1 check`, `2 checks`.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
