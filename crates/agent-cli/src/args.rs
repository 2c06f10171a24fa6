//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "agent",
    version,
    about = "Turns a task and its test conditions into a verified container",
    long_about = "Turns a task and its test conditions into a verified container: asks a model for a \
Dockerfile and files, builds and runs them on the Docker engine, checks the output against \
the spec, and feeds every failure back until the checks pass or the budget is spent."
)]
pub struct Cli {
    /// More diagnostics on stderr (-v: debug, -vv: trace); RUST_LOG also works.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the loop for one or many specs.
    Run(RunArgs),
    /// Validate specs and config; no model, no engine.
    Check(CheckArgs),
    /// Rebuild and re-run a run's final bundle and re-check it; no model.
    Verify(VerifyArgs),
    /// Check the engine, the base image and the model endpoint.
    Doctor(ConfigArgs),
    /// Remove containers and images left by earlier runs (by label).
    Gc(GcArgs),
    /// Write one self-contained HTML page for many runs.
    Report(ReportArgs),
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The config file (default: ./agent.toml when present).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Spec files.
    #[arg(required = true, value_name = "SPEC")]
    pub specs: Vec<PathBuf>,

    #[command(flatten)]
    pub config: ConfigArgs,

    /// Where run directories go.
    #[arg(long, value_name = "DIR", default_value = "runs")]
    pub out: PathBuf,

    /// Specs run concurrently.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub jobs: u32,

    /// Overrides every spec's max_iterations.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_iterations: Option<u32>,

    /// The model name (overrides AGENT_MODEL and agent.toml).
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,

    /// The endpoint, including /v1 (overrides OPENAI_BASE_URL and agent.toml).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,

    /// Answer model calls from a recorded transcript.jsonl instead of the endpoint; the
    /// build, run and checks stay real.
    #[arg(long, value_name = "TRANSCRIPT")]
    pub replay: Option<PathBuf>,

    /// Print a machine-readable summary on stdout.
    #[arg(long)]
    pub json: bool,

    /// Write a JUnit XML report.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[arg(required = true, value_name = "SPEC")]
    pub specs: Vec<PathBuf>,

    #[command(flatten)]
    pub config: ConfigArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A run directory (holding report.json and final/).
    #[arg(value_name = "RUN_DIR")]
    pub run_dir: PathBuf,

    #[command(flatten)]
    pub config: ConfigArgs,

    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Also remove what running `agent` processes are using.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Run directories, or folders to search for them (such as the `--out` folder of
    /// `agent run`, which holds `<spec>/<run id>/`).
    #[arg(required = true, value_name = "RUN_DIR | OUT_DIR")]
    pub paths: Vec<PathBuf>,

    /// Where the page goes; its path is printed on stdout.
    #[arg(short, long, value_name = "FILE", default_value = "report.html")]
    pub output: PathBuf,
}
