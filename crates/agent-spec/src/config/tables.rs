//! The tables of `agent.toml` whose keys stand alone, each key declared once with
//! `table!` (`config::layer`), and all of them as one layer.

use std::path::PathBuf;

use crate::config::egress::AllowEntry;
use crate::config::engines::{self, EngineEntry};
use crate::config::file::{
    prompt_file, read_allowed_images, read_build_allow, read_cache_from, read_tags,
};
use crate::config::layer::{Combine, table};
use crate::config::limits::LimitsLayer;
use crate::config::settings::{
    BuildNetwork, BuilderChoice, DEFAULT_BASE_IMAGE, DEFAULT_CACHE_MAX_MB, DEFAULT_EGRESS_IMAGE,
    DEFAULT_PROBE_IMAGE, EngineSetting, StructuredOutput,
};
use crate::spanned::Spanned;
use crate::validate::{self, any, at_least};

table! {
    /// `[model]`: the endpoint and how it is asked.
    pub struct ModelSettings, layer ModelLayer, file ModelTable {
        /// Includes `/v1`; requests go to `<base_url>/chat/completions`.
        base_url: String = "https://api.openai.com/v1".to_owned();
            Spanned<String> => text(validate::base_url),
        /// The name of the environment variable that holds the key (never the key).
        api_key_env: String = "OPENAI_API_KEY".to_owned();
            Spanned<String> => text(validate::variable_name),
        /// The model's name.
        name: String = "gpt-4o-2024-08-06".to_owned();
            Spanned<String> => text(validate::model_name),
        /// Sampling temperature, 0 to 2.
        temperature: f64 = 0.2;
            Spanned<f64> => number(validate::temperature),
        /// Seconds one request may take.
        request_timeout_secs: u64 = 180;
            Spanned<u64> => number(at_least(1)),
        /// Retries of a request that failed with 429, 5xx or a connection error.
        max_retries: u32 = 4;
            Spanned<u32> => number(any),
        /// Longest wait a `Retry-After` header may impose before a retry.
        max_retry_after_secs: u64 = 60;
            Spanned<u64> => number(any),
        /// `auto`, `json_schema`, `json_object` or `none`: how the reply's shape is asked for.
        structured_output: StructuredOutput = StructuredOutput::Auto;
            Spanned<String> => text(str::parse::<StructuredOutput>),
        /// Ask for SSE streaming (`stream = true`); default false.
        stream: bool = false;
            Spanned<bool> => number(any),
        /// `max_tokens` sent with each request; unset leaves it to the server.
        max_tokens: Option<u32> = None;
            Spanned<u32> => number(|value| at_least(1)(value).map(Some)),
        /// Requests to the endpoint in flight at once, across every spec of a run.
        max_concurrent_requests: u32 = 8;
            Spanned<u32> => number(at_least(1)),
        /// Bundles asked for in a spec's first generation, built and run side by side.
        candidates: u32 = 1;
            Spanned<u32> => number(validate::candidates),
    }
}

table! {
    /// `[docker]`: what the model builds from, and where and how builds and runs go.
    pub struct DockerSettings, layer DockerLayer, file DockerTable {
        /// What the model is told to build `FROM`.
        base_image: String = DEFAULT_BASE_IMAGE.to_owned();
            Spanned<String> => text(validate::non_empty),
        /// Empty: any `FROM` is allowed; else `FROM` must be one of these.
        allowed_base_images: Vec<String> = Vec::new();
            Spanned<Vec<Spanned<String>>> => with(read_allowed_images),
        /// `allowlist`, `default`, `none` or `host`: what `RUN` steps may reach.
        /// `allowlist`: only what `build_allow` names, through one path agent controls.
        build_network: BuildNetwork = BuildNetwork::Allowlist;
            Spanned<String> => text(str::parse::<BuildNetwork>),
        /// Under `allowlist`, what `RUN` steps may reach: ecosystems (`python`, `debian`,
        /// `ubuntu`, `alpine`, `node`, `rust`, `go`, `ruby`, `java`), `host`, `host:port`
        /// and `*.domain` entries. Unset: `python`, `debian` and the base image's ecosystem.
        build_allow: Option<Vec<String>> = None;
            Spanned<Vec<Spanned<String>>> => with(read_build_allow),
        /// `auto`, `classic` or `buildkit` (or `--builder`): which of an engine's builders builds.
        builder: BuilderChoice = BuilderChoice::Auto;
            Spanned<String> => text(str::parse::<BuilderChoice>),
        /// The most the build cache (`agent-cache/…` images) may hold, in MiB; past it the
        /// least recently used entries are removed after each spec's run. 0: no cap.
        cache_max_mb: u64 = DEFAULT_CACHE_MAX_MB;
            Spanned<u64> => number(any),
        /// Where builds and runs go (or `--engine`): addresses, or tables with `url`,
        /// `slots` and `identity`. Empty: the engine the Docker CLI would use
        /// (`DOCKER_HOST`, else the local socket).
        engines: Vec<EngineSetting> = Vec::new();
            Spanned<Vec<Spanned<EngineEntry>>> => with(|source, _, list| engines::read(source, list)),
        /// Images in a registry a build may take unchanged steps from (or `--cache-from`),
        /// pulled before the first build (missing ones are skipped).
        cache_from: Vec<String> = Vec::new();
            Spanned<Vec<Spanned<String>>> => with(read_cache_from),
        /// The image whose container sends a service's probes from inside its network
        /// namespace; it needs `nc`, `sleep` and `true` (busybox has them).
        probe_image: String = DEFAULT_PROBE_IMAGE.to_owned();
            Spanned<String> => text(validate::non_empty),
        /// The image of the build egress gate and relay (`build_network = "allowlist"`);
        /// it needs `python3`.
        egress_image: String = DEFAULT_EGRESS_IMAGE.to_owned();
            Spanned<String> => text(validate::non_empty),
    }
}

