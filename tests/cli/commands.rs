//! Commands run as written: a differential test against the docker CLI. Every entry of
//! the corpus runs twice on the same image, once as a `[[case]]` through `agent verify
//! --image` and once through `docker run` with the same options; agent's exit code,
//! stdout and stderr must equal docker's, byte for byte, for every entry.
//!
//! It pins the false pass where a `sh -c` script ending in a newline or `;` got `"$@"`
//! appended, an empty last command whose status 0 hid the script's failure.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};

use agent_testkit::{BUSYBOX_IMAGE, BuildFrom, docker_build};
use serde_json::Value;

use crate::support::{Workspace, check_fields, require_engine, verify_image};

/// The images of the corpus: each CMD form, and an ENTRYPOINT with a CMD after it.
const IMAGES: [(&str, &str); 4] = [
    ("exec", r#"CMD ["echo", "exec form", "cmd"]"#),
    ("shell", "CMD echo first; echo \"second:\" ;"),
    ("shell-false", "CMD echo out; false"),
    (
        "entrypoint",
        "ENTRYPOINT [\"sh\", \"-c\", \"echo entry \\\"$0\\\" \\\"$@\\\"; exit $#\"]\nCMD [\"c0\", \"c1\"]",
    ),
];

/// One run of an image: what a `[[case]]` says.
struct Entry {
    name: &'static str,
    image: &'static str,
    entrypoint: Option<&'static [&'static str]>,
    command: Option<&'static [&'static str]>,
    args: &'static [&'static str],
    stdin: Option<&'static str>,
    env: &'static [(&'static str, &'static str)],
}

const fn entry(name: &'static str, image: &'static str) -> Entry {
    Entry {
        name,
        image,
        entrypoint: None,
        command: None,
        args: &[],
        stdin: None,
        env: &[],
    }
}

