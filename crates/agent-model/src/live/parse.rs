//! Reading what a server answered, leniently: plain completions, streamed deltas put
//! back together, error objects where a completion was expected, error bodies.

use serde_json::Value;

use crate::backend::Answered;
use crate::live::attempt::{AttemptError, HttpFailure};
use crate::message::Usage;
use crate::record::ResponseRecord;

/// How much of an error body's text goes into [`crate::ModelError::Status`].
pub(crate) const MAX_ERROR_MESSAGE_CHARS: usize = 400;

/// The message of an error body: `error.message`, `message`, `error` or `detail`,
/// else the text itself; shortened.
pub(crate) fn summarize_error_body(body: &str) -> String {
    let message = serde_json::from_str::<Value>(body).ok().and_then(|value| {
        [
            value.pointer("/error/message"),
            value.get("message"),
            value.get("error"),
            value.get("detail"),
        ]
        .into_iter()
        .flatten()
        .find_map(|field| field.as_str().map(str::to_owned))
    });
    let message = message.unwrap_or_else(|| body.trim().to_owned());
    if message.is_empty() {
        "(no body)".to_owned()
    } else {
        truncate(&message, MAX_ERROR_MESSAGE_CHARS)
    }
}

pub(crate) fn truncate(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// An error object where a completion was expected: vLLM's flat
/// `{"object": "error", "code": 400}` or OpenAI's `{"error": {…}}`, in a 200 answer
/// or inside a stream.
fn embedded_error(value: &Value) -> Option<AttemptError> {
    let flat = value.get("object").and_then(Value::as_str) == Some("error");
    let nested = value.get("error").is_some_and(|error| !error.is_null());
    if !flat && !nested {
        return None;
    }
    let status = [value.get("code"), value.pointer("/error/code")]
        .into_iter()
        .flatten()
        .find_map(Value::as_u64)
        .and_then(|code| u16::try_from(code).ok())
        .filter(|code| (400..600).contains(code))
        .unwrap_or(502);
    Some(AttemptError::Http(HttpFailure {
        status,
        retry_after: None,
        body: value.to_string(),
    }))
}

fn read_usage(value: &Value) -> Option<Usage> {
    let usage = value.get("usage").filter(|usage| usage.is_object())?;
    let count = |field: &str| usage.get(field).and_then(Value::as_u64).unwrap_or(0);
    Some(Usage {
        prompt_tokens: count("prompt_tokens"),
        completion_tokens: count("completion_tokens"),
    })
}

/// Message content: a string, or the text parts of a content array.
fn text_of(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) => Some(text.clone()),
        Value::Array(parts) => Some(
            parts
                .iter()
                .filter_map(|part| part.get("text").and_then(Value::as_str))
                .collect(),
        ),
        _ => None,
    }
}

/// A plain (non-streamed) completion, read leniently.
pub(crate) fn read_completion(completion: &Value) -> Result<Answered, AttemptError> {
    if let Some(error) = embedded_error(completion) {
        return Err(error);
    }
    if !completion.is_object() {
        return Err(AttemptError::Malformed(format!(
            "the answer is not a chat completion: {}",
            truncate(&completion.to_string(), MAX_ERROR_MESSAGE_CHARS)
        )));
    }
    let choices = completion
        .get("choices")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let first = choices.first();
    let message = first.and_then(|choice| choice.get("message"));
    Ok(Answered {
        response: ResponseRecord {
            content: text_of(message.and_then(|message| message.get("content"))),
            refusal: text_of(message.and_then(|message| message.get("refusal"))),
            finish_reason: first
                .and_then(|choice| choice.get("finish_reason"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            choices: choices.len(),
            ..ResponseRecord::default()
        },
        usage: read_usage(completion).unwrap_or_default(),
    })
}

/// Deltas of a streamed completion, put back together.
#[derive(Default)]
pub(crate) struct StreamAssembly {
    content: Option<String>,
    refusal: Option<String>,
    finish_reason: Option<String>,
    saw_choice: bool,
    usage: Option<Usage>,
}

impl StreamAssembly {
    pub fn add(&mut self, chunk: &Value) -> Result<(), AttemptError> {
        if let Some(error) = embedded_error(chunk) {
            return Err(error);
        }
        if let Some(usage) = read_usage(chunk) {
            self.usage = Some(usage);
        }
        let choices = chunk
            .get("choices")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        // Only the first choice is asked for (`n` is never sent).
        for choice in choices
            .iter()
            .filter(|choice| choice.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
        {
            self.saw_choice = true;
            let delta = choice.get("delta").or_else(|| choice.get("message"));
            if let Some(piece) = text_of(delta.and_then(|delta| delta.get("content"))) {
                self.content
                    .get_or_insert_with(String::new)
                    .push_str(&piece);
            }
            if let Some(piece) = text_of(delta.and_then(|delta| delta.get("refusal"))) {
                self.refusal
                    .get_or_insert_with(String::new)
                    .push_str(&piece);
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                self.finish_reason = Some(reason.to_owned());
            }
        }
        Ok(())
    }

    pub fn finish(self) -> Answered {
        Answered {
            response: ResponseRecord {
                content: self.content,
                refusal: self.refusal,
                finish_reason: self.finish_reason,
                choices: usize::from(self.saw_choice),
                ..ResponseRecord::default()
            },
            usage: self.usage.unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn error_bodies_are_summarized_from_their_message() {
        assert_eq!(
            summarize_error_body(r#"{"object":"error","message":"bad schema","code":400}"#),
            "bad schema"
        );
        assert_eq!(
            summarize_error_body(r#"{"error":{"message":"nope","code":"x"}}"#),
            "nope"
        );
        assert_eq!(summarize_error_body("plain text"), "plain text");
        assert_eq!(summarize_error_body(""), "(no body)");
        assert_eq!(truncate("abcdef", 3), "abc…");
    }

    #[test]
    fn a_streamed_error_object_keeps_its_integer_code_as_status() {
        let error = embedded_error(&json!({"object": "error", "message": "m", "code": 429}));
        assert!(matches!(
            error,
            Some(AttemptError::Http(HttpFailure { status: 429, .. }))
        ));
        assert!(embedded_error(&json!({"choices": [], "error": null})).is_none());
    }
}
