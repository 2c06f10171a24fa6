//! `transcript.jsonl`: one line per model call (request, response, usage, latency),
//! and reading it back for replay.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::errors::ModelError;
use crate::record::Entry;

/// Appends entries to a run's transcript, one flushed line each.
#[derive(Debug)]
pub(crate) struct TranscriptWriter {
    path: PathBuf,
    file: File,
}

impl TranscriptWriter {
    pub fn create(path: &Path) -> Result<TranscriptWriter, ModelError> {
        let file = File::create(path).map_err(|source| ModelError::TranscriptWrite {
            path: path.to_owned(),
            source,
        })?;
        Ok(TranscriptWriter {
            path: path.to_owned(),
            file,
        })
    }

    pub fn append(&mut self, entry: &Entry) -> Result<(), ModelError> {
        let mut line = serde_json::to_vec(entry).map_err(|error| ModelError::TranscriptWrite {
            path: self.path.clone(),
            source: std::io::Error::other(error),
        })?;
        line.push(b'\n');
        // One write per line, flushed at once, so a crash leaves whole lines behind.
        self.file
            .write_all(&line)
            .and_then(|()| self.file.flush())
            .map_err(|source| ModelError::TranscriptWrite {
                path: self.path.clone(),
                source,
            })
    }
}

/// Every entry of a transcript file, in order. Blank lines are skipped.
pub(crate) fn read(path: &Path) -> Result<Vec<Entry>, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|source| ModelError::ReplayRead {
        path: path.to_owned(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str::<Entry>(line).map_err(|error| ModelError::ReplayParse {
                path: path.to_owned(),
                line: index + 1,
                message: error.to_string(),
            })
        })
        .collect()
}

/// The successful calls recorded for `spec`, in order; when no line names it but the
/// file holds a single spec, that spec's calls (a transcript replays for a renamed spec).
pub(crate) fn calls_for(entries: &[Entry], spec: &str) -> Vec<Entry> {
    let specs: BTreeSet<&str> = entries.iter().map(|entry| entry.spec.as_str()).collect();
    let wanted = if specs.contains(spec) || specs.len() != 1 {
        spec
    } else {
        specs.first().copied().unwrap_or(spec)
    };
    entries
        .iter()
        .filter(|entry| entry.spec == wanted && entry.error.is_none() && entry.response.is_some())
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Purpose, Usage};
    use crate::record::RequestRecord;
    use crate::record::ResponseRecord;

    fn entry(spec: &str, schema: &str, error: Option<&str>) -> Entry {
        Entry {
            spec: spec.to_owned(),
            iteration: 1,
            purpose: Purpose::Generate,
            schema: schema.to_owned(),
            model: "m".to_owned(),
            request: RequestRecord {
                messages: Vec::new(),
                temperature: 0.2,
                response_format: "json_schema".to_owned(),
                stream: false,
            },
            response: error.is_none().then(ResponseRecord::default),
            usage: Usage::default(),
            latency_ms: 1,
            attempts: 1,
            error: error.map(str::to_owned),
            started_at: String::new(),
            candidate: None,
            queued_ms: 0,
        }
    }

    #[test]
    fn calls_for_a_spec_skip_failed_calls_and_other_specs() {
        let entries = vec![
            entry("a", "code_bundle", None),
            entry("b", "code_bundle", None),
            entry("a", "code_bundle", Some("timeout")),
            entry("a", "verdict", None),
        ];
        let calls = calls_for(&entries, "a");
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[1].schema, "verdict");
        assert!(
            calls_for(&entries, "renamed").is_empty(),
            "two specs: no guess"
        );
    }

    #[test]
    fn a_single_spec_transcript_replays_for_a_renamed_spec() {
        let entries = vec![entry("a", "code_bundle", None), entry("a", "verdict", None)];
        assert_eq!(calls_for(&entries, "renamed").len(), 2);
    }

    #[test]
    fn written_lines_read_back_and_a_bad_line_names_its_number() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("transcript.jsonl");
        let mut writer = TranscriptWriter::create(&path).unwrap();
        let first = entry("a", "code_bundle", None);
        writer.append(&first).unwrap();
        writer.append(&entry("a", "verdict", Some("boom"))).unwrap();
        let read_back = read(&path).unwrap();
        assert_eq!(read_back.len(), 2);
        assert_eq!(read_back[0], first);

        std::fs::write(&path, "{\"spec\": \"a\"}\nnot json\n").unwrap();
        match read(&path) {
            Err(ModelError::ReplayParse { line, .. }) => assert_eq!(line, 1),
            other => panic!("expected a parse error, got {other:?}"),
        }
    }
}
