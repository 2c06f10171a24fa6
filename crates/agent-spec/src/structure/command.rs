//! `commandTests`: a command run in a fresh container of the image, its streams and
//! exit code judged.

use crate::structure::GoRegex;

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
    /// The file sets `containerRunOptions`: the test's `envVars` reach setup only.
    pub(crate) run_options_set: bool,
    pub(crate) group: String,
    pub(crate) expected_output: Vec<GoRegex>,
    pub(crate) excluded_output: Vec<GoRegex>,
    pub(crate) expected_error: Vec<GoRegex>,
    pub(crate) excluded_error: Vec<GoRegex>,
    /// Compared always; 0 when the test does not say.
    pub(crate) exit_code: i64,
}

impl CommandTest {
    /// The command and its args with `$VAR`/`${VAR}` expanded as the tool does:
    /// against the environment of the image the command runs in, which is
    /// `environment` ([`StructureFile::environment`](super::StructureFile::environment))
    /// and, once setup commands were committed, their env (`setup_env`, `KEY=value`)
    /// too. The entrypoint is cleared when it runs.
    pub fn full_command(&self, environment: &[String], setup_env: &[String]) -> Vec<String> {
        let environment = if self.setup.is_empty() {
            environment.to_vec()
        } else {
            let pairs: Vec<(String, String)> = setup_env
                .iter()
                .filter_map(|pair| pair.split_once('='))
                .map(|(key, value)| (key.to_owned(), value.to_owned()))
                .collect();
            merge_env(environment, &pairs)
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
    /// ([`RunOptions::container_env`](super::RunOptions::container_env)), so the
    /// test command gets none of them.
    pub fn run_env(&self) -> Vec<String> {
        if self.run_options_set {
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

#[cfg(test)]
mod tests {
    use crate::check::Observed;
    use crate::structure::testing::{refused, structure};

    const FILE: &str = r#"
schemaVersion: "2.0.0"
commandTests:
  - name: "adds"
    setup: [["touch", "/tmp/ready"], ["sh", "-c", "echo $MODE > /tmp/mode"]]
    teardown: [["rm", "/tmp/ready"]]
    command: "$BIN/adder"
    args: ["3", "${X}"]
    envVars:
      - key: MODE
        value: fast-$HOME
    expectedOutput: ["^7\n$", "7"]
    excludedOutput: ["error"]
    expectedError: ["(?m)^done$"]
    excludedError: ["Traceback"]
    exitCode: 2
  - name: plain
    command: python3
"#;

    fn observed<'a>(stdout: &'a str, stderr: &'a str, exit_code: Option<i64>) -> Observed<'a> {
        Observed {
            exit_code,
            stdout,
            stderr,
            stdout_truncated: false,
            stderr_truncated: false,
        }
    }

    #[test]
    fn every_key_parses_and_the_envs_follow_the_tool() {
        let file = structure(FILE);
        let test = &file.command_tests[0];
        assert_eq!(test.name, "adds");
        assert_eq!(
            test.setup,
            [
                vec!["touch", "/tmp/ready"],
                vec!["sh", "-c", "echo $MODE > /tmp/mode"]
            ]
        );
        assert_eq!(test.teardown, [vec!["rm", "/tmp/ready"]]);
        let environment: Vec<String> = ["BIN=/usr/local/bin", "X=4", "HOME=/home/app"]
            .map(str::to_owned)
            .to_vec();
        assert_eq!(
            file.command_env(test, &environment).command,
            ["/usr/local/bin/adder", "3", "4"]
        );
        assert_eq!(test.setup_env(&environment), ["MODE=fast-/home/app"]);
        assert_eq!(
            test.run_env(),
            ["MODE=fast-$HOME"],
            "the test command's env is not expanded"
        );
        assert_eq!(test.user, None);
        let plain = &file.command_tests[1];
        assert_eq!(file.command_env(plain, &environment).command, ["python3"]);
    }

    #[test]
    fn the_commands_args_see_the_setup_env_once_there_is_a_setup() {
        let file = structure(
            "schemaVersion: 2.0.0\ncommandTests:\n  - name: a\n    command: echo\n    args: [$MODE]\n    envVars: [{key: MODE, value: m}]\n  - name: b\n    setup: [[true]]\n    command: echo\n    args: [$MODE]\n    envVars: [{key: MODE, value: m}]\n",
        );
        let command = |index: usize| file.command_env(&file.command_tests[index], &[]).command;
        assert_eq!(command(0), ["echo", ""]);
        assert_eq!(command(1), ["echo", "m"]);
    }

    #[test]
    fn judging_takes_every_regex_and_the_exit_code() {
        let file = structure(FILE);
        let test = &file.command_tests[0];
        let passed = test.judge(&observed("7\n", "working\ndone\n", Some(2)));
        assert!(passed.passed, "{}", passed.detail);
        assert_eq!(passed.group, "structure.yaml");
        assert_eq!(passed.name, "adds");
        let failed = test.judge(&observed("17\nerror\n", "Traceback\ndone\n", Some(0)));
        assert!(!failed.passed);
        let lines: Vec<&str> = failed.detail.lines().take(4).collect();
        assert_eq!(
            lines,
            [
                "excluded \"Traceback\" found in stderr",
                "expected \"^7\\n$\" not found in stdout",
                "excluded \"error\" found in stdout",
                "expected exit code 2, got 0",
            ]
        );
        assert!(
            failed.detail.contains("stdout (9 bytes, 2 lines)"),
            "{}",
            failed.detail
        );
        // The default exit code is 0, compared always; a killed command fails.
        let plain = &file.command_tests[1];
        assert!(plain.judge(&observed("", "", Some(0))).passed);
        assert!(!plain.judge(&observed("", "", Some(1))).passed);
        assert!(!plain.judge(&observed("", "", None)).passed);
    }

    #[test]
    fn regexes_are_unanchored_and_single_line_as_in_go() {
        let file = structure(
            "schemaVersion: 2.0.0\ncommandTests:\n  - name: a\n    command: x\n    expectedOutput: ['^b$']\n  - name: b\n    command: x\n    expectedOutput: ['(?m)^b$', 'b']\n",
        );
        assert!(
            !file.command_tests[0]
                .judge(&observed("a\nb\n", "", Some(0)))
                .passed
        );
        assert!(
            file.command_tests[0]
                .judge(&observed("b", "", Some(0)))
                .passed
        );
        assert!(
            file.command_tests[1]
                .judge(&observed("a\nb\nc", "", Some(0)))
                .passed
        );
    }

    #[test]
    fn container_run_options_user_is_kept_and_drops_the_test_env() {
        let file = structure(
            "schemaVersion: 2.0.0\ncontainerRunOptions:\n  user: nobody\ncommandTests:\n  - name: a\n    command: id\n    envVars: [{key: A, value: b}]\n",
        );
        let test = &file.command_tests[0];
        assert_eq!(test.user.as_deref(), Some("nobody"));
        assert!(test.run_env().is_empty());
        assert_eq!(test.setup_env(&[]), ["A=b"]);
    }

    #[test]
    fn what_the_tool_refuses_or_would_fail_is_refused_with_its_place() {
        let head = "schemaVersion: 2.0.0\ncommandTests:\n";
        let cases = [
            ("  - command: x\n", 3, 5, "has no `name`"),
            ("  - name: a\n", 3, 5, "has no `command`"),
            (
                "  - name: a\n    command: x\n    setup: [[]]\n",
                5,
                13,
                "a command in `setup` is empty",
            ),
            (
                "  - name: a\n    command: x\n    envVars: [{key: A}]\n",
                5,
                16,
                "`A` in `envVars` has no `value`",
            ),
            (
                "  - name: a\n    command: x\n    exitCode: '1'\n",
                5,
                15,
                "unquoted integer",
            ),
            (
                "  - name: a\n    command: x\n    exitcode: 1\n",
                5,
                5,
                "unknown key `exitcode` in a command test",
            ),
            (
                "  - name: a\n    command: x\n    expectedOutput: ['(']\n",
                5,
                22,
                "bad regex in `expectedOutput`",
            ),
            (
                "  - name: a\n    command: x\n    name: b\n",
                5,
                5,
                "`name` is set twice",
            ),
            (
                "  name: a\n",
                3,
                3,
                "`commandTests` must be a list, not a mapping",
            ),
        ];
        for (body, line, column, expected) in cases {
            let (found_line, found_column, message) = refused(&format!("{head}{body}"));
            assert_eq!(
                (found_line, found_column),
                (line, column),
                "{body}: {message}"
            );
            assert!(message.contains(expected), "{body}: {message}");
        }
        let (line, column, message) =
            refused("schemaVersion: 2.0.0\ncontainerRunOptions:\n  privileged: true\n");
        assert_eq!((line, column), (3, 15));
        assert!(
            message.contains(
                "`privileged` in containerRunOptions is run only with `structure_allow_host = true`"
            ),
            "{message}"
        );
    }
}