const fn shell(name: &'static str, script: &'static [&'static str]) -> Entry {
    Entry {
        command: Some(script),
        ..entry(name, "exec")
    }
}

fn corpus() -> Vec<Entry> {
    vec![
        entry("exec form CMD", "exec"),
        Entry {
            args: &["--fast", "two words", "$HOME"],
            ..entry("exec form CMD with args", "exec")
        },
        entry("shell form CMD ending in ;", "shell"),
        Entry {
            args: &["a", "b c", "'quoted'"],
            ..entry("shell form CMD with args", "shell")
        },
        entry("shell form CMD whose last command fails", "shell-false"),
        Entry {
            args: &["x"],
            ..entry(
                "shell form CMD whose last command fails, with args",
                "shell-false",
            )
        },
        entry("entrypoint and CMD", "entrypoint"),
        Entry {
            args: &["x", "y z"],
            ..entry("entrypoint and CMD with args", "entrypoint")
        },
        Entry {
            entrypoint: Some(&["sh", "-c"]),
            command: Some(&["echo overridden; exit 5"]),
            ..entry("entrypoint and command overridden", "entrypoint")
        },
        Entry {
            entrypoint: Some(&["echo", "from entrypoint"]),
            args: &["arg"],
            ..entry("entrypoint overridden with args, no command", "entrypoint")
        },
        Entry {
            entrypoint: Some(&[]),
            command: Some(&["sh", "-c", "echo cleared"]),
            ..entry("entrypoint cleared", "entrypoint")
        },
        shell(
            "a script whose last command fails",
            &["sh", "-c", "echo start\nfalse\n"],
        ),
        shell("false then semicolon", &["sh", "-c", "false;"]),
        shell("and list", &["sh", "-c", "true && false"]),
        shell("or list", &["sh", "-c", "false || echo rescued"]),
        shell("exit code", &["sh", "-c", "exit 7"]),
        shell("exit 256 wraps", &["sh", "-c", "exit 256"]),
        shell(
            "set -e script",
            &["sh", "-c", "set -e\necho one\nfalse\necho two\n"],
        ),
        shell("signal TERM", &["sh", "-c", "echo going; kill -TERM $$"]),
        shell("signal KILL", &["sh", "-c", "kill -KILL $$"]),
        shell(
            "both streams",
            &["sh", "-c", "echo out; echo err >&2; printf 'no newline'"],
        ),
        Entry {
            args: &["z"],
            ..shell(
                "script with its own positional args",
                &["sh", "-c", "echo $0 $1 $2; exit $#", "x", "y"],
            )
        },
        Entry {
            stdin: Some("hello\nworld\n"),
            ..shell("stdin", &["sh", "-c", "cat; echo done >&2"])
        },
        Entry {
            env: &[("GREETING", "hi there")],
            ..shell(
                "env",
                &["sh", "-c", "echo \"$GREETING\"; test \"$GREETING\" = nope"],
            )
        },
        shell("exec form command", &["printf", "%s|", "a b", "c"]),
        shell("a command that fails", &["ls", "/does-not-exist"]),
    ]
}

/// The corpus's images, built from busybox and removed when dropped.
struct Images(BTreeMap<&'static str, String>);

impl Images {
    fn build() -> Images {
        let mut images = BTreeMap::new();
        for (name, body) in IMAGES {
            let tag = format!("agent-test/commands-{name}:{}", std::process::id());
            let dockerfile = format!("FROM {BUSYBOX_IMAGE}\n{body}\n");
            docker_build(
                &tag,
                Some("dev.agent.test=commands"),
                BuildFrom::Dockerfile(&dockerfile),
            );
            images.insert(name, tag);
        }
        Images(images)
    }
}

impl Drop for Images {
    fn drop(&mut self) {
        for tag in self.0.values() {
            let _ = Command::new("docker").args(["rmi", "-f", tag]).output();
        }
    }
}

/// What a run gave: exit code, stdout, stderr.
type Observed = (i64, String, String);

/// The image's CMD as the engine stores it.
fn image_command(image: &str) -> Vec<String> {
    let output = Command::new("docker")
        .args([
            "image",
            "inspect",
            "--format",
            "{{json .Config.Cmd}}",
            image,
        ])
        .output()
        .expect("docker image inspect runs");
    serde_json::from_slice(&output.stdout).expect("the image's CMD")
}

/// What `docker run` is given for `entry`: with args but no command, agent appends
/// the args to the image's CMD (where `docker run` would replace it), so docker gets
/// that CMD written out with the args after it — for a shell-form CMD, the script with
/// its trailing separators dropped and each arg quoted onto its end.
fn docker_command(entry: &Entry, image: &str) -> Vec<String> {
    let args: Vec<String> = entry.args.iter().map(|arg| (*arg).to_owned()).collect();
    if let Some(command) = entry.command {
        return command
            .iter()
            .map(|part| (*part).to_owned())
            .chain(args)
            .collect();
    }
    if args.is_empty() || entry.entrypoint.is_some() {
        return args;
    }
    let mut command = image_command(image);
    if command.len() == 3 && command[0] == "/bin/sh" && command[1] == "-c" {
        let script = command[2].trim_end_matches(|c: char| c.is_whitespace() || c == ';');
        let quoted: Vec<String> = args
            .iter()
            .map(|arg| shell_words::quote(arg).into_owned())
            .collect();
        command[2] = format!("{script} {}", quoted.join(" "));
        return command;
    }
    command.extend(args);
    command
}

/// `docker run` with the options agent runs a case with (no network, every
/// capability dropped, no new privileges).
fn docker_run(entry: &Entry, image: &str) -> Observed {
    let mut run = Command::new("docker");
    run.args(["run", "--rm", "--network", "none", "--cap-drop", "ALL"])
        .args(["--security-opt", "no-new-privileges"]);
    for (key, value) in entry.env {
        run.args(["-e", &format!("{key}={value}")]);
    }
    let mut command = docker_command(entry, image);
    if let Some(entrypoint) = entry.entrypoint {
        // The CLI takes one word for the entrypoint; the rest goes before the command.
        let (first, rest) = entrypoint.split_first().unwrap_or((&"", &[]));
        run.args(["--entrypoint", first]);
        command.splice(0..0, rest.iter().map(|part| (*part).to_owned()));
    }
    if entry.stdin.is_some() {
        run.arg("-i");
    }
    let mut child = run
        .arg(image)
        .args(&command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker run starts");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(entry.stdin.unwrap_or_default().as_bytes())
        .expect("stdin written");
    drop(stdin);
    let output = child.wait_with_output().expect("docker run ends");
    (
        i64::from(output.status.code().expect("docker run exits")),
        String::from_utf8(output.stdout).expect("utf-8"),
        String::from_utf8(output.stderr).expect("utf-8"),
    )
}

/// A TOML string: JSON's escapes are TOML's.
fn toml_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string serialises")
}

fn toml_list(items: &[&str]) -> String {
    let items: Vec<String> = items.iter().map(|item| toml_string(item)).collect();
    format!("[{}]", items.join(", "))
}

/// A `[[case]]` for `entry` whose checks want exactly what docker observed: the exit
/// code, and each stream whole (anchored at both ends, nothing trimmed).
fn case_table(entry: &Entry, (code, stdout, stderr): &Observed) -> String {
    let mut table = format!("[[case]]\nname = {}\n", toml_string(entry.name));
    if !entry.args.is_empty() {
        table += &format!("args = {}\n", toml_list(entry.args));
    }
    if let Some(entrypoint) = entry.entrypoint {
        table += &format!("entrypoint = {}\n", toml_list(entrypoint));
    }
    if let Some(command) = entry.command {
        table += &format!("command = {}\n", toml_list(command));
    }
    if let Some(stdin) = entry.stdin {
        table += &format!("stdin = {}\n", toml_string(stdin));
    }
    if !entry.env.is_empty() {
        let pairs: Vec<String> = entry
            .env
            .iter()
            .map(|(key, value)| format!("{key} = {}", toml_string(value)))
            .collect();
        table += &format!("env = {{ {} }}\n", pairs.join(", "));
    }
    let whole = |text: &str| toml_string(&format!(r"\A{}\z", regex::escape(text)));
    table += &format!("[[case.check]]\nname = \"exit code\"\nexit_code = {code}\n");
    table += &format!(
        "[[case.check]]\nname = \"stdout\"\nstdout_matches = {}\n",
        whole(stdout)
    );
    table += &format!(
        "[[case.check]]\nname = \"stderr\"\nstderr_matches = {}\n",
        whole(stderr)
    );
    table
}

#[tokio::test(flavor = "multi_thread")]
async fn every_command_gives_what_docker_run_gives() {
    require_engine();
    let images = Images::build();
    let workspace = Workspace::new("http://127.0.0.1:9/v1", "", "");
    let corpus = corpus();
    let mut failing = 0;
    let mut checked = 0;
    let mut differences: Vec<String> = Vec::new();
    for (image_name, image) in &images.0 {
        let entries: Vec<&Entry> = corpus
            .iter()
            .filter(|entry| entry.image == *image_name)
            .collect();
        let mut spec = "prompt = \"p\"\nconditions = \"c\"\n".to_owned();
        for entry in &entries {
            let observed = docker_run(entry, image);
            failing += usize::from(observed.0 != 0);
            spec += &case_table(entry, &observed);
        }
        let path = workspace.spec(&format!("commands-{image_name}"), &spec);
        let output = verify_image(&workspace, image, &path, &["--json"]).await;
        let verdict: Value = serde_json::from_str(&output.stdout)
            .unwrap_or_else(|_| panic!("verify --json on {image_name}: {}", output.stderr));
        let checks = verdict["result"]["checks"].as_array().expect("checks");
        let before = differences.len();
        differences.extend(
            checks
                .iter()
                .filter(|check| check["passed"] != true)
                .map(|check| format!("{}: {}: {}", check["group"], check["name"], check["detail"])),
        );
        assert_eq!(
            checks.len(),
            entries.len() * 3,
            "{image_name}: every check ran"
        );
        checked += entries.len();
        // agent's own verdict: verified exactly when it agrees with docker on every case.
        assert_eq!(
            output.code,
            Some(if differences.len() == before { 0 } else { 1 })
        );
    }
    assert!(
        differences.is_empty(),
        "agent differs from docker run:\n{}",
        differences.join("\n")
    );
    assert_eq!(checked, corpus.len(), "every entry's image was built");
    assert!(
        failing >= 10,
        "only {failing} entries exit non-zero under docker run"
    );
}

/// The spec that once verified: two scripts that fail, each checked for exit 0.
#[tokio::test(flavor = "multi_thread")]
async fn a_script_ending_in_a_newline_or_semicolon_that_fails_is_not_verified() {
    require_engine();
    let workspace = Workspace::new("http://127.0.0.1:9/v1", "", "");
    let spec = workspace.spec(
        "false-pass",
        r#"prompt = "p"
conditions = "c"

[[case]]
name = "a script whose last command fails"
command = ["sh", "-c", "echo start\nfalse\n"]
[[case.check]]
exit_code = 0

[[case]]
name = "false then semicolon"
command = ["sh", "-c", "false;"]
[[case.check]]
exit_code = 0
"#,
    );
    let output = verify_image(&workspace, BUSYBOX_IMAGE, &spec, &["--json"]).await;
    output.assert_code(1);
    let verdict: Value = serde_json::from_str(&output.stdout).expect("verify --json");
    assert_eq!(
        check_fields(&verdict, "detail"),
        ["expected exit code 0, got 1", "expected exit code 0, got 1"]
    );
}
