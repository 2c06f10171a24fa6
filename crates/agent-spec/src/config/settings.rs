//! The resolved settings a spec runs with: every value decided, nothing optional
//! that a layer could still fill in. The layers (`config::layer`) produce them; the
//! `FromStr` of each choice is how every source spells it.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StructuredOutput {
    /// Chosen per server: the strictest mode it supports.
    Auto,
    JsonSchema,
    JsonObject,
    None,
}

impl std::str::FromStr for StructuredOutput {
    type Err = String;

    /// `auto` is accepted but not yet named in the hint: until the model client chooses
    /// a mode per server, it behaves as `json_schema`.
    fn from_str(value: &str) -> Result<StructuredOutput, String> {
        match value {
            "auto" => Ok(StructuredOutput::Auto),
            "json_schema" => Ok(StructuredOutput::JsonSchema),
            "json_object" => Ok(StructuredOutput::JsonObject),
            "none" => Ok(StructuredOutput::None),
            _ => Err(format!(
                "unknown mode `{value}`; expected `auto`, `json_schema`, `json_object` or `none`"
            )),
        }
    }
}

/// One engine of `[docker] engines`: its address, how many builds and runs it
/// takes at once (`None`: its CPU count), and for an `ssh://` engine the private key
/// to log in with (`None`: what `ssh` itself would use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSetting {
    pub url: String,
    pub slots: Option<usize>,
    pub identity: Option<String>,
}

/// `[docker] builder`: which builder an engine's builds go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuilderChoice {
    /// Per engine, the builder that does less work there (BuildKit where the engine
    /// runs it, else the classic builder).
    Auto,
    Classic,
    /// BuildKit; an engine that cannot run it is an error.
    BuildKit,
}

impl BuilderChoice {
    /// As `[docker] builder` writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            BuilderChoice::Auto => "auto",
            BuilderChoice::Classic => "classic",
            BuilderChoice::BuildKit => "buildkit",
        }
    }
}

impl std::str::FromStr for BuilderChoice {
    type Err = String;

    /// `auto`, `classic` or `buildkit`, as `[docker] builder` and `--builder` take it.
    fn from_str(value: &str) -> Result<BuilderChoice, String> {
        match value {
            "auto" => Ok(BuilderChoice::Auto),
            "classic" => Ok(BuilderChoice::Classic),
            "buildkit" => Ok(BuilderChoice::BuildKit),
            _ => Err(format!(
                "unknown builder `{value}`; expected `auto`, `classic` or `buildkit`"
            )),
        }
    }
}

/// `[docker] build_network`: what a build's `RUN` steps may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildNetwork {
    /// Only what `[docker] build_allow` names, through the egress gate.
    Allowlist,
    /// The engine's default network: anything the engine reaches.
    Default,
    None,
    Host,
}

impl BuildNetwork {
    /// As `[docker] build_network` writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            BuildNetwork::Allowlist => "allowlist",
            BuildNetwork::Default => "default",
            BuildNetwork::None => "none",
            BuildNetwork::Host => "host",
        }
    }
}

impl std::str::FromStr for BuildNetwork {
    type Err = String;

    fn from_str(value: &str) -> Result<BuildNetwork, String> {
        match value {
            "allowlist" => Ok(BuildNetwork::Allowlist),
            "default" => Ok(BuildNetwork::Default),
            "none" => Ok(BuildNetwork::None),
            "host" => Ok(BuildNetwork::Host),
            _ => Err(format!(
                "unknown network `{value}`; expected `allowlist`, `default`, `none` or `host`"
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    None,
    Bridge,
}

impl std::str::FromStr for NetworkMode {
    type Err = String;

    fn from_str(value: &str) -> Result<NetworkMode, String> {
        match value {
            "none" => Ok(NetworkMode::None),
            "bridge" => Ok(NetworkMode::Bridge),
            _ => Err(format!(
                "unknown network `{value}`; expected `none` or `bridge`"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_iterations: u32,
    pub build_timeout_secs: u64,
    pub run_timeout_secs: u64,
    pub memory_mb: u64,
    pub cpus: f64,
    pub pids: i64,
    /// Per stream.
    pub output_limit_kb: u64,
    /// 0: no token budget.
    pub max_total_tokens: u64,
    /// Wall-clock budget for one spec's whole run; 0: none.
    pub max_wall_secs: u64,
    /// The run's network (spec `[limits] network`); default none.
    pub network: NetworkMode,
}

/// What the model is told to build `FROM` unless `[docker] base_image` says otherwise.
pub(crate) const DEFAULT_BASE_IMAGE: &str = "python:3.10-slim";
/// The probe image unless `[docker] probe_image` says otherwise: small, and built
/// locally by `scripts/base-images`.
pub(crate) const DEFAULT_PROBE_IMAGE: &str = "agent-base/busybox:1";
/// The image of the build egress gate and relay unless `[docker] egress_image` says
/// otherwise: any image with `python3` serves, and this one is there wherever the
/// default base image is.
pub(crate) const DEFAULT_EGRESS_IMAGE: &str = DEFAULT_BASE_IMAGE;
/// The build cache's default cap: room for the dependency layers of many specs.
pub(crate) const DEFAULT_CACHE_MAX_MB: u64 = 4096;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_iterations: 8,
            build_timeout_secs: 600,
            run_timeout_secs: 60,
            memory_mb: 1024,
            cpus: 1.0,
            pids: 256,
            output_limit_kb: 1024,
            max_total_tokens: 0,
            max_wall_secs: 0,
            network: NetworkMode::None,
        }
    }
}
