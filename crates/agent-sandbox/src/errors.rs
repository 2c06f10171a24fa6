//! Errors of engine operations: one variant per operation, the bollard error as the
//! source. A failed build or a program that crashes is not an error but an outcome.

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot connect to the Docker engine at `{host}`")]
    Connect {
        host: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("cannot make the build context")]
    Context(#[source] std::io::Error),
    #[error(
        "{product} at `{host}` (API {api_version}) cannot run BuildKit builds; hint: set `[docker] builder = \"auto\"` or `\"classic\"`"
    )]
    NoBuildKit {
        host: String,
        product: String,
        api_version: String,
    },
    #[error("the build egress gate could not start: {0}")]
    Egress(String),
    #[error(
        "{product} at `{host}` cannot enforce `build_network = \"allowlist\"`: its build API runs RUN steps on the host's network whatever network is asked"
    )]
    EgressUnenforceable { host: String, product: String },
    #[error(
        "BuildKit through the engine API cannot join the egress gate (it takes only the networks `default`, `host` and `none`)"
    )]
    EgressNeedsClassic,
    #[error("the engine failed during the build")]
    Build(#[source] bollard::errors::Error),
    #[error("cannot create the container for `{image}`")]
    CreateContainer {
        image: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("the engine failed while running container `{container}`")]
    Run {
        container: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("cannot read `{path}` from container `{container}`")]
    ReadFile {
        container: String,
        path: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("cannot commit container `{container}` as an image")]
    Commit {
        container: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("cannot tag image `{image}` as `{tag}`")]
    Tag {
        image: String,
        tag: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("cannot inspect image `{image}`")]
    InspectImage {
        image: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("cannot label image `{image}`: {reason}")]
    Relabel { image: String, reason: String },
    #[error("cannot label image `{image}` in any way the engine accepts")]
    Seal {
        image: String,
        #[source]
        source: Box<SandboxError>,
    },
    #[error("the engine's commit of `{image}` changed its config: {difference}")]
    SealChangedConfig { image: String, difference: String },
    #[error("the label build on `{image}` failed: {error}")]
    LabelBuild { image: String, error: String },
    #[error("{role} `{image}` is not on the engine and cannot be pulled: {reason}")]
    Pull {
        role: crate::outcome::ImageRole,
        image: String,
        reason: String,
    },
    #[error("cannot pull `{reference}`")]
    PullImage {
        reference: String,
        refusal: crate::outcome::PushRefusal,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("cannot list what runs left on the engine")]
    List(#[source] bollard::errors::Error),
    #[error("cannot remove `{object}`")]
    Remove {
        object: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("cannot push `{reference}`")]
    Push {
        reference: String,
        refusal: crate::outcome::PushRefusal,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("cannot export image `{image}` from the engine")]
    Export {
        image: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("cannot copy image `{image}` to the engine at `{target}`")]
    CopyImage {
        image: String,
        target: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("the engine at `{host}` stopped answering during a build")]
    EngineLost { host: String },
    #[error("no engine is left to take the work: {lost}")]
    NoEngine { lost: String },
    #[error("cannot write the image file `{path}`")]
    WriteImage {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read registry credentials from `{path}`: {reason}")]
    DockerConfig {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("credential helper `{helper}` gave no credentials for `{server}`: {reason}")]
    CredentialHelper {
        helper: String,
        server: String,
        reason: String,
    },
}

/// Why the Docker CLI's `config.json` could not be read; the caller names the file.
#[derive(Debug, thiserror::Error)]
pub enum DockerConfigError {
    #[error(transparent)]
    Read(std::io::Error),
    /// serde_json's message names the line and column, never the text around it.
    #[error(transparent)]
    Parse(serde_json::Error),
}
