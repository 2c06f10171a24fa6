//! Request bodies: the messages, the sampling settings, and how structured output is
//! asked for in each wire mode.

use agent_spec::ModelSettings;
use serde_json::{Value, json};

use crate::backend::Call;
use crate::message::{ChatMessage, Role};

/// How a request asks for structured output, most enforced first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireMode {
    /// `response_format` `json_schema`, strict (OpenAI, vLLM, Ollama, LiteLLM).
    JsonSchema,
    /// `response_format` `json_object` with the schema attached where servers read it:
    /// `response_format.schema` (llama.cpp) and `guided_json` (vLLM); also in the prompt.
    JsonObjectSchema,
    /// `response_format` `json_object`; the schema in the prompt.
    JsonObject,
    /// No `response_format`; the schema in the prompt.
    Prompt,
}

impl WireMode {
    /// What `auto` tries, in order: the first the endpoint does not reject is kept.
    pub const LADDER: [WireMode; 4] = [
        WireMode::JsonSchema,
        WireMode::JsonObjectSchema,
        WireMode::JsonObject,
        WireMode::Prompt,
    ];

    /// The name in transcripts (`request.response_format`).
    pub fn name(self) -> &'static str {
        match self {
            WireMode::JsonSchema => "json_schema",
            WireMode::JsonObjectSchema => "json_object_schema",
            WireMode::JsonObject => "json_object",
            WireMode::Prompt => "none",
        }
    }
}

/// A request ready to send, and what the transcript records of it.
pub(crate) struct PreparedRequest {
    pub body: Value,
    /// The messages as sent, the schema instructions included.
    pub messages: Vec<ChatMessage>,
    pub mode: WireMode,
    pub stream: bool,
}

/// The request body for `call` in `mode`.
pub(crate) fn prepare(
    settings: &ModelSettings,
    mode: WireMode,
    call: &Call<'_>,
) -> PreparedRequest {
    let mut sent = call.messages.to_vec();
    if mode != WireMode::JsonSchema {
        // Without a schema-enforcing request the schema has to be in the prompt; it goes
        // after the leading system messages so chat templates still see those first.
        let position = sent
            .iter()
            .take_while(|message| message.role == Role::System)
            .count();
        sent.insert(
            position,
            ChatMessage {
                role: Role::System,
                content: schema_instructions(call),
            },
        );
    }
    let mut body = json!({
        "model": settings.name,
        "messages": sent,
        "temperature": settings.temperature,
    });
    if let Some(max_tokens) = settings.max_tokens {
        body["max_tokens"] = json!(max_tokens);
    }
    match mode {
        WireMode::JsonSchema => {
            body["response_format"] = json!({
                "type": "json_schema",
                "json_schema": {"name": call.schema_name, "schema": call.schema, "strict": true},
            });
        }
        WireMode::JsonObjectSchema => {
            body["response_format"] = json!({"type": "json_object", "schema": call.schema});
            body["guided_json"] = json!(call.schema);
        }
        WireMode::JsonObject => body["response_format"] = json!({"type": "json_object"}),
        WireMode::Prompt => {}
    }
    if settings.stream {
        // With `byot` the client does not set these itself.
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    PreparedRequest {
        body,
        messages: sent,
        mode,
        stream: settings.stream,
    }
}

/// The system message that carries the schema when the request does not enforce it.
fn schema_instructions(call: &Call<'_>) -> String {
    let schema = serde_json::to_string_pretty(call.schema).unwrap_or_default();
    format!(
        "Answer with exactly one JSON object and nothing else: no prose, no Markdown \
         fences. The object must match this JSON schema, named `{}`:\n{schema}",
        call.schema_name
    )
}
