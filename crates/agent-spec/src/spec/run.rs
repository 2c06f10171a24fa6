//! `[run]`: what the container gets besides its image; its env and args rules are
//! shared by every `[[case]]`.

use std::collections::BTreeMap;

use crate::spanned::Spanned;
use serde::Deserialize;

use crate::errors::SpecError;
use crate::validate::{self, Source};

/// A spec's `[run]`: what the container gets besides its image.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RunSpec {
    pub stdin: Option<String>,
    pub env: BTreeMap<String, String>,
    pub args: Vec<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Run")]
pub(crate) struct RawRun {
    stdin: Option<String>,
    #[serde(default)]
    env: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    args: Vec<Spanned<String>>,
}

pub(crate) fn build_run(source: &Source<'_>, raw: &RawRun) -> Result<RunSpec, SpecError> {
    Ok(RunSpec {
        stdin: raw.stdin.clone(),
        env: build_env(source, &raw.env)?,
        args: build_list(source, "args", &raw.args)?,
    })
}

/// An `env` table: names a process can have, values without NUL.
pub(crate) fn build_env(
    source: &Source<'_>,
    raw: &BTreeMap<Spanned<String>, Spanned<String>>,
) -> Result<BTreeMap<String, String>, SpecError> {
    let mut env = BTreeMap::new();
    for (name, value) in raw {
        let text = name.get_ref();
        if !validate::is_variable_name(text) {
            return Err(source.invalid(
                name.span(),
                format!(
                    "environment variable name `{}` is not allowed: it must be non-empty, \
                     without `=` or NUL",
                    text.escape_debug()
                ),
            ));
        }
        if value.get_ref().contains('\0') {
            return Err(source.invalid(
                value.span(),
                format!("the value of environment variable `{text}` contains a NUL character"),
            ));
        }
        env.insert(text.clone(), value.get_ref().clone());
    }
    Ok(env)
}

/// A list of arguments (`args`, `entrypoint`, `command`): no NUL, which no process
/// argument can hold.
pub(crate) fn build_list(
    source: &Source<'_>,
    key: &str,
    raw: &[Spanned<String>],
) -> Result<Vec<String>, SpecError> {
    let mut list = Vec::with_capacity(raw.len());
    for item in raw {
        if item.get_ref().contains('\0') {
            return Err(source.invalid(
                item.span(),
                format!("an argument in `{key}` contains a NUL character"),
            ));
        }
        list.push(item.get_ref().clone());
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use crate::spec::testing::{MINIMAL, invalid};

    #[test]
    fn bad_environment_names_in_run_are_refused() {
        let (line, column, message) =
            invalid(&format!("{MINIMAL}[run]\nenv = {{ \"A=B\" = \"x\" }}\n"));
        assert_eq!((line, column), (4, 9));
        assert!(
            message.starts_with("environment variable name `A=B` is not allowed"),
            "{message}"
        );
        let (_, _, message) = invalid(&format!("{MINIMAL}[run]\nargs = [\"a\\u0000b\"]\n"));
        assert!(message.contains("NUL"), "{message}");
    }
}
