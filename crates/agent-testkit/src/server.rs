//! The scripted model server.

use std::net::SocketAddr;
use std::time::Duration;

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: serde_json::Value,
}

impl RecordedRequest {
    /// Every message's content, joined with blank lines.
    pub fn all_text(&self) -> String {
        todo!()
    }
    /// The content of the last message whose role is `user`.
    pub fn last_user_message(&self) -> String {
        todo!()
    }
    /// `response_format.json_schema.name`, if any.
    pub fn schema_name(&self) -> Option<String> {
        todo!()
    }
    pub fn is_stream(&self) -> bool {
        todo!()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        todo!()
    }
}

/// What the server does for one request.
#[derive(Debug, Clone)]
pub enum ScriptedReply {
    /// A normal completion whose message content is this text, finish_reason
    /// "stop", usage 100 prompt / 50 completion tokens. As SSE chunks (a few
    /// characters each, usage in a last chunk with empty choices when
    /// `stream_options.include_usage` is set, then `data: [DONE]`) when the request
    /// has `stream: true`.
    Content(String),
    /// As `Content`, with the given finish_reason (e.g. "length", "eos").
    ContentWithFinish { content: String, finish_reason: String },
    /// `message.refusal` set, content null.
    Refusal(String),
    /// A completion with `choices: []`.
    EmptyChoices,
    /// Any status, headers and body, verbatim.
    Raw {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Waits, then replies.
    Delayed(Duration, Box<ScriptedReply>),
    /// Streams the first `after_chunks` SSE chunks of `content`, then stalls forever
    /// (a dead connection that stays open).
    StallStream { content: String, after_chunks: usize },
    /// Accepts the request and never answers.
    Hang,
}

type Responder = dyn Fn(usize, &RecordedRequest) -> ScriptedReply + Send + Sync;

/// Listens on 127.0.0.1 on a free port; stops when dropped.
pub struct ScriptedServer { /* chosen by the implementation */ }

impl ScriptedServer {
    /// Answers the n-th request (0-based) with `replies[n]`; past the end, with HTTP
    /// 500 and a body saying the script ran out (so a test sees the extra call).
    pub async fn start(replies: Vec<ScriptedReply>) -> ScriptedServer {
        todo!()
    }

    /// Answers with whatever `responder(index, request)` returns; it may assert on the
    /// request (a panic there becomes an HTTP 500 and is reported by
    /// [`ScriptedServer::panics`]).
    pub async fn start_with(
        responder: impl Fn(usize, &RecordedRequest) -> ScriptedReply + Send + Sync + 'static,
    ) -> ScriptedServer {
        let _: Option<Box<Responder>> = None;
        todo!()
    }

    pub fn addr(&self) -> SocketAddr {
        todo!()
    }

    /// `http://127.0.0.1:<port>/v1`
    pub fn base_url(&self) -> String {
        todo!()
    }

    /// Every request received so far, in order (chat completions and others).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        todo!()
    }

    /// Messages of responder panics (assertion failures inside the script).
    pub fn panics(&self) -> Vec<String> {
        todo!()
    }
}
