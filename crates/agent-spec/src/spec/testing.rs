//! Helpers the spec's unit tests share: parsing a text as a spec file and taking
//! apart the error it gives.

use std::path::Path;

use crate::check::Observed;
use crate::errors::SpecError;
use crate::spec::{Spec, parse_spec};

pub(crate) const MINIMAL: &str = "prompt = \"print hi\"\nconditions = \"prints hi\"\n";

pub(crate) fn parse(text: &str) -> Result<Spec, SpecError> {
    parse_spec(Path::new("/specs/fizzbuzz.toml"), text)
}

/// The (line, column, message) of an `Invalid` error.
pub(crate) fn invalid(text: &str) -> (usize, usize, String) {
    match parse(text) {
        Err(SpecError::Invalid { location, message }) => {
            assert_eq!(location.path, Path::new("/specs/fizzbuzz.toml"));
            (location.line, location.column, message)
        }
        other => panic!("expected an invalid spec, got {other:?}"),
    }
}

pub(crate) fn observed(stdout: &str) -> Observed<'_> {
    Observed {
        exit_code: Some(0),
        stdout,
        stderr: "",
        stdout_truncated: false,
        stderr_truncated: false,
    }
}

/// The fenced blocks of `language` in the user guide (`docs/guide.md`) that contain
/// `marker`, so the examples it shows are tested to read as it says.
pub(crate) fn readme_blocks(language: &str, marker: &str) -> Vec<String> {
    let readme = include_str!("../../../../docs/guide.md");
    let fence = format!("```{language}\n");
    let mut blocks = Vec::new();
    let mut rest = readme;
    while let Some(start) = rest.find(&fence) {
        let body = &rest[start + fence.len()..];
        let end = body.find("```\n").unwrap_or(body.len());
        if body[..end].contains(marker) {
            blocks.push(body[..end].to_owned());
        }
        rest = &body[end..];
    }
    blocks
}
