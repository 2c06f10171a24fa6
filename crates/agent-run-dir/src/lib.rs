//! The layout of a run directory, named once: the loop writes it, the CLI reads
//! `report.json` and `final/` back (`verify`, the summary), and the report page reads
//! all of it. None of them spells a file name of its own, nor a record of its own:
//! `report.json`'s types are in [`report`].
//!
//! ```text
//! <run dir>/
//!   report.json  report.html  transcript.jsonl
//!   spec/                       the spec and its inputs as they were run
//!   final/                      the verified bundle
//!   attestations/               the pushed image's signed attestations (`--sign`), `*.dsse.json`
//!   iterations/<n>/             bundle/ build.log stdout.txt stderr.txt result.json
//!   iterations/<n>/cases/<k>/        stdout.txt stderr.txt of each case, when there are several
//!   iterations/<n>/candidates/<k>/   the same as an iteration, for each candidate of a best-of-N generation
//! ```

use std::path::{Path, PathBuf};

pub mod report;

pub use report::{
    AttestationRecord, BuildPolicyRecord, CandidateRecord, CaseRecord, EgressRecord, InputDigest,
    IterationRecord, LockReport, LockState, Outcome, Published, RefusedConnection, Report,
    SavedImage, SealRecord, StopReason, SuiteRecord, TestRecord, UsageTotals,
};

/// The folder, relative to the run directory, of the spec and its inputs as run.
pub const SPEC_FOLDER: &str = "spec";
const REPORT_JSON: &str = "report.json";
const REPORT_HTML: &str = "report.html";
const TRANSCRIPT: &str = "transcript.jsonl";
const FINAL: &str = "final";
const ITERATIONS: &str = "iterations";
const CANDIDATES: &str = "candidates";
const CASES: &str = "cases";
const ATTESTATIONS: &str = "attestations";

/// One run directory: `<out>/<spec name>/<run id>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    pub fn new(root: impl Into<PathBuf>) -> RunDir {
        RunDir { root: root.into() }
    }

    /// Whether `path` is a run directory: it holds `report.json`.
    pub fn is_run_dir(path: &Path) -> bool {
        path.join(REPORT_JSON).is_file()
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// What the run did, for scripts.
    pub fn report_json(&self) -> PathBuf {
        self.root.join(REPORT_JSON)
    }

    /// What the run did, for people.
    pub fn report_html(&self) -> PathBuf {
        self.root.join(REPORT_HTML)
    }

    /// One line per model call.
    pub fn transcript(&self) -> PathBuf {
        self.root.join(TRANSCRIPT)
    }

    /// The verified bundle, only when the spec verified.
    pub fn final_bundle(&self) -> PathBuf {
        self.root.join(FINAL)
    }

    /// The signed attestations of the pushed image, one DSSE envelope per file.
    pub fn attestations(&self) -> PathBuf {
        self.root.join(ATTESTATIONS)
    }

    /// The spec and its inputs as they were run.
    pub fn spec_folder(&self) -> PathBuf {
        self.root.join(SPEC_FOLDER)
    }

    /// The folder holding one folder per iteration, named by its number.
    pub fn iterations(&self) -> PathBuf {
        self.root.join(ITERATIONS)
    }

    pub fn iteration(&self, number: u32) -> IterationDir {
        IterationDir {
            root: self.iterations().join(number.to_string()),
        }
    }
}

/// The folder of one iteration, or of one candidate within it: the same files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IterationDir {
    root: PathBuf,
}

impl IterationDir {
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Exactly what was built.
    pub fn bundle(&self) -> PathBuf {
        self.root.join("bundle")
    }

    pub fn build_log(&self) -> PathBuf {
        self.root.join("build.log")
    }

    pub fn stdout(&self) -> PathBuf {
        self.root.join("stdout.txt")
    }

    pub fn stderr(&self) -> PathBuf {
        self.root.join("stderr.txt")
    }

    /// The iteration's record, as in `report.json`'s `history`.
    pub fn result_json(&self) -> PathBuf {
        self.root.join("result.json")
    }

    /// The build log and the output: what a build and a run leave beside the bundle.
    pub fn evidence(&self) -> [PathBuf; 3] {
        [self.build_log(), self.stdout(), self.stderr()]
    }

    /// The output of case `number` (from 1) of a spec with several cases: its
    /// `stdout()` and `stderr()`.
    pub fn case(&self, number: u32) -> IterationDir {
        IterationDir {
            root: self.root.join(CASES).join(number.to_string()),
        }
    }

    /// Candidate `number` of a best-of-N generation in this iteration.
    pub fn candidate(&self, number: u32) -> IterationDir {
        IterationDir {
            root: self.root.join(CANDIDATES).join(number.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_the_documented_one() {
        let run = RunDir::new("/out/fizzbuzz/run-1");
        let relative = |path: PathBuf| {
            path.strip_prefix(run.root())
                .expect("inside the run directory")
                .to_string_lossy()
                .into_owned()
        };
        assert_eq!(relative(run.report_json()), "report.json");
        assert_eq!(relative(run.report_html()), "report.html");
        assert_eq!(relative(run.transcript()), "transcript.jsonl");
        assert_eq!(relative(run.final_bundle()), "final");
        assert_eq!(relative(run.spec_folder()), "spec");
        let second = run.iteration(2);
        assert_eq!(relative(second.bundle()), "iterations/2/bundle");
        assert_eq!(relative(second.result_json()), "iterations/2/result.json");
        assert_eq!(
            second.evidence().map(relative),
            [
                "iterations/2/build.log",
                "iterations/2/stdout.txt",
                "iterations/2/stderr.txt"
            ]
        );
        assert_eq!(
            relative(second.case(2).stderr()),
            "iterations/2/cases/2/stderr.txt"
        );
        assert_eq!(
            relative(second.candidate(3).stdout()),
            "iterations/2/candidates/3/stdout.txt"
        );
    }

    #[test]
    fn a_run_directory_is_a_folder_holding_report_json() {
        let folder = tempfile::tempdir().expect("a folder");
        assert!(!RunDir::is_run_dir(folder.path()));
        std::fs::write(RunDir::new(folder.path()).report_json(), "{}").expect("report.json");
        assert!(RunDir::is_run_dir(folder.path()));
    }
}
