//! [`CheckResult`], what every kind of check gives: one verdict with its evidence.

use crate::check::text::{DETAIL_LIMIT, cap};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CheckResult {
    /// What the check belongs to: the case's name, `image`, `file`, the
    /// structure-test file as the spec names it, or `probe:<name>`.
    #[serde(default)]
    pub group: String,
    pub name: String,
    pub passed: bool,
    /// For a failure: expected vs actual, short enough to feed back (long text is
    /// shown as head and tail, the first differing line pointed out for `*_equals`).
    /// For a pass: a few words.
    pub detail: String,
}

impl CheckResult {
    /// A result with its detail capped, so no kind of check can flood the feedback.
    pub fn new(group: &str, name: String, passed: bool, detail: String) -> Self {
        CheckResult {
            group: group.to_owned(),
            name,
            passed,
            detail: cap(&detail, DETAIL_LIMIT),
        }
    }
}
