//! A model call's result ([`Reply`], [`Answer`]) and how it is read from what the
//! endpoint answered (content, refusal, finish reason, a cut at the cap): the one code
//! path for live calls and replay, so a recorded bad reply replays as the same answer.

use std::time::Duration;

use agent_spec::BundleLimits;

use crate::message::Usage;
use crate::record::ResponseRecord;
use crate::schema::{CodeBundle, ReplySchema, parse_text};

/// One model call's result.
#[derive(Debug, Clone)]
pub struct Reply<T> {
    pub answer: Answer<T>,
    pub usage: Usage,
    pub latency: Duration,
    /// The part of `latency` spent waiting at the endpoint's gate (requests in flight,
    /// rate-limit pause) rather than for the model.
    pub queued: Duration,
    /// The reply text as received (for feedback when it does not parse).
    pub content: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Answer<T> {
    Parsed(T),
    /// The model declined (`refusal` set, or `finish_reason` `content_filter`).
    Refused(String),
    /// The reply was cut (`finish_reason` `length`), empty, not JSON, or JSON that
    /// breaks the schema: the text says which, in words fit to send back.
    Invalid(String),
}

/// The least an answer may weigh before it is cut off; a bundle of source files is
/// far smaller.
const MIN_ANSWER_CAP_BYTES: u64 = 8 * 1024 * 1024;

/// The most an answer may weigh: twice what a whole bundle may weigh (JSON escaping
/// and the envelope around the content), and never less than 8 MiB.
pub(crate) fn answer_cap(limits: &BundleLimits) -> u64 {
    limits
        .max_total_bytes
        .saturating_mul(2)
        .max(MIN_ANSWER_CAP_BYTES)
}

/// The answer `response` stands for; `limits` are named when it was cut off at the cap.
pub(crate) fn answer<T: ReplySchema>(
    response: &ResponseRecord,
    limits: &BundleLimits,
) -> Answer<T> {
    let schema = T::NAME;
    if response.truncated {
        return Answer::Invalid(too_large::<T>(response, limits));
    }
    if response.choices == 0 {
        return Answer::Invalid(format!(
            "the endpoint answered with no choices: answer again with one JSON object \
             matching the `{schema}` schema"
        ));
    }
    if let Some(refusal) = non_empty(response.refusal.as_deref()) {
        return Answer::Refused(refusal.to_owned());
    }
    match response.finish_reason.as_deref() {
        Some("content_filter") => {
            return Answer::Refused(
                non_empty(response.content.as_deref())
                    .unwrap_or("the endpoint's content filter withheld the reply")
                    .to_owned(),
            );
        }
        Some("length") => {
            return Answer::Invalid(format!(
                "the reply was cut at the token limit before it was complete: answer again, \
                 shorter (fewer or smaller files, no long comments), as one JSON object \
                 matching the `{schema}` schema"
            ));
        }
        // "stop", and values of other servers ("eos", "abort", …): read the content.
        _ => {}
    }
    let Some(content) = non_empty(response.content.as_deref()) else {
        return Answer::Invalid(format!(
            "the reply was empty: answer with one JSON object matching the `{schema}` schema"
        ));
    };
    match parse_text::<T>(content) {
        Ok(parsed) => Answer::Parsed(parsed),
        Err(message) => Answer::Invalid(message),
    }
}

/// Words the model can act on when its answer grew past the cap: what it sent, what
/// an answer and a bundle may weigh, and how to stay below.
fn too_large<T: ReplySchema>(response: &ResponseRecord, limits: &BundleLimits) -> String {
    let sent = match (response.announced_bytes, response.received_bytes) {
        (Some(announced), _) => format!("your reply was {}", size(announced)),
        (None, Some(received)) => format!("your reply grew past {}", size(received)),
        (None, None) => "your reply was too large".to_owned(),
    };
    let cap = size(answer_cap(limits));
    let schema = T::NAME;
    if schema != CodeBundle::SCHEMA_NAME {
        return format!(
            "{sent} and was cut off at {cap}, the most a reply may weigh: answer again, \
             briefly, as one JSON object matching the `{schema}` schema"
        );
    }
    format!(
        "{sent} and was cut off at {cap}, the most a reply may weigh. A bundle may hold at \
         most {} files of at most {} each, {} in all (the `[bundle]` limits): answer again \
         with only the files the program needs, without large data (create it at build or \
         run time instead), as one JSON object matching the `{schema}` schema",
        limits.max_files,
        size(limits.max_file_bytes),
        size(limits.max_total_bytes),
    )
}

/// `1.5 MiB`, `512 KiB`, `100 bytes`.
fn size(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    match bytes {
        _ if bytes >= MIB => format!("{:.1} MiB", bytes as f64 / MIB as f64),
        _ if bytes >= KIB => format!("{} KiB", bytes / KIB),
        _ => format!("{bytes} bytes"),
    }
}

fn non_empty(text: Option<&str>) -> Option<&str> {
    text.filter(|text| !text.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::{Answer, ResponseRecord, size};
    use crate::schema::{CodeBundle, ReplySchema, Verdict};
    use agent_spec::BundleLimits;

    fn record(content: Option<&str>, finish_reason: Option<&str>) -> ResponseRecord {
        ResponseRecord {
            content: content.map(str::to_owned),
            finish_reason: finish_reason.map(str::to_owned),
            choices: 1,
            ..ResponseRecord::default()
        }
    }

    fn answer<T: ReplySchema>(response: &ResponseRecord) -> Answer<T> {
        super::answer(response, &BundleLimits::default())
    }

    #[test]
    fn a_truncated_answer_is_invalid_with_its_size_and_the_bundle_limits() {
        let cut = ResponseRecord {
            truncated: true,
            received_bytes: Some(8 * 1024 * 1024 + 10),
            announced_bytes: Some(48_000_000),
            ..record(Some("{}"), Some("stop"))
        };
        let Answer::Invalid(text) = answer::<CodeBundle>(&cut) else {
            panic!("a cut answer is invalid");
        };
        assert!(text.contains("your reply was 45.8 MiB"), "{text}");
        assert!(text.contains("cut off at 8.0 MiB"), "{text}");
        assert!(
            text.contains("at most 64 files of at most 1.0 MiB each, 4.0 MiB in all"),
            "{text}"
        );
        assert!(text.contains("`[bundle]`"), "{text}");
        let streamed = ResponseRecord {
            announced_bytes: None,
            ..cut
        };
        let Answer::Invalid(text) = answer::<Verdict>(&streamed) else {
            panic!("a cut answer is invalid");
        };
        assert!(text.contains("grew past 8.0 MiB"), "{text}");
        assert!(!text.contains("[bundle]"), "{text}");
        assert_eq!(size(100), "100 bytes");
        assert_eq!(size(2048), "2 KiB");
    }

    #[test]
    fn content_filter_is_a_refusal_and_length_is_invalid() {
        let filtered = answer::<Verdict>(&record(None, Some("content_filter")));
        assert!(matches!(filtered, Answer::Refused(text) if text.contains("content filter")));
        let cut = answer::<CodeBundle>(&record(Some("{\"summary\": \"x\"}"), Some("length")));
        assert!(matches!(cut, Answer::Invalid(text) if text.contains("token limit")));
    }

    #[test]
    fn unknown_finish_reasons_parse_the_content() {
        let parsed = answer::<Verdict>(&record(Some("{\"pass\": false}"), Some("abort")));
        assert_eq!(
            parsed,
            Answer::Parsed(Verdict {
                pass: false,
                reason: String::new()
            })
        );
    }

    #[test]
    fn empty_content_is_invalid() {
        let empty = answer::<Verdict>(&record(Some("  "), Some("stop")));
        assert!(matches!(empty, Answer::Invalid(text) if text.contains("empty")));
    }
}
