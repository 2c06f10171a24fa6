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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildNetwork {
    Default,
    None,
    Host,
}

impl std::str::FromStr for BuildNetwork {
    type Err = String;

    fn from_str(value: &str) -> Result<BuildNetwork, String> {
        match value {
            "default" => Ok(BuildNetwork::Default),
            "none" => Ok(BuildNetwork::None),
            "host" => Ok(BuildNetwork::Host),
            _ => Err(format!(
                "unknown network `{value}`; expected `default`, `none` or `host`"
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

/// What the model is told to build `FROM` unless `[docker] base_image` says otherwise.
pub(crate) const DEFAULT_BASE_IMAGE: &str = "python:3.10-slim";
/// The probe image unless `[docker] probe_image` says otherwise: small, and built
/// locally by `scripts/base-images`.
pub(crate) const DEFAULT_PROBE_IMAGE: &str = "agent-base/busybox:1";
/// The build cache's default cap: room for the dependency layers of many specs.
pub(crate) const DEFAULT_CACHE_MAX_MB: u64 = 4096;
