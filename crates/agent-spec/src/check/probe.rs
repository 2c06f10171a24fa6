//! [`Probe`]: one HTTP request to a running service and what its response must be,
//! judged from [`ProbeFacts`] (what the engine's probe got back) into results of group
//! `probe:<name>`.
//!
//! A `json` expectation is a subset of the JSON body: an object matches when each
//! expected key is present and its value matches in turn (extra keys are fine); an
//! array matches an array of the same length whose elements match in order; numbers
//! match when they are equal as numbers (`5` matches `5` and `5.0`); other scalars
//! match when equal.

use std::collections::BTreeMap;

use regex::Regex;

use crate::check::result::CheckResult;
use crate::check::text::{self, QUOTE_LIMIT, Stream, clip, quote};

/// A probe as the spec gives it, validated.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Probe {
    /// Unique within the spec; results are of group `probe:<name>`.
    pub name: String,
    /// An HTTP token; `GET` unless the spec says otherwise.
    pub method: String,
    /// Starts with `/`; may carry a query.
    pub path: String,
    /// Names are HTTP tokens, values free of line breaks.
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
    /// The exact status wanted; `None`: any 2xx.
    pub status: Option<u16>,
    pub expect: Option<BodyExpectation>,
}

/// At most one expectation on the response body.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyExpectation {
    Contains(String),
    Equals(String),
    Matches(#[serde(serialize_with = "crate::check::text::pattern")] Regex),
    /// A subset of the JSON body (see the module's rule).
    Json(serde_json::Value),
}

/// What the engine's probe got back.
#[derive(Debug, Clone, Copy)]
pub struct ProbeFacts<'a> {
    /// The response, or why there was none (refused, timed out, not HTTP), worded.
    pub response: Result<ProbeResponse<'a>, &'a str>,
}

/// A response as the probe read it; its body may be cut at the probe's limit.
#[derive(Debug, Clone, Copy)]
pub struct ProbeResponse<'a> {
    pub status: u16,
    pub body: &'a [u8],
    pub body_truncated: bool,
}

impl BodyExpectation {
    /// What the body must be, in words for the model.
    pub fn describe(&self) -> String {
        let quoted = |text: &str| serde_json::to_string(&clip(text, 1024)).unwrap_or_default();
        match self {
            BodyExpectation::Contains(text) => format!("a body containing {}", quoted(text)),
            BodyExpectation::Equals(text) => format!("a body equal to {}", quoted(text)),
            BodyExpectation::Matches(regex) => {
                format!("a body matching the regex `{}`", regex.as_str())
            }
            BodyExpectation::Json(value) => format!(
                "a JSON body holding {value} (other keys may be present; numbers compare as numbers)"
            ),
        }
    }

    /// The spec key this expectation came from, which names its result.
    pub fn key(&self) -> &'static str {
        match self {
            BodyExpectation::Contains(_) => "body_contains",
            BodyExpectation::Equals(_) => "body_equals",
            BodyExpectation::Matches(_) => "body_matches",
            BodyExpectation::Json(_) => "json",
        }
    }
}

impl Probe {
    /// The group of this probe's results.
    pub fn group(&self) -> String {
        format!("probe:{}", self.name)
    }

    /// `METHOD /path`, as details name the request.
    fn request(&self) -> String {
        format!("{} {}", self.method, clip(&self.path, QUOTE_LIMIT))
    }

    /// One result for the status and one for the body expectation, if any; a request
    /// that got no response fails both.
    pub fn judge(&self, facts: &ProbeFacts<'_>) -> Vec<CheckResult> {
        let group = self.group();
        let request = self.request();
        let response = match facts.response {
            Ok(response) => response,
            Err(reason) => {
                let detail = format!("{request}: no response: {}", clip(reason, QUOTE_LIMIT));
                let mut results = vec![CheckResult::new(
                    &group,
                    "status".to_owned(),
                    false,
                    detail.clone(),
                )];
                if let Some(expect) = &self.expect {
                    results.push(CheckResult::new(
                        &group,
                        expect.key().to_owned(),
                        false,
                        detail,
                    ));
                }
                return results;
            }
        };
        let body = String::from_utf8_lossy(response.body);
        let stream = Stream {
            name: "the body",
            text: &body,
            truncated: response.body_truncated,
        };
        let mut results = vec![self.judge_status(&group, &request, response.status, stream)];
        if let Some(expect) = &self.expect {
            let (passed, detail) = judge_body(expect, stream);
            results.push(CheckResult::new(
                &group,
                expect.key().to_owned(),
                passed,
                format!("{request}: {detail}"),
            ));
        }
        results
    }