impl DockerSettings {
    /// The builder `builder` comes to for `build_network`: under `allowlist` the
    /// classic one, the only one whose steps can join the egress gate (an explicit
    /// `buildkit` is refused when the engine is reached).
    pub fn builder_for_network(&self) -> BuilderChoice {
        match (self.build_network, self.builder) {
            (BuildNetwork::Allowlist, BuilderChoice::Auto) => BuilderChoice::Classic,
            (_, choice) => choice,
        }
    }

    /// What `build_allow` (or, unset, its default for `base_image`) lets RUN steps
    /// reach under `allowlist`.
    pub fn build_allowed(&self) -> Vec<AllowEntry> {
        crate::config::egress::allowed(self.build_allow.as_deref(), &self.base_image)
    }

    /// The warning a build network open to everything the engine reaches deserves
    /// (`default`, `host`); `None` for `allowlist` and `none`.
    pub fn open_build_network_warning(&self) -> Option<String> {
        matches!(self.build_network, BuildNetwork::Default | BuildNetwork::Host).then(|| {
            format!(
                "`[docker] build_network = \"{}\"`: the model's RUN steps reach whatever the engine reaches (its host, other containers, the internet); the default `\"allowlist\"` limits them to `[docker] build_allow`",
                self.build_network.as_str()
            )
        })
    }

    /// Those hosts as a reader wants them: `pypi.org`, `host:8080`.
    pub fn build_allowed_hosts(&self) -> Vec<String> {
        crate::config::egress::describe(&self.build_allowed())
    }
}

table! {
    /// `[bundle]`: what a model's bundle may weigh.
    pub struct BundleLimits, layer BundleLayer, file BundleTable {
        /// Bytes of every file together.
        max_total_bytes: u64 = 4 * 1024 * 1024;
            Spanned<u64> => number(at_least(1)),
        /// Files in a bundle.
        max_files: usize = 64;
            Spanned<usize> => number(at_least(1)),
        /// Bytes of one file.
        max_file_bytes: u64 = 1024 * 1024;
            Spanned<u64> => number(at_least(1)),
        /// Longest file path, in bytes.
        max_path_bytes: usize = 200;
            Spanned<usize> => number(at_least(1)),
    }
}

table! {
    /// `[prompts]`: files that replace the built-in prompt templates, relative to
    /// `agent.toml`'s folder.
    pub struct PromptSettings, layer PromptsLayer, file PromptsTable {
        /// The system prompt.
        system: Option<PathBuf> = None;
            Spanned<String> => with(prompt_file),
        /// The first request of a spec.
        task: Option<PathBuf> = None;
            Spanned<String> => with(prompt_file),
        /// Each repair request.
        repair: Option<PathBuf> = None;
            Spanned<String> => with(prompt_file),
        /// The judge's request.
        judge: Option<PathBuf> = None;
            Spanned<String> => with(prompt_file),
    }
}

table! {
    /// `[publish]`: where verified images are pushed, and whether they are signed.
    pub struct PublishSettings, layer PublishLayer, file PublishTable {
        /// `host[:port]/path`: images go to `<repository>/<spec>:<12 hex of the bundle
        /// digest>`; unset: not pushed.
        repository: Option<String> = None;
            Spanned<String> => text(|value| validate::repository(value).map(Some)),
        /// Moving tags pushed beside the digest tag (e.g. `latest`).
        tags: Vec<String> = Vec::new();
            Vec<Spanned<String>> => with(read_tags),
        /// Each pushed image gets signed attestations (or `--sign`); the key is required.
        sign: bool = false;
            Spanned<bool> => number(Ok::<bool, String>),
        /// The variable holding the signing key's PEM (PKCS#8, ECDSA P-256).
        signing_key_env: String = DEFAULT_SIGNING_KEY_ENV.to_owned();
            Spanned<String> => text(validate::variable_name),
    }
}

/// The variable holding the signing key unless `[publish] signing_key_env` names another.
pub const DEFAULT_SIGNING_KEY_ENV: &str = "AGENT_SIGNING_KEY";

/// Every table of `agent.toml` as one layer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SettingsLayer {
    pub model: ModelLayer,
    pub docker: DockerLayer,
    pub limits: LimitsLayer,
    pub bundle: BundleLayer,
    pub prompts: PromptsLayer,
    pub publish: PublishLayer,
}

impl Combine for SettingsLayer {
    fn combine(self, lower: Self) -> Self {
        SettingsLayer {
            model: self.model.combine(lower.model),
            docker: self.docker.combine(lower.docker),
            limits: self.limits.combine(lower.limits),
            bundle: self.bundle.combine(lower.bundle),
            prompts: self.prompts.combine(lower.prompts),
            publish: self.publish.combine(lower.publish),
        }
    }
}
