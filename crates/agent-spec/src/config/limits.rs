//! `[limits]`, which `agent.toml` and a spec both have (a spec takes only some of
//! its keys), each key declared once: its name, resolved type, default, how the
//! file writes it and how it is checked. From that one declaration `limits_table!`
//! makes the resolved [`Limits`] and their defaults, the [`LimitsLayer`] with its
//! merge, `agent.toml`'s table and the spec's table (both with spans, and both the
//! source of their JSON Schemas), and the reading of each into the layer.

use crate::config::settings::NetworkMode;
use crate::errors::SpecError;
use crate::spanned::Spanned;
use crate::validate::{Source, any, at_least, cpus};

/// The engine refuses a memory limit below 6 MB.
const MINIMUM_MEMORY_MB: u64 = 6;

/// What a key of `[limits]` is in a spec: not one (`[]`), read as in `agent.toml`
/// (`[spec]`), or read its own way (`[spec reading]`).
macro_rules! in_spec {
    ([] $as_in_config:expr) => {
        None
    };
    ([spec] $as_in_config:expr) => {
        $as_in_config?
    };
    ([spec $own:expr] $as_in_config:expr) => {
        $own?
    };
}

/// `table!` (`config::layer`), and the table a spec has as well: a key that a spec may
/// set says `spec`, with its own reading after it when a spec's problem is worded
/// otherwise (`$how` is a method of [`Source`], as in `table!`); the others are
/// refused in a spec as unknown keys. A key's docs go on the resolved struct and the
/// layer; the tables as written carry none, so the schemas describe only the tables.
macro_rules! limits_table {
    (
        $(#[$meta:meta])*
        pub struct $resolved:ident, layer $layer:ident,
        $(#[$file_meta:meta])*
        file $file:ident, spec $spec:ident named $spec_name:literal {
            $(
                $(#[$field_meta:meta])*
                $field:ident: $type:ty = $default:expr;
                    $raw:ty => $how:ident($check:expr)
                    $(, $in_spec:ident $($spec_how:ident($spec_check:expr))?)?;
            )*
        }
    ) => {
        $crate::config::layer::table! {
            @ [$(#[$meta])*] [$(#[$file_meta])*] $resolved, $layer, $file {
                $([$(#[$field_meta])*] [] $field: $type = $default; $raw => $how($check),)*
            }
        }

        // Only the keys marked `spec`: the marker stands in an attribute that never
        // applies, which is what lets it choose the field.
        #[derive(serde::Deserialize, schemars::JsonSchema)]
        #[serde(deny_unknown_fields)]
        #[schemars(rename = $spec_name)]
        pub(crate) struct $spec {
            $($(#[cfg_attr(any(), $in_spec)] pub(crate) $field: Option<$raw>,)?)*
        }

        impl $spec {
            /// Every value checked, its problem pointing at it; the keys a spec
            /// cannot set stay silent.
            pub(crate) fn read(self, source: &Source<'_>) -> Result<$layer, SpecError> {
                Ok($layer {
                    $($field: in_spec!(
                        [$($in_spec $(source.$spec_how(stringify!($field), self.$field, $spec_check))?)?]
                        source.$how(stringify!($field), self.$field, $check)
                    ),)*
                })
            }
        }
    };
}

limits_table! {
    /// `[limits]` of `agent.toml` or of a spec (which takes only some of the keys).
    pub struct Limits, layer LimitsLayer,
    /// `[limits]` as written, in `agent.toml` or (a subset of the keys) in a spec.
    file LimitsTable, spec SpecLimitsTable named "Limits" {
        max_iterations: u32 = 8;
            Spanned<u32> => number(at_least(1)), spec;
        build_timeout_secs: u64 = 600;
            Spanned<u64> => number(at_least(1)), spec;
        run_timeout_secs: u64 = 60;
            Spanned<u64> => number(at_least(1)), spec;
        memory_mb: u64 = 1024;
            Spanned<u64> => number(at_least(MINIMUM_MEMORY_MB)), spec with(spec_memory);
        cpus: f64 = 1.0;
            Spanned<f64> => number(cpus), spec;
        pids: i64 = 256;
            Spanned<i64> => number(at_least(1));
        /// Per stream.
        output_limit_kb: u64 = 1024;
            Spanned<u64> => number(at_least(1));
        /// 0: no token budget.
        max_total_tokens: u64 = 0;
            Spanned<u64> => number(any);
        /// Wall-clock budget for one spec's whole run; 0: none.
        max_wall_secs: u64 = 0;
            Spanned<u64> => number(any);
        /// The run's network (spec `[limits] network`); default none.
        network: NetworkMode = NetworkMode::None;
            Spanned<String> => text(str::parse::<NetworkMode>), spec with(spec_network);
    }
}

/// A spec's `memory_mb`: its problem also says why.
fn spec_memory(source: &Source<'_>, key: &str, value: Spanned<u64>) -> Result<u64, SpecError> {
    let span = value.span();
    at_least(MINIMUM_MEMORY_MB)(value.into_inner()).map_err(|problem| {
        source.invalid(span, format!("`{key}` {problem} (the engine refuses less)"))
    })
}

/// A spec's `network`: its problem alone, which names the network.
fn spec_network(
    source: &Source<'_>,
    _key: &str,
    value: Spanned<String>,
) -> Result<NetworkMode, SpecError> {
    value
        .get_ref()
        .parse::<NetworkMode>()
        .map_err(|problem| source.invalid(value.span(), problem))
}
