//! Test support shared by the crates' tests and the CLI's integration tests: a
//! scripted OpenAI-compatible chat-completions server on 127.0.0.1 that speaks the
//! real wire format (plain JSON, and SSE when the request asks to stream), records
//! every request, and answers from a script; the names of the local base images;
//! checks on report pages; and the host's processes by their command line.

pub mod html;

mod server;

pub use server::{RecordedRequest, ScriptedReply, ScriptedServer};

/// Base images built by `scripts/base-images` (no registry is reachable here).
pub const PYTHON_IMAGE: &str = "agent-base/python:3.11";
pub const BUSYBOX_IMAGE: &str = "agent-base/busybox:1";

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
