//! Test support shared by the crates' tests and the CLI's integration tests: a
//! scripted OpenAI-compatible chat-completions server on 127.0.0.1 that speaks the
//! real wire format (plain JSON, and SSE when the request asks to stream), records
//! every request, and answers from a script; the names of the local base images; and
//! checks on report pages.

pub mod html;

mod server;

pub use server::{RecordedRequest, ScriptedReply, ScriptedServer};

/// Base images built by `scripts/base-images` (no registry is reachable here).
pub const PYTHON_IMAGE: &str = "agent-base/python:3.11";
pub const BUSYBOX_IMAGE: &str = "agent-base/busybox:1";
