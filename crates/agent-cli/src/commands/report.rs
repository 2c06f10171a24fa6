//! `agent report`: one self-contained HTML page for many run directories (the
//! artifact a CI job keeps).

use crate::args::ReportArgs;
use crate::exit;
use crate::failure::Failure;

pub fn report(args: ReportArgs) -> Result<u8, Failure> {
    let dirs = agent_report::find_run_dirs(&args.paths).map_err(|error| {
        Failure::usage(error).with_hint("name run directories or the `--out` folder of `agent run`")
    })?;
    if dirs.is_empty() {
        return Err(Failure::usage(anyhow::anyhow!(
            "no run directory (a folder holding `report.json`) below the given paths"
        ))
        .with_hint("name run directories or the `--out` folder of `agent run` (default `runs`)"));
    }
    let html = agent_report::render(&dirs).map_err(Failure::usage)?;
    agent_report::write(&args.output, &html).map_err(|error| Failure {
        code: exit::INFRASTRUCTURE,
        error: error.into(),
        hint: Some("check that the folder of `-o` exists and is writable".to_string()),
    })?;
    let plural = if dirs.len() == 1 { "" } else { "s" };
    eprintln!("report: {} run{plural} on one page", dirs.len());
    println!("{}", args.output.display());
    Ok(exit::VERIFIED)
}
