//! `metadataTest`: the image's configuration, one check per field that is set.

use crate::structure::{GoRegex, lookup};

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
    Matches(GoRegex),
}

impl MetadataTest {
    /// One result per field the test sets, named `metadata: <field>` after its YAML
    /// key; the tool gives one verdict for all, which passes exactly when these do.
    pub fn judge(&self, facts: &ImageFacts) -> Vec<CheckResult> {
        let mut fields = self.pairs_judged(facts);
        fields.extend(self.lists_judged(facts));
        if let Some(entrypoint) = &self.entrypoint {
            fields.push((
                "entrypoint",
                exact_list("entrypoint", entrypoint, &facts.entrypoint),
            ));
        }
        if let Some(cmd) = &self.cmd {
            fields.push(("cmd", exact_list("cmd", cmd, &facts.cmd)));
        }
        if let Some(workdir) = &self.workdir {
            fields.push(("workdir", exact("workdir", workdir, &facts.workdir)));
        }
        if let Some(user) = &self.user {
            fields.push(("user", exact("user", user, &facts.user)));
        }
        fields
            .into_iter()
            .map(|(field, failures)| {
                let passed = failures.is_empty();
                let detail = if passed {
                    format!("{field} as expected")
                } else {
                    failures.join("\n")
                };
                CheckResult::new(&self.group, format!("metadata: {field}"), passed, detail)
            })
            .collect()
    }

    /// `envVars`, `unboundEnvVars` and `labels`: each field set, with its failures.
    fn pairs_judged(&self, facts: &ImageFacts) -> Vec<(&'static str, Vec<String>)> {
        let mut fields = Vec::new();
        let image_env = |key: &str| lookup(&facts.env, key);
        if !self.env.is_empty() {
            fields.push(("envVars", keyed("env var", &self.env, image_env)));
        }
        if !self.unbound_env.is_empty() {
            let failures = self
                .unbound_env
                .iter()
                .filter(|key| image_env(key).is_some())
                .map(|key| format!("env var {key} should not be set in the image"))
                .collect();
            fields.push(("unboundEnvVars", failures));
        }
        if !self.labels.is_empty() {
            let label = |key: &str| facts.labels.get(key).map(String::as_str);
            fields.push(("labels", keyed("label", &self.labels, label)));
        }
        fields
    }

    /// Ports and volumes, present or absent: each field set, with its failures.
    fn lists_judged(&self, facts: &ImageFacts) -> Vec<(&'static str, Vec<String>)> {
        // Surprising but the tool's: it lists exposed ports by number alone (Go's
        // `Port()`), so `8080` matches an exposed 8080/tcp and `8080/tcp` never does.
        let ports: Vec<String> = facts
            .exposed_ports
            .iter()
            .map(|port| port.split('/').next().unwrap_or_default().to_owned())
            .collect();
        let lists = [
            (
                "exposedPorts",
                &self.exposed_ports,
                &ports,
                true,
                "port",
                "exposed",
            ),
            (
                "unexposedPorts",
                &self.unexposed_ports,
                &ports,
                false,
                "port",
                "exposed",
            ),
            (
                "volumes",
                &self.volumes,
                &facts.volumes,
                true,
                "volume",
                "declared",
            ),
            (
                "unmountedVolumes",
                &self.unmounted_volumes,
                &facts.volumes,
                false,
                "volume",
                "declared",
            ),
        ];
        lists
            .into_iter()
            .filter(|(_, expected, ..)| !expected.is_empty())
            .map(|(field, expected, actual, present, what, state)| {
                (field, listed(expected, actual, present, what, state))
            })
            .collect()
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::check::ImageFacts;
    use crate::structure::testing::{refused, structure};

    const FILE: &str = r#"
schemaVersion: "2.0.0"
metadataTest:
  envVars:
    - key: PATH
      value: "/usr/local/bin:.*"
      isRegex: true
    - key: LANG
      value: C.UTF-8
  unboundEnvVars:
    - key: DEBUG
  labels:
    - key: org.opencontainers.image.licenses
      value: MIT
  exposedPorts: ["8080"]
  unexposedPorts: ["22"]
  volumes: ["/data"]
  unmountedVolumes: ["/tmp"]
  entrypoint: ["python3"]
  cmd: []
  workdir: /app
  user: app
"#;

    fn facts() -> ImageFacts {
        ImageFacts {
            user: "app".to_owned(),
            workdir: "/app".to_owned(),
            exposed_ports: vec!["8080/tcp".to_owned()],
            env: vec![
                "PATH=/usr/local/bin:/usr/bin".to_owned(),
                "LANG=C.UTF-8".to_owned(),
            ],
            labels: BTreeMap::from([(
                "org.opencontainers.image.licenses".to_owned(),
                "MIT".to_owned(),
            )]),
            entrypoint: vec!["python3".to_owned()],
            cmd: Vec::new(),
            volumes: vec!["/data".to_owned()],
            size_bytes: 0,
        }
    }

    #[test]
    fn one_check_per_field_all_passing_on_a_matching_image() {
        let file = structure(FILE);
        let results = file.metadata_test.as_ref().unwrap().judge(&facts());
        let names: Vec<&str> = results.iter().map(|result| result.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "metadata: envVars",
                "metadata: unboundEnvVars",
                "metadata: labels",
                "metadata: exposedPorts",
                "metadata: unexposedPorts",
                "metadata: volumes",
                "metadata: unmountedVolumes",
                "metadata: entrypoint",
                "metadata: cmd",
                "metadata: workdir",
                "metadata: user",
            ]
        );
        assert!(results.iter().all(|result| result.passed), "{results:?}");
    }

