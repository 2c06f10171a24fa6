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
            "ok  {}  {}  ({} checks{}, max {} iterations)",
            spec.name,
            spec.path.display(),
            spec.checks.len(),
            if spec.judge { ", judged" } else { "" },
            limits.max_iterations
        );
    }
    Ok(exit::VERIFIED)
}
