//! The Markdown appended to GitHub's job summary (`GITHUB_STEP_SUMMARY`): a table of
//! the specs and the failed checks, cut with a note to stay under the 1 MiB GitHub
//! accepts per step, however many specs ran.

use std::io::Write as _;
use std::path::Path;

use crate::summary::SpecSummary;

/// GitHub refuses a step summary over 1 MiB (and shows none of it).
pub const STEP_SUMMARY_LIMIT: usize = 1024 * 1024;
/// Room kept for the note that says what was cut.
const NOTE_ROOM: usize = 256;
/// Longest failure detail shown per check: the report has the rest.
const DETAIL_CHARS: usize = 200;

/// Appends the summary of `summaries` to `path`, within what the file has left of
/// the limit (the headline is written even when nothing is left).
pub fn append(path: &Path, summaries: &[SpecSummary]) -> std::io::Result<()> {
    let used = std::fs::metadata(path).map_or(0, |metadata| metadata.len() as usize);
    let text = render(summaries, STEP_SUMMARY_LIMIT.saturating_sub(used));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(text.as_bytes())
}

/// The Markdown, at most `budget` bytes unless the headline alone is longer.
pub fn render(summaries: &[SpecSummary], budget: usize) -> String {
    let cell = |text: &str| text.replace('|', "\\|").replace(['\n', '\r'], " ");
    let verified = summaries.iter().filter(|summary| summary.verified).count();
    let mut text = format!(
        "### agent: {verified} of {} specs verified\n\n",
        summaries.len()
    );
    let mut capped = Capped {
        text: &mut text,
        budget: budget.saturating_sub(NOTE_ROOM),
        full: false,
    };
    capped.push(
        "| spec | result | iterations | time | image or run directory |\n|---|---|---|---|---|\n",
    );
    let mut rows_left = summaries.len();
    for summary in summaries {
        let row = format!(
            "| {} | {} | {} | {:.1} s | `{}` |\n",
            cell(&summary.spec),
            summary.result_word(),
            summary.iterations,
            summary.duration_secs,
            cell(&summary.place()).replace('`', "'"),
        );
        if !capped.push(&row) {
            break;
        }
        rows_left -= 1;
    }
    let failed: Vec<String> = summaries
        .iter()
        .flat_map(|summary| {
            summary
                .checks
                .iter()
                .filter(|check| !check.passed)
                .map(move |check| {
                    let detail: String = check.detail.lines().next().unwrap_or("").to_owned();
                    let detail: String = detail.chars().take(DETAIL_CHARS).collect();
                    format!(
                        "- **{}** `{}/{}`: {}\n",
                        cell(&summary.spec),
                        cell(&check.group).replace('`', "'"),
                        cell(&check.name).replace('`', "'"),
                        cell(&detail)
                    )
                })
        })
        .collect();
    let mut checks_left = failed.len();
    if !failed.is_empty() && capped.push("\n#### failed checks\n\n") {
        for line in &failed {
            if !capped.push(line) {
                break;
            }
            checks_left -= 1;
        }
    }
    if capped.full {
        text.push_str(&format!(
            "\n_Cut to stay under GitHub's 1 MiB step summary: {rows_left} more specs and {checks_left} more failed checks are in the report._\n"
        ));
    }
    text.push('\n');
    text
}

/// Text that takes lines while they fit in its budget, and remembers when one did not.
struct Capped<'a> {
    text: &'a mut String,
    budget: usize,
    full: bool,
}

impl Capped<'_> {
    fn push(&mut self, line: &str) -> bool {
        if self.full || self.text.len() + line.len() > self.budget {
            self.full = true;
            return false;
        }
        self.text.push_str(line);
        true
    }
}

#[cfg(test)]
mod tests {
    use agent_spec::CheckResult;

    use super::*;

    fn summary(name: &str, failed: usize) -> SpecSummary {
        let mut summary = SpecSummary::not_started(&crate::ci::tests::spec(name));
        summary.checks = (0..failed)
            .map(|index| {
                CheckResult::new(
                    "run",
                    format!("check {index}"),
                    false,
                    "expected: hello\nactual: bye".repeat(20),
                )
            })
            .collect();
        summary
    }

    #[test]
    fn a_small_run_is_shown_whole() {
        let text = render(&[summary("alpha", 2)], STEP_SUMMARY_LIMIT);
        assert!(text.contains("### agent: 0 of 1 specs verified"), "{text}");
        assert!(text.contains("| alpha | cancelled | 0 |"), "{text}");
        assert!(
            text.contains("- **alpha** `run/check 1`: expected: hello"),
            "{text}"
        );
        assert!(!text.contains("Cut to stay"), "{text}");
    }

    #[test]
    fn thousands_of_specs_stay_under_the_limit_with_a_note() {
        let summaries: Vec<SpecSummary> = (0..20_000)
            .map(|index| summary(&format!("spec-{index:05}-{}", "x".repeat(40)), 3))
            .collect();
        let text = render(&summaries, STEP_SUMMARY_LIMIT);
        assert!(text.len() <= STEP_SUMMARY_LIMIT, "{}", text.len());
        assert!(text.len() > STEP_SUMMARY_LIMIT / 2, "{}", text.len());
        assert!(text.starts_with("### agent: 0 of 20000 specs verified"));
        assert!(text.contains("_Cut to stay under GitHub's 1 MiB step summary: "));
    }

    #[test]
    fn a_nearly_full_file_still_gets_the_headline_and_the_note() {
        let path = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(path.path(), "x".repeat(STEP_SUMMARY_LIMIT - 10)).unwrap();
        append(path.path(), &[summary("alpha", 1)]).unwrap();
        let text = std::fs::read_to_string(path.path()).unwrap();
        let ours = &text[STEP_SUMMARY_LIMIT - 10..];
        assert!(
            ours.starts_with("### agent: 0 of 1 specs verified"),
            "{ours}"
        );
        assert!(
            ours.contains("1 more specs and 1 more failed checks"),
            "{ours}"
        );
    }
}
