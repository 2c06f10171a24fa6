//! The two reply schemas, `code_bundle` and `verdict`, as Rust types and as the JSON
//! schemas sent with `response_format`.

use serde::{Deserialize, Serialize};

/// The answer to the first request and to every repair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodeBundle {
    pub summary: String,
    /// `None` in a repair: unchanged.
    pub dockerfile: Option<String>,
    pub files: Vec<BundleFile>,
    pub delete: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleFile {
    pub filename: String,
    pub content: String,
}

/// The judge's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub pass: bool,
    pub reason: String,
}
