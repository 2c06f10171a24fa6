//! `metadataTest`: the image's configuration, one check per field that is set.

use regex::Regex;

use crate::check::{CheckResult, ImageFacts};

/// The `metadataTest` of one file.
#[derive(Debug, Clone)]
pub struct MetadataTest {
    pub(crate) group: String,
    pub(crate) env: Vec<(String, ValueMatcher)>,
    pub(crate) unbound_env: Vec<String>,
    pub(crate) labels: Vec<(String, ValueMatcher)>,
    pub(crate) exposed_ports: Vec<String>,
    pub(crate) unexposed_ports: Vec<String>,
    pub(crate) volumes: Vec<String>,
    pub(crate) unmounted_volumes: Vec<String>,
    pub(crate) entrypoint: Option<Vec<String>>,
    pub(crate) cmd: Option<Vec<String>>,
    pub(crate) workdir: Option<String>,
    pub(crate) user: Option<String>,
}

/// An env var's or label's expected value: equal, or (`isRegex: true`) matched.
#[derive(Debug, Clone)]
pub(crate) enum ValueMatcher {
    Equals(String),
    Matches(Regex),
}

impl MetadataTest {
    /// One result per field the test sets, named `metadata: <field>` after its YAML
    /// key; the tool gives one verdict for all, which passes exactly when these do.
    pub fn judge(&self, facts: &ImageFacts) -> Vec<CheckResult> {
        let mut results = Vec::new();
        let mut push = |field: &str, failures: Vec<String>| {
            let name = format!("metadata: {field}");
            let passed = failures.is_empty();
            let detail = if passed {
                format!("{field} as expected")
            } else {
                failures.join("\n")
            };
            results.push(CheckResult::new(&self.group, name, passed, detail));
        };
        let image_env: Vec<(String, String)> = facts
            .env
            .iter()
            .filter_map(|pair| pair.split_once('='))
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect();
        if !self.env.is_empty() {
            push(
                "envVars",
                keyed("env var", &self.env, |key| {
                    image_env
                        .iter()
                        .rev()
                        .find(|(name, _)| name == key)
                        .map(|(_, value)| value.as_str())
                }),
            );
        }
        if !self.unbound_env.is_empty() {
            let failures = self
                .unbound_env
                .iter()
                .filter(|key| image_env.iter().any(|(name, _)| name == *key))
                .map(|key| format!("env var {key} should not be set in the image"))
                .collect();
            push("unboundEnvVars", failures);
        }
        if !self.labels.is_empty() {
            push(
                "labels",
                keyed("label", &self.labels, |key| {
                    facts.labels.get(key).map(String::as_str)
                }),
            );
        }
        // Surprising but the tool's: it lists exposed ports by number alone (Go's
        // `Port()`), so `8080` matches an exposed 8080/tcp and `8080/tcp` never does.
        let ports: Vec<String> = facts
            .exposed_ports
            .iter()
            .map(|port| port.split('/').next().unwrap_or_default().to_owned())
            .collect();
        if !self.exposed_ports.is_empty() {
            push(
                "exposedPorts",
                listed(&self.exposed_ports, &ports, true, "port", "exposed"),
            );
        }
        if !self.unexposed_ports.is_empty() {
            push(
                "unexposedPorts",
                listed(&self.unexposed_ports, &ports, false, "port", "exposed"),
            );
        }
        if !self.volumes.is_empty() {
            push(
                "volumes",
                listed(&self.volumes, &facts.volumes, true, "volume", "declared"),
            );
        }
        if !self.unmounted_volumes.is_empty() {
            push(
                "unmountedVolumes",
                listed(
                    &self.unmounted_volumes,
                    &facts.volumes,
                    false,
                    "volume",
                    "declared",
                ),
            );
        }
        if let Some(entrypoint) = &self.entrypoint {
            push(
                "entrypoint",
                exact_list("entrypoint", entrypoint, &facts.entrypoint),
            );
        }
        if let Some(cmd) = &self.cmd {
            push("cmd", exact_list("cmd", cmd, &facts.cmd));
        }
        if let Some(workdir) = &self.workdir {
            push("workdir", exact("workdir", workdir, &facts.workdir));
        }
        if let Some(user) = &self.user {
            push("user", exact("user", user, &facts.user));
        }
        results
    }
}

fn keyed<'a>(
    what: &str,
    expected: &[(String, ValueMatcher)],
    actual: impl Fn(&str) -> Option<&'a str>,
) -> Vec<String> {
    let mut failures = Vec::new();
    for (key, matcher) in expected {
        let Some(value) = actual(key) else {
            failures.push(format!("{what} {key} is not set in the image"));
            continue;
        };
        let (matched, wanted) = match matcher {
            ValueMatcher::Equals(text) => (text == value, format!("{text:?}")),
            ValueMatcher::Matches(regex) => (
                regex.is_match(value),
                format!("a match for `{}`", regex.as_str()),
            ),
        };
        if !matched {
            failures.push(format!("{what} {key} is {value:?}, expected {wanted}"));
        }
    }
    failures
}

fn listed(
    expected: &[String],
    actual: &[String],
    present: bool,
    what: &str,
    state: &str,
) -> Vec<String> {
    expected
        .iter()
        .filter(|item| actual.contains(item) != present)
        .map(|item| {
            if present {
                format!(
                    "{what} {item} is not {state}; the image has {}",
                    shown_list(actual)
                )
            } else {
                format!("{what} {item} should not be {state}")
            }
        })
        .collect()
}

fn exact_list(what: &str, expected: &[String], actual: &[String]) -> Vec<String> {
    if expected == actual {
        return Vec::new();
    }
    vec![format!(
        "image {what} is {}, expected {}",
        shown_list(actual),
        shown_list(expected)
    )]
}

fn exact(what: &str, expected: &str, actual: &str) -> Vec<String> {
    if expected == actual {
        return Vec::new();
    }
    vec![format!("image {what} is {actual:?}, expected {expected:?}")]
}

fn shown_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_default()
}
