//! The end of `agent run`: the table on stderr, `--json` on stdout, `--junit` to a file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use agent_loop::{Report, StopReason};
use agent_spec::Spec;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct SpecSummary {
    pub spec: String,
    pub verified: bool,
    pub iterations: u32,
    pub image: Option<String>,
    pub duration_secs: f64,
    pub stopped_by: Option<StopReason>,
    pub run_dir: Option<PathBuf>,
    pub report: Option<PathBuf>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub error: Option<String>,
    /// The last failed iteration's outcome and detail, for the table and JUnit.
    #[serde(skip)]
    pub last_failure: Option<String>,
}

impl SpecSummary {
    pub fn from_report(report: &Report, run_dir: &Path) -> SpecSummary {
        SpecSummary {
            spec: report.spec.clone(),
            verified: report.verified,
            iterations: report.iterations,
            image: report.image.clone(),
            duration_secs: report.duration_secs,
            stopped_by: Some(report.stopped_by),
            run_dir: Some(run_dir.to_path_buf()),
            report: Some(run_dir.join("report.json")),
            prompt_tokens: report.usage.prompt_tokens,
            completion_tokens: report.usage.completion_tokens,
            error: report.error.clone(),
            last_failure: report
                .history
                .iter()
                .rev()
                .find(|record| record.outcome != agent_loop::Outcome::Passed)
                .map(|record| format!("{}: {}", record.outcome.as_str(), record.detail)),
        }
    }

    pub fn not_started(spec: &Spec) -> SpecSummary {
        SpecSummary {
            spec: spec.name.clone(),
            verified: false,
            iterations: 0,
            image: None,
            duration_secs: 0.0,
            stopped_by: None,
            run_dir: None,
            report: None,
            prompt_tokens: 0,
            completion_tokens: 0,
            error: None,
            last_failure: None,
        }
    }

    fn result_word(&self) -> &'static str {
        match (self.verified, self.stopped_by) {
            (true, _) => "verified",
            (false, Some(StopReason::Cancelled)) | (false, None) => "cancelled",
            (false, Some(StopReason::Error)) => "error",
            (false, _) => "not verified",
        }
    }
}

pub fn print_table(summaries: &[SpecSummary]) {
    let rows: Vec<[String; 5]> = summaries
        .iter()
        .map(|summary| {
            [
                summary.spec.clone(),
                summary.result_word().to_string(),
                summary.iterations.to_string(),
                format!("{:.1}s", summary.duration_secs),
                summary
                    .image
                    .clone()
                    .or_else(|| {
                        summary
                            .run_dir
                            .as_ref()
                            .map(|dir| dir.display().to_string())
                    })
                    .unwrap_or_default(),
            ]
        })
        .collect();
    let header = [
        "SPEC",
        "RESULT",
        "ITERATIONS",
        "TIME",
        "IMAGE / RUN DIRECTORY",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let line = |text: &mut String, cells: [&str; 5]| {
        let mut row = String::new();
        for (index, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if index + 1 == cells.len() {
                row.push_str(cell);
            } else {
                let _ = write!(row, "{cell:<width$}  ");
            }
        }
        text.push_str(row.trim_end());
        text.push('\n');
    };
    line(&mut text, header);
    for row in &rows {
        line(&mut text, [&row[0], &row[1], &row[2], &row[3], &row[4]]);
    }
    let verified = summaries.iter().filter(|summary| summary.verified).count();
    let _ = writeln!(text, "{verified} of {} specs verified", summaries.len());
    eprint!("\n{text}");
}

pub fn print_json(summaries: &[SpecSummary], exit_code: u8) {
    let value = serde_json::json!({
        "verified": summaries.iter().all(|summary| summary.verified),
        "exit_code": exit_code,
        "specs": summaries,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&value).expect("summary serialises")
    );
}

fn xml_escape(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&apos;".to_string(),
            other => other.to_string(),
        })
        .collect()
}

pub fn write_junit(path: &Path, summaries: &[SpecSummary]) -> anyhow::Result<()> {
    let failures = summaries.iter().filter(|summary| !summary.verified).count();
    let total: f64 = summaries.iter().map(|summary| summary.duration_secs).sum();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"agent\" tests=\"{}\" failures=\"{failures}\" time=\"{total:.3}\">",
        summaries.len()
    );
    let _ = writeln!(
        xml,
        "  <testsuite name=\"agent run\" tests=\"{}\" failures=\"{failures}\" time=\"{total:.3}\">",
        summaries.len()
    );
    for summary in summaries {
        let _ = write!(
            xml,
            "    <testcase classname=\"agent\" name=\"{}\" time=\"{:.3}\"",
            xml_escape(&summary.spec),
            summary.duration_secs
        );
        if summary.verified {
            xml.push_str("/>\n");
        } else {
            let message = summary
                .error
                .clone()
                .or_else(|| summary.last_failure.clone())
                .unwrap_or_else(|| summary.result_word().to_string());
            let _ = writeln!(
                xml,
                ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                xml_escape(summary.result_word()),
                xml_escape(&message)
            );
        }
    }
    xml.push_str("  </testsuite>\n</testsuites>\n");
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, xml)?;
    Ok(())
}
