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
    /// Rebuild and re-run a run's final bundle and re-check it, or run an image
    /// against a spec (`--image REF SPEC`); no model.
    Verify(VerifyArgs),
    /// Check every engine, the base images and the model endpoint.
    Doctor(DoctorArgs),
    /// Remove containers and images left by earlier runs (by label).
    Gc(GcArgs),
    /// Write one self-contained HTML page for many runs.
    Report(ReportArgs),
    /// Print the JSON Schema of spec.toml or agent.toml, for editors and scripts.
    Schema(SchemaArgs),
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Which file's schema.
    #[arg(value_enum)]
    pub file: SchemaFile,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SchemaFile {
    /// A spec (`spec.toml`).
    Spec,
    /// The config (`agent.toml`).
    Config,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The config file (default: ./agent.toml when present).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct EngineArgs {
    /// A Docker engine to use (`unix://…`, `tcp://host:2376`); repeat for several.
    /// Over `[docker] engines` and DOCKER_HOST.
    #[arg(long = "engine", value_name = "URL")]
    pub engines: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub config: ConfigArgs,

    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Spec files.
    #[arg(required = true, value_name = "SPEC")]
    pub specs: Vec<PathBuf>,

    #[command(flatten)]
    pub config: ConfigArgs,

    #[command(flatten)]
    pub engine: EngineArgs,

    /// Where run directories go.
    #[arg(long, value_name = "DIR", default_value = "runs")]
    pub out: PathBuf,

    /// Specs in flight at once (default: four per engine slot, so builds and runs keep
    /// every slot busy while other specs wait for the model).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub jobs: Option<u32>,

    /// Bundles asked for in each spec's first generation, built and run side by side;
    /// the first to pass wins (over `[model] candidates`; default 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=16))]
    pub candidates: Option<u32>,

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

    /// Use only the lock beside each spec (`<spec stem>.lock/`): never call the model;
    /// a missing, stale or failing lock leaves the spec not verified.
    #[arg(long, conflicts_with_all = ["no_lock", "replay"])]
    pub locked: bool,

    /// Neither read nor write locks.
    #[arg(long)]
    pub no_lock: bool,

    /// Pull each spec's base image again, rebuild and re-check the locked bundle on
    /// it, repair with the model only when a check now fails, and rewrite each lock
    /// whose base moved. Not with `--locked` (which never refreshes) or `--no-lock`.
    #[arg(long, conflicts_with_all = ["locked", "no_lock"])]
    pub refresh_base: bool,

    /// Run only shard K of N (1 ≤ K ≤ N): the specs whose name hashes there, for a CI
    /// job matrix.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<crate::shard::Shard>,

    /// Push each verified image as `<REPOSITORY>/<spec>:<12 hex of the bundle digest>`
    /// (over `[publish] repository`), with credentials as the Docker CLI finds them.
    #[arg(long, value_name = "REPOSITORY")]
    pub push: Option<String>,

    /// An image in a registry the builds may take unchanged steps from (pulled first;
    /// one that cannot be pulled is skipped with a warning); repeat for several. Over
    /// `[docker] cache_from`.
    #[arg(long = "cache-from", value_name = "REF")]
    pub cache_from: Vec<String>,

    /// Which builder builds: `auto` (per engine, the one that does less work there),
    /// `classic` or `buildkit`. Over `[docker] builder`.
    #[arg(long, value_name = "BUILDER")]
    pub builder: Option<agent_spec::BuilderChoice>,

    /// Sign each pushed image's attestations (a Test Result of its checks and a SLSA
    /// provenance) with the ECDSA P-256 PEM key in `AGENT_SIGNING_KEY` (or the variable
    /// `[publish] signing_key_env` names) and store them under its `sha256-<hex>.att`
    /// tag, as cosign does. Over `[publish] sign`.
    #[arg(long)]
    pub sign: bool,

    /// Write each verified image as `<DIR>/<spec>.tar`, which `docker load` reads.
    #[arg(long, value_name = "DIR")]
    pub save: Option<PathBuf>,
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
    /// A run directory (holding report.json and final/); with `--image`, a spec; with
    /// `--attestation`, an optional spec whose current digest must be the attested one.
    #[arg(value_name = "RUN_DIR | SPEC", required_unless_present = "attestation")]
    pub run_dir: Option<PathBuf>,

    /// Run this existing image (no build) and check it against the spec given.
    #[arg(long, value_name = "REF", conflicts_with = "attestation")]
    pub image: Option<String>,

    /// Check the signed attestations of this image in its registry (no engine, no
    /// model): exit 0 only when a Test Result signed by `--key` names its digest and
    /// says PASSED.
    #[arg(long, value_name = "REF", requires = "key")]
    pub attestation: Option<String>,

    /// The public key (PEM) the attestation must be signed with.
    #[arg(long, value_name = "PUB.pem", requires = "attestation")]
    pub key: Option<PathBuf>,

    #[command(flatten)]
    pub config: ConfigArgs,

    #[command(flatten)]
    pub engine: EngineArgs,

    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Also remove what running `agent` processes are using.
    #[arg(long)]
    pub all: bool,

    /// Also remove the build cache: every image kept under `agent-cache/…` (the
    /// layers later runs would reuse).
    #[arg(long)]
    pub cache: bool,

    #[command(flatten)]
    pub config: ConfigArgs,

    #[command(flatten)]
    pub engine: EngineArgs,
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Cli;

    /// Every `agent` command line of a CI example: the `run` steps of a GitHub
    /// Actions workflow and the script lines of a GitLab CI job.
    fn command_lines(yaml: &yaml_rust2::Yaml, found: &mut Vec<String>) {
        use yaml_rust2::Yaml;
        match yaml {
            Yaml::String(text) => found.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|line| line.starts_with("agent "))
                    .map(str::to_string),
            ),
            Yaml::Array(items) => items.iter().for_each(|item| command_lines(item, found)),
            Yaml::Hash(map) => map.values().for_each(|value| command_lines(value, found)),
            _ => {}
        }
    }

    /// CI expressions and variables replaced by values of their kind.
    fn expanded(line: &str) -> String {
        let shard = line.replace("${{ matrix.shard }}", "2");
        let mut text = String::new();
        let mut rest = shard.as_str();
        while let Some(start) = rest.find("${{") {
            text.push_str(&rest[..start]);
            let end = rest[start..].find("}}").expect("an expression ends") + start + 2;
            text.push_str("value");
            rest = &rest[end..];
        }
        text.push_str(rest);
        text.replace("$CI_REGISTRY_IMAGE", "registry.example.test/group/project")
    }

    #[test]
    fn every_agent_command_in_the_ci_examples_is_accepted() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let mut checked = 0;
        // examples/github-actions.yml runs agent through the action
        // (tests/cli/github.rs runs the action's scripts).
        for example in ["gitlab-ci.yml"] {
            let text = std::fs::read_to_string(root.join(example)).expect("the example exists");
            let documents = yaml_rust2::YamlLoader::load_from_str(&text)
                .unwrap_or_else(|error| panic!("{example} is not YAML: {error}"));
            let mut lines = Vec::new();
            documents
                .iter()
                .for_each(|document| command_lines(document, &mut lines));
            assert!(!lines.is_empty(), "{example} runs agent");
            for line in lines {
                let words = shell_words::split(&expanded(&line))
                    .unwrap_or_else(|error| panic!("{example}: `{line}`: {error}"));
                if let Err(error) = Cli::try_parse_from(&words) {
                    panic!("{example}: `{line}` is refused:\n{error}");
                }
                checked += 1;
            }
        }
        assert!(checked >= 1);
    }
}
