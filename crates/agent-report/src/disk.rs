//! The run directory as it lies on disk (its layout and `report.json`'s records are
//! `agent_run_dir`'s): `report.json`, `iterations/<n>/…` and `transcript.jsonl`.
//!
//! Every record has defaults, so a run directory written by an older or newer
//! `agent` (fields added or missing) still reads; the page shows what is there. The
//! transcript's lines are read into types of this crate's own, with the fields the
//! page shows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use agent_run_dir::{IterationDir, RunDir};
use serde::Deserialize;

use crate::errors::ReportError;

/// `report.json` as the page reads it: its outcome and stop-reason words as text, since
/// a newer `agent` may write words this one does not know, and the page shows them.
pub type RunReport = agent_run_dir::Report<String, String>;

/// One entry of `history`, and `iterations/<n>/result.json`.
pub type IterationRecord = agent_run_dir::IterationRecord<String>;

/// One entry of `candidates`.
pub type CandidateRecord = agent_run_dir::CandidateRecord<String>;

pub use agent_run_dir::report::CheckResult;

/// One line of `transcript.jsonl`: one model call.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ModelCall {
    pub iteration: u32,
    pub purpose: String,
    pub request: Request,
    pub response: Option<Response>,
    pub usage: CallUsage,
    pub latency_ms: u64,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Request {
    pub messages: Vec<Message>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Message {
    pub role: String,
    pub content: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Response {
    pub content: Option<String>,
    pub refusal: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct CallUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// A file of a bundle: its path inside the bundle and its bytes as stored.
pub type BundleFiles = BTreeMap<String, Vec<u8>>;

/// What one iteration left on disk.
#[derive(Debug, Clone, Default)]
pub struct IterationOnDisk {
    pub record: IterationRecord,
    /// `None` when no bundle was written (an invalid reply never gets one).
    pub bundle: Option<BundleFiles>,
    pub build_log: Option<Vec<u8>>,
    pub stdout: Option<Vec<u8>>,
    pub stderr: Option<Vec<u8>>,
}

/// Everything the page shows about one run directory.
#[derive(Debug, Clone, Default)]
pub struct RunOnDisk {
    pub dir: PathBuf,
    pub report: RunReport,
    pub iterations: Vec<IterationOnDisk>,
    pub calls: Vec<ModelCall>,
}

/// Reads a run directory. Only `report.json` must be there and parse; every other
/// file is shown when present and readable.
pub fn read_run(dir: &Path) -> Result<RunOnDisk, ReportError> {
    let layout = RunDir::new(dir);
    let report_path = layout.report_json();
    let text = std::fs::read(&report_path).map_err(|source| ReportError::Read {
        path: report_path.clone(),
        source,
    })?;
    let report: RunReport =
        serde_json::from_slice(&text).map_err(|source| ReportError::ParseReport {
            path: report_path,
            source,
        })?;
    let iterations = iteration_numbers(&layout, &report)
        .into_iter()
        .map(|number| read_iteration(&layout.iteration(number), &report, number))
        .collect();
    Ok(RunOnDisk {
        dir: dir.to_owned(),
        calls: read_transcript(&layout.transcript()),
        iterations,
        report,
    })
}

/// The iterations named in `history` and those with a folder of their own (a run
/// that stopped before writing its report still has its folders).
fn iteration_numbers(dir: &RunDir, report: &RunReport) -> Vec<u32> {
    let mut numbers: Vec<u32> = report
        .history
        .iter()
        .map(|record| record.iteration)
        .collect();
    if let Ok(entries) = std::fs::read_dir(dir.iterations()) {
        numbers.extend(
            entries
                .flatten()
                .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok()),
        );
    }
    numbers.sort_unstable();
    numbers.dedup();
    numbers
}

fn read_iteration(folder: &IterationDir, report: &RunReport, number: u32) -> IterationOnDisk {
    let from_file = std::fs::read(folder.result_json())
        .ok()
        .and_then(|bytes| serde_json::from_slice::<IterationRecord>(&bytes).ok());
    let record = from_file
        .or_else(|| {
            report
                .history
                .iter()
                .find(|record| record.iteration == number)
                .cloned()
        })
        .unwrap_or_else(|| IterationRecord {
            iteration: number,
            ..IterationRecord::default()
        });
    let bundle_dir = folder.bundle();
    IterationOnDisk {
        record,
        bundle: bundle_dir.is_dir().then(|| read_tree(&bundle_dir)),
        build_log: std::fs::read(folder.build_log()).ok(),
        stdout: std::fs::read(folder.stdout()).ok(),
        stderr: std::fs::read(folder.stderr()).ok(),
    }
}

/// Every regular file below `root`, keyed by its path relative to `root` with `/`
/// between parts. Symbolic links are not followed: the page shows what was built,
/// never what a link points at.
fn read_tree(root: &Path) -> BundleFiles {
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .flatten()
        .filter(|entry| entry.file_type().is_file())
        .filter_map(|entry| {
            let relative = entry.path().strip_prefix(root).ok()?;
            let name = relative
                .components()
                .map(|part| part.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            Some((name, std::fs::read(entry.path()).ok()?))
        })
        .collect()
}

/// The model calls of a transcript; lines that do not parse are left out, since the
/// page is a view of the run, not its judge.
fn read_transcript(path: &Path) -> Vec<ModelCall> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    bytes
        .split(|byte| *byte == b'\n')
        .filter_map(|line| serde_json::from_slice::<ModelCall>(line).ok())
        .collect()
}

/// Every run directory at or below each of `paths`: a folder holding `report.json`.
/// The folders below a run directory are not searched further.
pub fn find_run_dirs(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ReportError> {
    let mut found = Vec::new();
    for path in paths {
        if !path.is_dir() {
            return Err(ReportError::NotADirectory { path: path.clone() });
        }
        let mut walk = walkdir::WalkDir::new(path)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter();
        while let Some(entry) = walk.next() {
            let entry = entry.map_err(|source| ReportError::Walk {
                path: path.clone(),
                source,
            })?;
            if entry.file_type().is_dir() && RunDir::is_run_dir(entry.path()) {
                found.push(entry.path().to_owned());
                walk.skip_current_dir();
            }
        }
    }
    // A folder named twice, or inside another one named, is shown once.
    let mut seen = std::collections::BTreeSet::new();
    found.retain(|dir| seen.insert(dir.clone()));
    Ok(found)
}