    fn judge_status(
        &self,
        group: &str,
        request: &str,
        status: u16,
        body: Stream<'_>,
    ) -> CheckResult {
        let (passed, wanted) = match self.status {
            Some(wanted) => (status == wanted, wanted.to_string()),
            None => ((200..300).contains(&status), "any 2xx".to_owned()),
        };
        let detail = if passed {
            format!("{request}: status {status}")
        } else {
            format!(
                "{request}: expected status {wanted}, got {status}\n{}",
                text::shown(body)
            )
        };
        CheckResult::new(group, "status".to_owned(), passed, detail)
    }
}

fn judge_body(expect: &BodyExpectation, body: Stream<'_>) -> (bool, String) {
    match expect {
        BodyExpectation::Contains(wanted) => text::contains(wanted, body),
        BodyExpectation::Matches(regex) => text::matches(regex, body),
        BodyExpectation::Equals(wanted) if body.text == wanted && !body.truncated => {
            (true, "the body is as expected".to_owned())
        }
        BodyExpectation::Equals(wanted) => (
            false,
            format!("expected the body {}\n{}", quote(wanted), text::shown(body)),
        ),
        BodyExpectation::Json(wanted) => match serde_json::from_str(body.text) {
            Err(error) => (
                false,
                format!("the body is not JSON ({error})\n{}", text::shown(body)),
            ),
            Ok(actual) => match json_difference(wanted, &actual, "$") {
                None => (true, "the JSON body holds what is expected".to_owned()),
                Some(difference) => (
                    false,
                    format!("the JSON body differs: {difference}\n{}", text::shown(body)),
                ),
            },
        },
    }
}

/// Where `actual` first fails to hold `wanted` under the subset rule, if anywhere.
fn json_difference(
    wanted: &serde_json::Value,
    actual: &serde_json::Value,
    at: &str,
) -> Option<String> {
    use serde_json::Value;
    match (wanted, actual) {
        (Value::Object(wanted), Value::Object(actual)) => wanted.iter().find_map(|(key, value)| {
            let at = format!("{at}.{key}");
            match actual.get(key) {
                None => Some(format!("{at} is missing")),
                Some(found) => json_difference(value, found, &at),
            }
        }),
        (Value::Array(wanted), Value::Array(actual)) if wanted.len() != actual.len() => {
            Some(format!(
                "{at} has {} elements, expected {}",
                actual.len(),
                wanted.len()
            ))
        }
        (Value::Array(wanted), Value::Array(actual)) => wanted
            .iter()
            .zip(actual)
            .enumerate()
            .find_map(|(index, (value, found))| {
                json_difference(value, found, &format!("{at}[{index}]"))
            }),
        (Value::Number(wanted), Value::Number(actual)) if same_number(wanted, actual) => None,
        (wanted, actual) if wanted == actual => None,
        (wanted, actual) => Some(format!(
            "{at} is {}, expected {}",
            clip(&actual.to_string(), QUOTE_LIMIT),
            clip(&wanted.to_string(), QUOTE_LIMIT)
        )),
    }
}

