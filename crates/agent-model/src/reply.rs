//! Turning what the endpoint answered (content, refusal, finish reason) into an
//! [`Answer`]: the one code path for live calls and replay, so a recorded bad reply
//! replays as the same answer.

use crate::model::Answer;
use crate::schema::{ReplySchema, parse_text};
use crate::transcript::ResponseRecord;

pub(crate) fn answer<T: ReplySchema>(response: &ResponseRecord) -> Answer<T> {
    let schema = T::NAME;
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

fn non_empty(text: Option<&str>) -> Option<&str> {
    text.filter(|text| !text.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{CodeBundle, Verdict};

    fn record(content: Option<&str>, finish_reason: Option<&str>) -> ResponseRecord {
        ResponseRecord {
            content: content.map(str::to_owned),
            finish_reason: finish_reason.map(str::to_owned),
            refusal: None,
            choices: 1,
        }
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