    #[test]
    fn each_field_fails_with_expected_against_actual() {
        let file = structure(FILE);
        let facts = ImageFacts {
            user: String::new(),
            workdir: "/".to_owned(),
            exposed_ports: vec!["22/tcp".to_owned()],
            env: vec!["PATH=/usr/bin".to_owned(), "DEBUG=1".to_owned()],
            labels: BTreeMap::new(),
            entrypoint: Vec::new(),
            cmd: vec!["sh".to_owned()],
            volumes: vec!["/tmp".to_owned()],
            size_bytes: 0,
        };
        let results = file.metadata_test.as_ref().unwrap().judge(&facts);
        let details: Vec<&str> = results
            .iter()
            .map(|result| result.detail.as_str())
            .collect();
        assert!(results.iter().all(|result| !result.passed), "{results:?}");
        assert_eq!(
            details,
            [
                "env var PATH is \"/usr/bin\", expected a match for `/usr/local/bin:.*`\nenv var LANG is not set in the image",
                "env var DEBUG should not be set in the image",
                "label org.opencontainers.image.licenses is not set in the image",
                "port 8080 is not exposed; the image has [\"22\"]",
                "port 22 should not be exposed",
                "volume /data is not declared; the image has [\"/tmp\"]",
                "volume /tmp should not be declared",
                "image entrypoint is [], expected [\"python3\"]",
                "image cmd is [\"sh\"], expected []",
                "image workdir is \"/\", expected \"/app\"",
                "image user is \"\", expected \"app\"",
            ]
        );
    }

    #[test]
    fn ports_are_compared_by_number_alone_as_the_tool_does() {
        let file =
            structure("schemaVersion: 2.0.0\nmetadataTest:\n  exposedPorts: ['8080/tcp', 8080]\n");
        let results = file.metadata_test.as_ref().unwrap().judge(&facts());
        assert!(!results[0].passed);
        assert_eq!(
            results[0].detail,
            "port 8080/tcp is not exposed; the image has [\"8080\"]"
        );
    }

    #[test]
    fn an_empty_metadata_test_is_skipped_and_null_lists_check_nothing() {
        let file = structure(
            "schemaVersion: 2.0.0\nmetadataTest:\n  entrypoint: ~\n  workdir: ''\nfileContentTests:\n  - {name: a, path: /a}\n",
        );
        assert!(file.metadata_test.is_none());
    }

    #[test]
    fn bad_metadata_is_refused_at_its_place() {
        let cases = [
            (
                "  env:\n    - key: A\n",
                3,
                3,
                "unknown key `env` in metadataTest; expected one of `envVars`",
            ),
            ("  envVars:\n    - value: A\n", 4, 7, "has no `key`"),
            (
                "  labels:\n    - key: a\n      value: '('\n      isRegex: true\n",
                4,
                7,
                "bad regex in `labels`",
            ),
            (
                "  exposedPorts: ['']\n",
                3,
                18,
                "an entry of `exposedPorts` is empty",
            ),
            ("  cmd: python3\n", 3, 8, "`cmd` must be a list"),
        ];
        for (body, line, column, expected) in cases {
            let (found_line, found_column, message) =
                refused(&format!("schemaVersion: 2.0.0\nmetadataTest:\n{body}"));
            assert_eq!(
                (found_line, found_column),
                (line, column),
                "{body}: {message}"
            );
            assert!(message.contains(expected), "{body}: {message}");
        }
    }
}
