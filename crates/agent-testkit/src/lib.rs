//! Test support shared by the crates' tests and the CLI's integration tests: a
//! scripted OpenAI-compatible chat-completions server on 127.0.0.1 that speaks the
//! real wire format (plain JSON, and SSE when the request asks to stream), records
//! every request, and answers from a script; the names of the local base images;
//! checks on report pages; the host's processes by their command line; images a
//! test builds of its own; and a runner's `GITHUB_OUTPUT` as it reads it.

pub mod html;

mod server;

pub use server::{RecordedRequest, ScriptedReply, ScriptedServer};

/// Base images built by `scripts/base-images` (no registry is reachable here).
pub const PYTHON_IMAGE: &str = "agent-base/python:3.11";
pub const BUSYBOX_IMAGE: &str = "agent-base/busybox:1";

/// What `docker_build` builds from.
pub enum BuildFrom<'a> {
    /// A folder with a `Dockerfile`: the build context.
    Folder(&'a std::path::Path),
    /// A Dockerfile's text, given on stdin, with no context.
    Dockerfile(&'a str),
}

/// `docker build -q -t <tag>`, labelled `label` (`key=value`) when given. Panics,
/// with the CLI's stderr, unless the image is built.
pub fn docker_build(tag: &str, label: Option<&str>, from: BuildFrom<'_>) {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut command = std::process::Command::new("docker");
    command.args(["build", "-q", "-t", tag]);
    if let Some(label) = label {
        command.args(["--label", label]);
    }
    let dockerfile = match from {
        BuildFrom::Folder(folder) => {
            command.arg(folder).stdin(Stdio::null());
            None
        }
        BuildFrom::Dockerfile(text) => {
            command.arg("-").stdin(Stdio::piped());
            Some(text)
        }
    };
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the docker CLI runs");
    if let Some(text) = dockerfile {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("the Dockerfile is written");
    }
    let output = child.wait_with_output().expect("docker build ends");
    assert!(
        output.status.success(),
        "{tag} builds: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `GITHUB_OUTPUT` read as the runner reads it: `name<<delimiter` blocks and
/// `name=value` lines.
pub fn github_outputs(text: &str) -> std::collections::BTreeMap<String, String> {
    let mut values = std::collections::BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((name, delimiter)) = line.split_once("<<") {
            let mut value = Vec::new();
            for line in lines.by_ref() {
                if line == delimiter {
                    break;
                }
                value.push(line);
            }
            values.insert(name.to_owned(), value.join("\n"));
        } else if let Some((name, value)) = line.split_once('=') {
            values.insert(name.to_owned(), value.to_owned());
        }
    }
    values
}

/// The command lines of this host's processes that hold `marker` (the test runner's
/// own aside): a build step's process is found so whichever builder runs it, since
/// BuildKit's steps have no container the engine's API lists.
pub fn processes_holding(marker: &str) -> Vec<String> {
    let output = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .expect("ps runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| {
            line.contains(marker) && !line.contains("cargo") && !line.contains("nextest")
        })
        .map(str::to_owned)
        .collect()
}
