//! A run's outputs for the next steps of a CI job — `verified`, `images`, `report`,
//! `attestations` — as GitHub's `GITHUB_OUTPUT` blocks and as a GitLab dotenv file.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::summary::SpecSummary;

/// The dotenv file GitLab reads (`artifacts: reports: dotenv`), written in `--out`.
pub const DOTENV_FILE: &str = "agent.env";

/// What a run hands to the steps after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outputs {
    /// Every spec verified.
    pub verified: bool,
    /// Spec name → `repository@sha256:…`, pushed images only.
    pub images: BTreeMap<String, String>,
    /// The HTML report of this run's specs, when one was written.
    pub report: Option<PathBuf>,
    /// The attestation envelopes written, one path each.
    pub attestations: Vec<PathBuf>,
}

impl Outputs {
    pub fn of(summaries: &[SpecSummary], report: Option<PathBuf>) -> Outputs {
        Outputs {
            verified: summaries.iter().all(|summary| summary.verified),
            images: summaries
                .iter()
                .filter_map(|summary| Some((summary.spec.clone(), summary.pushed.clone()?)))
                .collect(),
            report,
            attestations: summaries
                .iter()
                .flat_map(|summary| summary.attestations.iter().cloned())
                .collect(),
        }
    }

    /// Name and value of each output; `attestations` one path per line.
    fn pairs(&self) -> [(&'static str, String); 4] {
        [
            ("verified", self.verified.to_string()),
            (
                "images",
                serde_json::to_string(&self.images).expect("a map of strings serialises"),
            ),
            (
                "report",
                self.report
                    .as_ref()
                    .map(|path| path.display().to_string())
                    .unwrap_or_default(),
            ),
            (
                "attestations",
                self.attestations
                    .iter()
                    .map(|path| path.display().to_string())
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
        ]
    }

    /// `name<<delimiter` blocks, safe for any value: the delimiter is random and
    /// never part of the value.
    pub fn github(&self) -> String {
        let mut text = String::new();
        for (name, value) in self.pairs() {
            let delimiter = delimiter_for(&value);
            text.push_str(&format!("{name}<<{delimiter}\n{value}\n{delimiter}\n"));
        }
        text
    }

    /// `AGENT_<NAME>=value` lines; dotenv values are one line, so `attestations` is a
    /// JSON array there.
    pub fn dotenv(&self) -> String {
        let mut text = String::new();
        for (name, value) in self.pairs() {
            let value = if name == "attestations" {
                serde_json::to_string(&self.attestations).expect("paths serialise")
            } else {
                value
            };
            let value = value.replace(['\n', '\r'], " ");
            text.push_str(&format!("AGENT_{}={value}\n", name.to_uppercase()));
        }
        text
    }
}

/// A heredoc delimiter that does not occur in `value`.
fn delimiter_for(value: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    loop {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_usize(value.len());
        let delimiter = format!("ghadelimiter_{:016x}", hasher.finish());
        if !value.contains(&delimiter) {
            return delimiter;
        }
    }
}

/// Appends `text` to the file at `path` (GitHub's output file is shared by the step).
pub fn append(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs() -> Outputs {
        Outputs {
            verified: false,
            images: BTreeMap::from([(
                "hello".to_owned(),
                "127.0.0.1:5000/team/hello@sha256:ab".to_owned(),
            )]),
            report: Some(PathBuf::from("/w/runs/report.html")),
            attestations: vec![
                PathBuf::from("/a/1.dsse.json"),
                PathBuf::from("/a/2.dsse.json"),
            ],
        }
    }

    /// Reads `GITHUB_OUTPUT` text as the runner does; every output is a block.
    fn parse_github(text: &str) -> BTreeMap<String, String> {
        let values = agent_testkit::github_outputs(text);
        assert_eq!(text.matches("<<").count(), values.len(), "a block each");
        values
    }

    #[test]
    fn github_blocks_hold_every_output_whatever_its_lines() {
        let values = parse_github(&outputs().github());
        assert_eq!(values["verified"], "false");
        assert_eq!(
            values["images"],
            r#"{"hello":"127.0.0.1:5000/team/hello@sha256:ab"}"#
        );
        assert_eq!(values["report"], "/w/runs/report.html");
        assert_eq!(values["attestations"], "/a/1.dsse.json\n/a/2.dsse.json");
    }

    #[test]
    fn an_empty_output_is_an_empty_block() {
        let empty = Outputs {
            verified: true,
            images: BTreeMap::new(),
            report: None,
            attestations: Vec::new(),
        };
        let values = parse_github(&empty.github());
        assert_eq!(values["images"], "{}");
        assert_eq!(values["attestations"], "");
    }

    #[test]
    fn dotenv_is_one_line_per_output() {
        assert_eq!(
            outputs().dotenv(),
            "AGENT_VERIFIED=false\nAGENT_IMAGES={\"hello\":\"127.0.0.1:5000/team/hello@sha256:ab\"}\nAGENT_REPORT=/w/runs/report.html\nAGENT_ATTESTATIONS=[\"/a/1.dsse.json\",\"/a/2.dsse.json\"]\n"
        );
    }
}
