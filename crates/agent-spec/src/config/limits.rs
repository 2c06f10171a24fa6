//! `[limits]`, which `agent.toml` and a spec both have (a spec takes only some of
//! its keys): the table as written, and its checks into a [`LimitsLayer`].

use crate::spanned::Spanned;
use serde::Deserialize;

use crate::config::layer::LimitsLayer;
use crate::config::settings::NetworkMode;
use crate::validate::{Invalid, Source, any, at_least, cpus};

/// The engine refuses a memory limit below 6 MB.
pub(crate) const MINIMUM_MEMORY_MB: u64 = 6;

/// `[limits]` as written, in `agent.toml` or (a subset of the keys) in a spec.
#[derive(Deserialize, schemars::JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsTable {
    pub max_iterations: Option<Spanned<u32>>,
    pub build_timeout_secs: Option<Spanned<u64>>,
    pub run_timeout_secs: Option<Spanned<u64>>,
    pub memory_mb: Option<Spanned<u64>>,
    pub cpus: Option<Spanned<f64>>,
    pub pids: Option<Spanned<i64>>,
    pub output_limit_kb: Option<Spanned<u64>>,
    pub max_total_tokens: Option<Spanned<u64>>,
    pub max_wall_secs: Option<Spanned<u64>>,
    pub network: Option<Spanned<String>>,
}

/// Whose `[limits]` is read: a spec's messages say a little more about memory and
/// leave the key off an unknown network.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum LimitsOf {
    Config,
    Spec,
}

/// Checks a `[limits]` table into a layer, pointing any problem at its value.
pub(crate) fn read<E: Invalid>(
    source: &Source<'_>,
    table: LimitsTable,
    of: LimitsOf,
) -> Result<LimitsLayer, E> {
    let memory_note = match of {
        LimitsOf::Config => "",
        LimitsOf::Spec => " (the engine refuses less)",
    };
    let network = match of {
        LimitsOf::Config => source.text("network", table.network, str::parse::<NetworkMode>)?,
        LimitsOf::Spec => source.value(
            table.network,
            |value| value.parse::<NetworkMode>(),
            |problem| problem,
        )?,
    };
    Ok(LimitsLayer {
        max_iterations: source.number("max_iterations", table.max_iterations, at_least(1))?,
        build_timeout_secs: source.number(
            "build_timeout_secs",
            table.build_timeout_secs,
            at_least(1),
        )?,
        run_timeout_secs: source.number("run_timeout_secs", table.run_timeout_secs, at_least(1))?,
        memory_mb: source.value(table.memory_mb, at_least(MINIMUM_MEMORY_MB), |problem| {
            format!("`memory_mb` {problem}{memory_note}")
        })?,
        cpus: source.number("cpus", table.cpus, cpus)?,
        pids: source.number("pids", table.pids, at_least(1))?,
        output_limit_kb: source.number("output_limit_kb", table.output_limit_kb, at_least(1))?,
        max_total_tokens: source.number("max_total_tokens", table.max_total_tokens, any)?,
        max_wall_secs: source.number("max_wall_secs", table.max_wall_secs, any)?,
        network,
    })
}
