//! `[[case]]`: several runs of one image, each with its own input and checks, and the
//! default case a spec without cases runs.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use toml::Spanned;

use crate::check::{Check, CheckResult, FILE_GROUP, IMAGE_GROUP, Observed};
use crate::errors::SpecError;
use crate::spec::Spec;
use crate::spec::checks::{RawCheck, build_checks};
use crate::spec::run::{RunSpec, build_env, build_list};
use crate::validate::Source;

/// The name of the one case a spec without `[[case]]` runs, from `[run]`.
pub const DEFAULT_CASE: &str = "run";

/// One run of the image: what the container gets and what must hold of it.
#[derive(Debug, Clone)]
pub struct Case {
    /// Unique within the spec; the group of its results.
    pub name: String,
    pub stdin: Option<String>,
    /// Appended to the image's command (after `[run].args`).
    pub args: Vec<String>,
    /// `[run].env` with the case's own set over it.
    pub env: BTreeMap<String, String>,
    /// Replaces the image's ENTRYPOINT when set.
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's CMD when set.
    pub command: Option<Vec<String>>,
    /// `None`: the spec's run timeout.
    pub timeout_secs: Option<u64>,
    /// The case's own checks, then the spec's top-level ones.
    pub checks: Vec<Check>,
}

impl Case {
    /// Every check of the case on what one run did, grouped under the case's name.
    pub fn evaluate(&self, observed: &Observed<'_>) -> Vec<CheckResult> {
        self.checks
            .iter()
            .map(|check| check.evaluate(&self.name, observed))
            .collect()
    }
}

impl Spec {
    /// What the loop runs: the `[[case]]`s as written (each already holding `[run]`'s
    /// settings and the top-level checks), else, when the spec has `[[check]]`s, one
    /// default case from `[run]` named [`DEFAULT_CASE`]; else none.
    pub fn cases_to_run(&self) -> Vec<Case> {
        if !self.cases.is_empty() {
            return self.cases.clone();
        }
        if self.checks.is_empty() {
            return Vec::new();
        }
        vec![Case {
            name: DEFAULT_CASE.to_owned(),
            stdin: self.run.stdin.clone(),
            args: self.run.args.clone(),
            env: self.run.env.clone(),
            entrypoint: None,
            command: None,
            timeout_secs: None,
            checks: self.checks.clone(),
        }]
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCase {
    name: Option<Spanned<String>>,
    stdin: Option<String>,
    #[serde(default)]
    args: Vec<Spanned<String>>,
    #[serde(default)]
    env: BTreeMap<Spanned<String>, Spanned<String>>,
    entrypoint: Option<Vec<Spanned<String>>>,
    command: Option<Vec<Spanned<String>>>,
    timeout_secs: Option<Spanned<u64>>,
    #[serde(default)]
    check: Vec<Spanned<RawCheck>>,
}

impl RawCase {
    pub(crate) fn has_checks(&self) -> bool {
        !self.check.is_empty()
    }
}

/// Groups of results that are not cases.
const RESERVED: [&str; 2] = [IMAGE_GROUP, FILE_GROUP];

/// Longest case name: it names results, JUnit classes and report rows.
const CASE_NAME_LIMIT: usize = 128;

/// The `[[case]]` tables, each merged with `[run]` and followed by the top-level
/// `checks`. `judged`: the model judges the output, so a case may have no check.
pub(crate) fn build_cases(
    source: &Source<'_>,
    raw: &[Spanned<RawCase>],
    run: &RunSpec,
    checks: &[Check],
    judged: bool,
) -> Result<Vec<Case>, SpecError> {
    let mut names = HashSet::new();
    let mut cases = Vec::with_capacity(raw.len());
    for table in raw {
        let case = table.get_ref();
        let name = case_name(source, table, &mut names)?;
        let mut own = build_checks(source, &case.check, checks)?;
        if own.is_empty() && checks.is_empty() && !judged {
            return Err(source.invalid(
                table.span(),
                format!(
                    "case `{name}` has no check: add a [[case.check]] after it, a top-level \
                     [[check]], or `judge = true`"
                ),
            ));
        }
        own.extend(checks.iter().cloned());
        let mut env = run.env.clone();
        env.extend(build_env(source, &case.env)?);
        let mut args = run.args.clone();
        args.extend(build_list(source, "args", &case.args)?);
        let list = |key, value: &Option<Vec<Spanned<String>>>| {
            value
                .as_ref()
                .map(|items| build_list(source, key, items))
                .transpose()
        };
        let timeout_secs = source.number("timeout_secs", case.timeout_secs.clone(), |secs| {
            if secs == 0 {
                Err("must be at least 1".to_owned())
            } else {
                Ok(secs)
            }
        })?;
        cases.push(Case {
            name,
            stdin: case.stdin.clone().or_else(|| run.stdin.clone()),
            args,
            env,
            entrypoint: list("entrypoint", &case.entrypoint)?,
            command: list("command", &case.command)?,
            timeout_secs,
            checks: own,
        });
    }
    Ok(cases)
}

/// A case's `name`: present, a few visible words, unique within the spec.
fn case_name(
    source: &Source<'_>,
    table: &Spanned<RawCase>,
    names: &mut HashSet<String>,
) -> Result<String, SpecError> {
    let Some(name) = &table.get_ref().name else {
        return Err(source.invalid(
            table.span(),
            "[[case]] has no `name`; give each case a short unique name".to_owned(),
        ));
    };
    let text = name.get_ref();
    let problem = if text.trim().is_empty() {
        Some("is empty; give the case a few words".to_owned())
    } else if text.chars().any(char::is_control) {
        Some("contains a control character".to_owned())
    } else if text.len() > CASE_NAME_LIMIT {
        Some(format!("is longer than {CASE_NAME_LIMIT} characters"))
    } else if RESERVED.contains(&text.as_str()) {
        Some("is the group of other checks' results; choose another name".to_owned())
    } else if !names.insert(text.clone()) {
        Some("is already used by an earlier [[case]]; names must be unique".to_owned())
    } else {
        None
    };
    match problem {
        Some(problem) => Err(source.invalid(
            name.span(),
            format!("case name `{}` {problem}", text.escape_debug()),
        )),
        None => Ok(text.clone()),
    }
}
