//! One layer of settings: every field optional, `None` where the source is silent.
//! Each source (`agent.toml`, a spec's `[limits]`, the environment, the flags) is read
//! into a layer; layers are merged with [`Combine`] and resolved over the built-in
//! defaults into the types of [`crate::settings`].

use std::path::PathBuf;

use crate::settings::{
    BuildNetwork, BuilderChoice, BundleLimits, DockerSettings, EngineSetting, Limits,
    ModelSettings, NetworkMode, PromptSettings, PublishSettings, StructuredOutput,
};

/// Merging two layers: `a.combine(b)` keeps each value `a` sets and takes `b`'s where
/// `a` is silent, so the higher layer goes on the left.
pub trait Combine {
    #[must_use]
    fn combine(self, lower: Self) -> Self;
}

/// Declares a layer struct of optional fields for a resolved struct with the same
/// field names, with its [`Combine`] and its resolution over defaults.
macro_rules! layer {
    (
        $(#[$meta:meta])*
        pub struct $layer:ident => $resolved:ident {
            $($(#[$field_meta:meta])* $field:ident: $type:ty,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct $layer {
            $($(#[$field_meta])* pub $field: Option<$type>,)*
        }

        impl Combine for $layer {
            fn combine(self, lower: Self) -> Self {
                $layer {
                    $($field: self.$field.or(lower.$field),)*
                }
            }
        }

        impl $layer {
            /// This layer's values, and `defaults`' where it is silent.
            pub fn resolve(self, defaults: $resolved) -> $resolved {
                $resolved {
                    $($field: self.$field.unwrap_or(defaults.$field),)*
                }
            }
        }
    };
}

layer! {
    /// `[model]`.
    pub struct ModelLayer => ModelSettings {
        base_url: String,
        api_key_env: String,
        name: String,
        temperature: f64,
        request_timeout_secs: u64,
        max_retries: u32,
        max_retry_after_secs: u64,
        structured_output: StructuredOutput,
        stream: bool,
        /// `Some(None)` would mean "leave it to the server" explicitly; no source says
        /// that today, so a set value is always `Some(Some(_))`.
        max_tokens: Option<u32>,
        max_concurrent_requests: u32,
        candidates: u32,
    }
}

layer! {
    /// `[docker]`.
    pub struct DockerLayer => DockerSettings {
        base_image: String,
        allowed_base_images: Vec<String>,
        build_network: BuildNetwork,
        builder: BuilderChoice,
        cache_max_mb: u64,
        engines: Vec<EngineSetting>,
        cache_from: Vec<String>,
        probe_image: String,
    }
}

layer! {
    /// `[limits]` of `agent.toml` or of a spec (which takes only some of the keys).
    pub struct LimitsLayer => Limits {
        max_iterations: u32,
        build_timeout_secs: u64,
        run_timeout_secs: u64,
        memory_mb: u64,
        cpus: f64,
        pids: i64,
        output_limit_kb: u64,
        max_total_tokens: u64,
        max_wall_secs: u64,
        network: NetworkMode,
    }
}

layer! {
    /// `[bundle]`.
    pub struct BundleLayer => BundleLimits {
        max_total_bytes: u64,
        max_files: usize,
        max_file_bytes: u64,
        max_path_bytes: usize,
    }
}

layer! {
    /// `[prompts]`.
    pub struct PromptsLayer => PromptSettings {
        system: Option<PathBuf>,
        task: Option<PathBuf>,
        repair: Option<PathBuf>,
        judge: Option<PathBuf>,
    }
}

layer! {
    /// `[publish]`.
    pub struct PublishLayer => PublishSettings {
        repository: Option<String>,
        tags: Vec<String>,
        sign: bool,
        signing_key_env: String,
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_higher_layer_wins_field_by_field() {
        let high = LimitsLayer {
            max_iterations: Some(2),
            ..LimitsLayer::default()
        };
        let low = LimitsLayer {
            max_iterations: Some(5),
            memory_mb: Some(64),
            ..LimitsLayer::default()
        };
        let limits = high.combine(low).resolve(Limits::default());
        assert_eq!(limits.max_iterations, 2);
        assert_eq!(limits.memory_mb, 64);
        assert_eq!(limits.pids, Limits::default().pids);
    }
}