/// Integers compare exactly; otherwise as floating point, so `5` equals `5.0`.
fn same_number(wanted: &serde_json::Number, actual: &serde_json::Number) -> bool {
    match (wanted.as_i64(), actual.as_i64()) {
        (Some(wanted), Some(actual)) => wanted == actual,
        _ => wanted.as_f64() == actual.as_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(status: Option<u16>, expect: Option<BodyExpectation>) -> Probe {
        Probe {
            name: "add".to_owned(),
            method: "POST".to_owned(),
            path: "/add?a=2".to_owned(),
            headers: BTreeMap::new(),
            body: None,
            status,
            expect,
        }
    }

    fn answered(status: u16, body: &str) -> ProbeFacts<'_> {
        ProbeFacts {
            response: Ok(ProbeResponse {
                status,
                body: body.as_bytes(),
                body_truncated: false,
            }),
        }
    }

    fn json(expected: serde_json::Value, body: &str) -> CheckResult {
        let results =
            probe(None, Some(BodyExpectation::Json(expected))).judge(&answered(200, body));
        results[1].clone()
    }

    #[test]
    fn status_defaults_to_any_2xx_and_names_the_request() {
        let results = probe(None, None).judge(&answered(204, ""));
        assert_eq!(results.len(), 1);
        assert!(results[0].passed);
        assert_eq!(results[0].group, "probe:add");
        assert_eq!(results[0].name, "status");
        let results = probe(None, None).judge(&answered(404, "no such route"));
        assert!(!results[0].passed);
        assert!(
            results[0]
                .detail
                .starts_with("POST /add?a=2: expected status any 2xx, got 404"),
            "{}",
            results[0].detail
        );
        assert!(results[0].detail.contains("no such route"));
        let exact = probe(Some(201), None);
        assert!(!exact.judge(&answered(200, ""))[0].passed);
        assert!(exact.judge(&answered(201, ""))[0].passed);
    }

    #[test]
    fn no_response_fails_every_expectation_with_the_reason() {
        let probe = probe(None, Some(BodyExpectation::Contains("5".to_owned())));
        let results = probe.judge(&ProbeFacts {
            response: Err("connection refused"),
        });
        assert_eq!(results.len(), 2);
        assert!(results.iter().all(|result| !result.passed));
        assert_eq!(results[1].name, "body_contains");
        assert_eq!(
            results[1].detail,
            "POST /add?a=2: no response: connection refused"
        );
    }

    #[test]
    fn body_contains_equals_and_matches() {
        let contains = probe(None, Some(BodyExpectation::Contains("5".to_owned())));
        assert!(contains.judge(&answered(200, "sum=5"))[1].passed);
        assert!(!contains.judge(&answered(200, "sum=6"))[1].passed);
        let equals = probe(None, Some(BodyExpectation::Equals("5".to_owned())));
        assert!(equals.judge(&answered(200, "5"))[1].passed);
        let failed = &equals.judge(&answered(200, "5\n"))[1];
        assert!(!failed.passed);
        assert!(
            failed.detail.contains("expected the body \"5\""),
            "{}",
            failed.detail
        );
        let cut = probe(None, Some(BodyExpectation::Equals("5".to_owned()))).judge(&ProbeFacts {
            response: Ok(ProbeResponse {
                status: 200,
                body: b"5",
                body_truncated: true,
            }),
        });
        assert!(!cut[1].passed, "a cut body proves no equality");
        let matches = probe(
            None,
            Some(BodyExpectation::Matches(Regex::new("^sum=\\d+$").unwrap())),
        );
        assert!(matches.judge(&answered(200, "sum=12"))[1].passed);
        assert!(!matches.judge(&answered(200, "sum=x"))[1].passed);
    }

    #[test]
    fn json_is_a_subset_by_key_with_arrays_in_order_and_numbers_as_numbers() {
        use serde_json::json as v;
        assert!(json(v!({"sum": 5}), r#"{"sum": 5, "extra": true}"#).passed);
        assert!(json(v!({"sum": 5}), r#"{"sum": 5.0}"#).passed);
        assert!(json(v!({"sum": 5.0}), r#"{"sum": 5}"#).passed);
        assert!(
            json(
                v!({"a": {"b": [1, {"c": "x"}]}}),
                r#"{"a": {"b": [1, {"c": "x", "d": 2}]}}"#
            )
            .passed
        );
        let missing = json(v!({"sum": 5}), r#"{"total": 5}"#);
        assert!(!missing.passed);
        assert!(
            missing.detail.contains("$.sum is missing"),
            "{}",
            missing.detail
        );
        let wrong = json(v!({"a": [1, 2]}), r#"{"a": [1, 3]}"#);
        assert!(
            wrong.detail.contains("$.a[1] is 3, expected 2"),
            "{}",
            wrong.detail
        );
        let longer = json(v!([1]), "[1, 2]");
        assert!(
            longer.detail.contains("$ has 2 elements, expected 1"),
            "{}",
            longer.detail
        );
        assert!(
            !json(v!({"sum": "5"}), r#"{"sum": 5}"#).passed,
            "types differ"
        );
        assert!(
            !json(
                v!({"n": 9007199254740993_i64}),
                r#"{"n": 9007199254740992}"#
            )
            .passed
        );
        let not_json = json(v!({"sum": 5}), "sum=5");
        assert!(
            not_json.detail.contains("the body is not JSON"),
            "{}",
            not_json.detail
        );
    }
}
