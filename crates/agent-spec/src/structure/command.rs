//! `commandTests`: a command run in a fresh container of the image, its streams and
//! exit code judged.

use regex::Regex;

use crate::check::text::{Stream, shown};
use crate::check::{CheckResult, Observed};
use crate::structure::{expand_env, merge_env, regex_failures};

/// One entry of `commandTests`.
#[derive(Debug, Clone)]
pub struct CommandTest {
    pub name: String,
    /// Each run and committed in turn before the test command, as the tool does.
    pub setup: Vec<Vec<String>>,
    /// Read and validated, never run: the tool's Docker driver skips teardown, since
    /// every test gets a fresh container.
    pub teardown: Vec<Vec<String>>,
    pub command: String,
    pub args: Vec<String>,
    /// `envVars`: (key, value) as written.
    pub env: Vec<(String, String)>,
    /// `containerRunOptions.user` of the file: the user setup and test commands run
    /// as; `None`, the image's.
    pub user: Option<String>,
    pub(crate) group: String,
    pub(crate) expected_output: Vec<Regex>,
    pub(crate) excluded_output: Vec<Regex>,
    pub(crate) expected_error: Vec<Regex>,
    pub(crate) excluded_error: Vec<Regex>,
    /// Compared always; 0 when the test does not say.
    pub(crate) exit_code: i64,
}

impl CommandTest {
    /// The command and its args with `$VAR`/`${VAR}` expanded as the tool does:
    /// against the environment of the image the command runs in, which is
    /// `environment` ([`StructureFile::environment`](super::StructureFile::environment))
    /// and, once setup commands were committed, the setup env too. The entrypoint is
    /// cleared when it runs.
    pub fn full_command(&self, environment: &[String]) -> Vec<String> {
        let environment = if self.setup.is_empty() {
            environment.to_vec()
        } else {
            merge_env(environment, &self.setup_pairs(environment))
        };
        std::iter::once(&self.command)
            .chain(&self.args)
            .map(|part| expand_env(part, &environment))
            .collect()
    }

    /// `KEY=value` for each setup command's container: `envVars` expanded against
    /// `environment`, as the tool's driver does for setup.
    pub fn setup_env(&self, environment: &[String]) -> Vec<String> {
        self.setup_pairs(environment)
            .into_iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect()
    }

    fn setup_pairs(&self, environment: &[String]) -> Vec<(String, String)> {
        self.env
            .iter()
            .map(|(key, value)| (key.clone(), expand_env(value, environment)))
            .collect()
    }

    /// `KEY=value` for the test command's container. Surprising but the tool's: here
    /// `envVars` are passed as written, never expanded, unlike for setup; and when the
    /// file sets `containerRunOptions`, the tool replaces them with the options' own
    /// (none here), so the test command gets none of them.
    pub fn run_env(&self) -> Vec<String> {
        if self.user.is_some() {
            return Vec::new();
        }
        self.env
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect()
    }

    /// The verdict on what the test command did. The exit code is always compared (0
    /// when the test sets none); every pattern is an unanchored regex over the whole
    /// stream, `^`/`$` at its ends unless the pattern says `(?m)`.
    pub fn judge(&self, observed: &Observed<'_>) -> CheckResult {
        let mut failures = Vec::new();
        let stderr_failures = [
            regex_failures(&self.expected_error, observed.stderr, true, "stderr"),
            regex_failures(&self.excluded_error, observed.stderr, false, "stderr"),
        ]
        .concat();
        let stdout_failures = [
            regex_failures(&self.expected_output, observed.stdout, true, "stdout"),
            regex_failures(&self.excluded_output, observed.stdout, false, "stdout"),
        ]
        .concat();
        let shows_stderr = !stderr_failures.is_empty();
        let shows_stdout = !stdout_failures.is_empty();
        failures.extend(stderr_failures);
        failures.extend(stdout_failures);
        match observed.exit_code {
            Some(code) if code == self.exit_code => {}
            Some(code) => {
                failures.push(format!("expected exit code {}, got {code}", self.exit_code))
            }
            None => failures.push(format!(
                "the command did not exit (killed at the timeout); expected exit code {}",
                self.exit_code
            )),
        }
        if failures.is_empty() {
            return CheckResult::new(
                &self.group,
                self.name.clone(),
                true,
                format!("exit code {}", self.exit_code),
            );
        }
        let mut detail = failures.join("\n");
        let streams = [
            (
                shows_stdout,
                "stdout",
                observed.stdout,
                observed.stdout_truncated,
            ),
            (
                shows_stderr,
                "stderr",
                observed.stderr,
                observed.stderr_truncated,
            ),
        ];
        for (shown_here, name, text, truncated) in streams {
            if shown_here {
                detail.push('\n');
                detail.push_str(&shown(Stream {
                    name,
                    text,
                    truncated,
                }));
            }
        }
        CheckResult::new(&self.group, self.name.clone(), false, detail)
    }
}
