//! How a failing command ends: `error: …`, each cause as `  caused by: …`, and a
//! `hint:` where the user can act; with the exit code that goes with it.

use agent_loop::LoopError;
use agent_model::ModelError;
use agent_sandbox::{ImageRole, SandboxError};

use crate::exit;

#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
    pub hint: Option<String>,
}

impl Failure {
    pub fn usage(error: impl Into<anyhow::Error>) -> Failure {
        Failure {
            code: exit::USAGE,
            error: error.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Failure {
        self.hint = Some(hint.into());
        self
    }

    pub fn engine(error: SandboxError) -> Failure {
        let hint = engine_hint(&error);
        Failure {
            code: exit::INFRASTRUCTURE,
            error: error.into(),
            hint,
        }
    }

    pub fn model(error: ModelError, api_key_env: &str) -> Failure {
        let hint = model_hint(&error, api_key_env);
        Failure {
            code: exit::INFRASTRUCTURE,
            error: error.into(),
            hint,
        }
    }

    /// A failure of the machinery around the loop: exit 3.
    pub fn infrastructure(error: anyhow::Error) -> Failure {
        Failure {
            code: exit::INFRASTRUCTURE,
            error,
            hint: None,
        }
    }

    /// A push or save of a verified image that failed, or credentials that cannot be
    /// read: exit 3 (exit 2 for a broken `config.json`, found before any model call).
    pub fn publish(error: SandboxError) -> Failure {
        let hint = publish_hint(&error);
        let code = match error {
            SandboxError::DockerConfig { .. } => exit::USAGE,
            _ => exit::INFRASTRUCTURE,
        };
        Failure {
            code,
            error: error.into(),
            hint,
        }
    }

    pub fn from_loop(error: LoopError, api_key_env: &str) -> Failure {
        let hint = match &error {
            LoopError::BaseUnavailable { .. } => {
                Some("run `agent run --refresh-base` to re-resolve it".to_owned())
            }
            LoopError::BaseRefresh { image, .. } => Some(format!(
                "check that `docker pull {image}` works here (the registry answers, the credentials in config.json)"
            )),
            _ => None,
        };
        match error {
            LoopError::Model(error) => Failure::model(error, api_key_env),
            LoopError::Engine(error) => Failure::engine(error),
            other => Failure {
                code: exit::INFRASTRUCTURE,
                error: other.into(),
                hint,
            },
        }
    }

    pub fn print(&self) {
        eprintln!("{}", self.render());
    }

    /// The error and its causes on one line, for `report.json`.
    pub fn one_line(&self) -> String {
        let causes: Vec<String> = self.error.chain().map(ToString::to_string).collect();
        causes.join(": ")
    }

    pub fn render(&self) -> String {
        let mut text = format!("error: {}", self.error);
        for cause in self.error.chain().skip(1) {
            text.push_str(&format!("\n  caused by: {cause}"));
        }
        if let Some(hint) = &self.hint {
            text.push_str(&format!("\nhint: {hint}"));
        }
        text
    }
}

/// What to do about a `config.json` that cannot be read, wherever it is read.
pub(crate) const DOCKER_CONFIG_HINT: &str =
    "fix the file (it is the Docker CLI's config.json), or point DOCKER_CONFIG at another folder";

/// What to do when `server` refused the credentials `config.json` led to.
fn login_hint(server: &str) -> String {
    format!(
        "`docker login {server}`, or fix its entry (or credential helper) in config.json; DOCKER_CONFIG selects another folder"
    )
}

pub fn engine_hint(error: &SandboxError) -> Option<String> {
    match error {
        SandboxError::Connect { host, .. } if host.starts_with("ssh://") => Some(format!(
            "check that `ssh {host} docker info` works without a prompt: the key in ssh-agent, ~/.ssh/config or the engine's `identity`, the host in known_hosts, `docker` on the remote PATH and allowed to use the engine"
        )),
        SandboxError::Connect { .. } => Some(
            "is the Docker engine running? try `docker info` (DOCKER_HOST selects another engine)"
                .to_string(),
        ),
        SandboxError::NoEngine { .. } => Some(
            "every engine was lost during the run: check `agent doctor` and the engines' logs"
                .to_string(),
        ),
        SandboxError::Egress(_) => Some(
            "`[docker] egress_image` must have `python3`, or set `[docker] build_network` to another mode"
                .to_string(),
        ),
        SandboxError::EgressUnenforceable { .. } => Some(
            "use a Docker engine, or set `[docker] build_network = \"default\"` to build there without the allow-list"
                .to_string(),
        ),
        SandboxError::EgressNeedsClassic => Some(
            "set `[docker] builder = \"auto\"` or `\"classic\"` with `build_network = \"allowlist\"`"
                .to_string(),
        ),
        SandboxError::PullImage { reference, .. } => {
            let server = agent_sandbox::registry_server(reference);
            Some(format!(
                "the registry `{server}` refused the credentials for the lock's published image: {}",
                login_hint(&server)
            ))
        }
        SandboxError::Pull {
            role: ImageRole::Probe,
            ..
        } => Some(
            "build the local images with `scripts/base-images` (it makes the busybox probe image), `docker pull` it where a registry is reachable, or `docker load` it; `[docker] probe_image` in agent.toml names the image that sends a service's probes"
                .to_string(),
        ),
        SandboxError::Pull {
            role: ImageRole::Egress,
            ..
        } => Some(
            "build the local images with `scripts/base-images`, `docker pull` it where a registry is reachable, or `docker load` it; `[docker] egress_image` in agent.toml names the image (any with python3) that enforces the build's egress allow-list"
                .to_string(),
        ),
        SandboxError::Pull { .. } => Some(
            "build the local base images with `scripts/base-images`, `docker pull` the image where a registry is reachable, or `docker load` it; `[docker] base_image` in agent.toml names the image the model builds FROM"
                .to_string(),
        ),
        _ => Some(
            "the Docker engine failed mid-run: check `docker info` and the engine's logs"
                .to_string(),
        ),
    }
}

pub fn model_hint(error: &ModelError, api_key_env: &str) -> Option<String> {
    if let Some(setting) = error.setting_to_change() {
        return Some(format!(
            "the server refused the request itself, so it was not retried: change {setting}"
        ));
    }
    match error {
        ModelError::Unreachable { .. } => Some(
            "is the model server running? check `--base-url`, OPENAI_BASE_URL or `[model] base_url` in agent.toml"
                .to_string(),
        ),
        ModelError::Auth { .. } => Some(format!(
            "check the API key in the environment variable `{api_key_env}` (`[model] api_key_env` names it)"
        )),
        ModelError::Timeout { .. } => Some(
            "the server is slow or stalled: raise `[model] request_timeout_secs` or check the server".to_string(),
        ),
        ModelError::Status { status: 400 | 404 | 422, .. } => Some(
            "the server rejected the request: check `--model`, and try `[model] structured_output = \"json_object\"` or `\"none\"` for servers without JSON-schema support"
                .to_string(),
        ),
        ModelError::ReplayExhausted { .. } => Some(
            "the transcript ran out: it replays the calls of the run that recorded it, so replay it with the same spec and limits"
                .to_string(),
        ),
        _ => None,
    }
}

/// What to do about a failed push or save; the registry is named, never a credential.
pub fn publish_hint(error: &SandboxError) -> Option<String> {
    use agent_sandbox::PushRefusal;
    let hint = match error {
        SandboxError::Push {
            reference, refusal, ..
        } => {
            let server = agent_sandbox::registry_server(reference);
            match refusal {
                PushRefusal::AuthRefused => format!(
                    "the registry `{server}` refused the credentials: {}",
                    login_hint(&server)
                ),
                PushRefusal::Unreachable => format!(
                    "is the registry `{server}` running and reachable from the Docker engine? check the host and port in `--push` / `[publish] repository` (the engine speaks HTTPS except to 127.0.0.0/8 and its `insecure-registries`)"
                ),
                PushRefusal::NameRejected => format!(
                    "the registry `{server}` rejected the name `{reference}`: check `--push` / `[publish] repository` and that the repository exists and accepts pushes"
                ),
                PushRefusal::TimedOut => format!(
                    "the push to `{server}` did not finish in time: check the network between the engine and the registry"
                ),
                PushRefusal::Other => format!(
                    "the push to `{server}` failed: see the engine's message above; the verified image stays on the engine, `docker push` it once the cause is fixed"
                ),
            }
        }
        SandboxError::Tag { .. } => {
            "the engine refused the name: check `--push` / `[publish] repository`".to_string()
        }
        SandboxError::Export { .. } | SandboxError::WriteImage { .. } => {
            "check that the `--save` folder is writable and has room for the image; the verified image stays on the engine".to_string()
        }
        SandboxError::DockerConfig { .. } => DOCKER_CONFIG_HINT.to_string(),
        SandboxError::CredentialHelper { helper, server, .. } => format!(
            "check that `{helper}` is on PATH and answers `echo {server} | {helper} get`, or remove it from config.json's `credsStore` / `credHelpers`"
        ),
        other => return engine_hint(other),
    };
    Some(hint)
}
