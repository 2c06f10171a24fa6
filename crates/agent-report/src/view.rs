//! What the page shows, worked out from the run directories: words, numbers as text,
//! bar lengths, diffs and tails. Every string from a run is made visible here
//! (see `text`); the templates then only escape and lay out.

use crate::diff::{self, FileDiff};
use crate::disk::{BundleFiles, CandidateRecord, IterationOnDisk, ModelCall, RunOnDisk};
use crate::text::{self, Tail};

/// How much of stdout, stderr and the failing build step's output the page shows.
const TAIL_BYTES: usize = 8 * 1024;
/// Width of the timeline's bar area in SVG user units.
pub const BAR_WIDTH: f64 = 1000.0;

/// How a run ended, as the summary table and the filter know it. A fixed set, so the
/// page's classes never come from a run's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultKind {
    Verified,
    NotVerified,
    Error,
    Cancelled,
}

impl ResultKind {
    fn of(run: &RunOnDisk) -> ResultKind {
        match run.report.stopped_by.as_str() {
            _ if run.report.verified => ResultKind::Verified,
            "error" => ResultKind::Error,
            "cancelled" => ResultKind::Cancelled,
            _ => ResultKind::NotVerified,
        }
    }

    pub const ALL: [ResultKind; 4] = [
        ResultKind::Verified,
        ResultKind::NotVerified,
        ResultKind::Error,
        ResultKind::Cancelled,
    ];

    pub fn class(self) -> &'static str {
        match self {
            ResultKind::Verified => "verified",
            ResultKind::NotVerified => "not-verified",
            ResultKind::Error => "error",
            ResultKind::Cancelled => "cancelled",
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            ResultKind::Verified => "verified",
            ResultKind::NotVerified => "not verified",
            ResultKind::Error => "error",
            ResultKind::Cancelled => "cancelled",
        }
    }
}

/// An iteration's outcome as a class (from a fixed set) and a word.
#[derive(Debug, Clone)]
pub struct OutcomeView {
    pub class: &'static str,
    pub word: String,
}

impl OutcomeView {
    fn of(outcome: &str) -> OutcomeView {
        let class = match outcome {
            "passed" => "passed",
            "checks_failed" => "checks-failed",
            "run_failed" | "run_timeout" => "run-failed",
            "build_failed" | "build_timeout" => "build-failed",
            "invalid_bundle" => "invalid",
            _ => "unknown",
        };
        let word = if outcome.is_empty() {
            "unknown".to_owned()
        } else {
            text::one_line(&outcome.replace('_', " "))
        };
        OutcomeView { class, word }
    }
}

pub struct FilterView {
    pub class: &'static str,
    pub word: &'static str,
    pub count: usize,
}

pub struct PageView {
    pub title: String,
    pub runs: Vec<RunView>,
    pub filters: Vec<FilterView>,
}

pub struct RunView {
    pub anchor: String,
    pub spec: String,
    pub run_id: String,
    pub dir: String,
    pub result: ResultKind,
    pub stopped_by: String,
    pub error: Option<String>,
    pub iterations: u32,
    pub duration: String,
    pub tokens: String,
    pub image: Option<String>,
    /// Where the verified image went: the pushed reference and its digest.
    pub published: Option<(String, String)>,
    /// The image file `--save` wrote and its SHA-256.
    pub saved: Option<(String, String)>,
    pub publish_error: Option<String>,
    pub model: String,
    pub base_image: String,
    /// The base image's pinned digest, as the lock pins it.
    pub base_digest: Option<String>,
    /// What the builds could reach: the mode, the builder and the allowed hosts.
    pub build_egress: Option<String>,
    /// The signed attestations stored with the pushed image: predicate type, digest.
    pub attestations: Vec<(String, String)>,
    /// The longest iteration, which the timeline's bars are scaled to.
    pub scale: String,
    pub timeline: Vec<TimelineEntry>,
    pub candidates: Vec<CandidateView>,
    pub details: Vec<IterationView>,
}

pub struct TimelineEntry {
    pub anchor: String,
    pub number: u32,
    pub outcome: OutcomeView,
    /// What went wrong, for the entry's tooltip.
    pub detail: String,
    pub model: String,
    pub build: String,
    pub run: String,
    pub tokens: String,
    pub bars: Vec<Bar>,
}

/// One segment of an iteration's bar, in SVG user units out of [`BAR_WIDTH`].
pub struct Bar {
    pub class: &'static str,
    pub x: String,
    pub width: String,
}

pub struct IterationView {
    pub anchor: String,
    pub number: u32,
    pub outcome: OutcomeView,
    pub detail: String,
    /// Where it was built and run, and the engines lost on the way.
    pub engine: Option<String>,
    pub lost_engines: Vec<String>,
    /// What the build egress policy refused, one line each.
    pub refused: Vec<String>,
    pub summary: String,
    pub exit: Option<String>,
    pub diff: Option<DiffView>,
    /// The iteration's checks by group, groups with a failure first.
    pub check_groups: Vec<CheckGroupView>,
    pub build: Option<BuildView>,
    pub streams: Vec<StreamView>,
    pub calls: Vec<CallView>,
}

pub struct DiffView {
    /// The iteration diffed against; `None` for the first bundle.
    pub against: Option<u32>,
    pub files: Vec<FileDiff>,
    pub unchanged: usize,
}

pub struct CheckView {
    pub name: String,
    pub detail: String,
}

/// The checks of one group (a case, `image`, `file`, a structure-test file): the
/// failed ones with their evidence, the passed ones by name.
pub struct CheckGroupView {
    pub name: String,
    pub passed: usize,
    pub total: usize,
    pub failed: Vec<CheckView>,
    pub passed_names: String,
}

/// `checks` by group in first-seen order, the groups with a failure first.
fn check_groups(checks: &[crate::disk::CheckResult]) -> Vec<CheckGroupView> {
    let mut groups: Vec<CheckGroupView> = Vec::new();
    let mut passed_names: Vec<Vec<String>> = Vec::new();
    for check in checks {
        let name = if check.group.is_empty() {
            "checks"
        } else {
            check.group.as_str()
        };
        let index = match groups
            .iter()
            .position(|group| group.name == text::one_line(name))
        {
            Some(index) => index,
            None => {
                groups.push(CheckGroupView {
                    name: text::one_line(name),
                    passed: 0,
                    total: 0,
                    failed: Vec::new(),
                    passed_names: String::new(),
                });
                passed_names.push(Vec::new());
                groups.len() - 1
            }
        };
        let group = &mut groups[index];
        group.total += 1;
        if check.passed {
            group.passed += 1;
            passed_names[index].push(text::one_line(&check.name));
        } else {
            group.failed.push(CheckView {
                name: text::one_line(&check.name),
                detail: text::multi_line(&check.detail),
            });
        }
    }
    for (group, names) in groups.iter_mut().zip(passed_names) {
        group.passed_names = names.join(" · ");
    }
    groups.sort_by_key(|group| group.failed.is_empty());
    groups
}

pub struct BuildView {
    /// The `Step n/m : …` line of the step that failed, when the log names one.
    pub step: Option<String>,
    pub output: Tail,
}

pub struct StreamView {
    pub name: &'static str,
    pub tail: Tail,
    /// Bytes the program wrote in all, when recorded.
    pub total_bytes: Option<u64>,
    /// `agent` kept only the first part, at its output limit.
    pub cut_at_limit: bool,
}

pub struct CallView {
    pub purpose: String,
    pub tokens: String,
    pub latency: String,
    pub messages: Vec<MessageView>,
    pub reply: Option<String>,
    pub error: Option<String>,
}

pub struct MessageView {
    pub role: String,
    pub content: String,
}

/// The page for `runs`, in the order given.
pub fn page(runs: &[RunOnDisk]) -> PageView {
    let views: Vec<RunView> = runs
        .iter()
        .enumerate()
        .map(|(index, run)| run_view(index + 1, run))
        .collect();
    let filters = ResultKind::ALL
        .iter()
        .map(|kind| FilterView {
            class: kind.class(),
            word: kind.word(),
            count: views.iter().filter(|view| view.result == *kind).count(),
        })
        .collect();
    let title = match views.as_slice() {
        [only] => format!("{} — agent report", only.spec),
        _ => format!("{} runs — agent report", views.len()),
    };
    PageView {
        title,
        runs: views,
        filters,
    }
}

fn run_view(index: usize, run: &RunOnDisk) -> RunView {
    let report = &run.report;
    let anchor = format!("run-{index}");
    let scale = run
        .iterations
        .iter()
        .map(|iteration| iteration_secs(iteration).iter().sum::<f64>())
        .fold(0.0, f64::max);
    let timeline = run
        .iterations
        .iter()
        .map(|iteration| timeline_entry(&anchor, iteration, &run.calls, scale))
        .collect();
    let details = iteration_views(&anchor, run);
    RunView {
        spec: text::one_line(&report.spec),
        run_id: text::one_line(&report.run_id),
        dir: text::one_line(&run.dir.to_string_lossy()),
        result: ResultKind::of(run),
        stopped_by: text::one_line(&report.stopped_by.replace('_', " ")),
        error: report.error.as_deref().map(text::multi_line),
        iterations: report.iterations,
        duration: seconds(report.duration_secs),
        tokens: thousands(report.usage.prompt_tokens + report.usage.completion_tokens),
        image: report.image.as_deref().map(text::one_line),
        published: report.published.as_ref().map(|published| {
            (
                text::one_line(&published.reference),
                text::one_line(&published.digest),
            )
        }),
        saved: report
            .saved
            .as_ref()
            .map(|saved| (text::one_line(&saved.path), text::one_line(&saved.sha256))),
        publish_error: report.publish_error.as_deref().map(text::multi_line),
        model: text::one_line(&report.model),
        base_image: text::one_line(&report.base_image),
        base_digest: report.base_digest.as_deref().map(text::one_line),
        build_egress: report.build.as_ref().map(|build| {
            let allow = if build.allow.is_empty() {
                String::new()
            } else {
                format!(": {}", build.allow.join(", "))
            };
            text::one_line(&format!(
                "{} (builder {}){allow}",
                build.network, build.builder
            ))
        }),
        attestations: report
            .attestations
            .iter()
            .map(|attestation| {
                (
                    text::one_line(&attestation.predicate_type),
                    text::one_line(&attestation.digest),
                )
            })
            .collect(),
        scale: seconds(scale),
        timeline,
        candidates: report.candidates.iter().map(candidate_view).collect(),
        details,
        anchor,
    }
}

/// One of the first generation's candidates.
pub struct CandidateView {
    pub number: u32,
    pub outcome: OutcomeView,
    pub chosen: bool,
    pub detail: String,
    pub build: String,
    pub run: String,
    pub checks_passed: u32,
}

fn candidate_view(candidate: &CandidateRecord) -> CandidateView {
    CandidateView {
        number: candidate.candidate,
        outcome: OutcomeView::of(&candidate.outcome),
        chosen: candidate.chosen,
        detail: text::one_line(&candidate.detail),
        build: candidate.build_secs.map_or("–".to_owned(), seconds),
        run: candidate.run_secs.map_or("–".to_owned(), seconds),
        checks_passed: candidate.checks_passed,
    }
}

/// Model, build and run time of an iteration, in seconds.
fn iteration_secs(iteration: &IterationOnDisk) -> [f64; 3] {
    let record = &iteration.record;
    [
        record.model_ms as f64 / 1000.0,
        record.build_secs.unwrap_or(0.0),
        record.run_secs.unwrap_or(0.0),
    ]
}

fn timeline_entry(
    run_anchor: &str,
    iteration: &IterationOnDisk,
    calls: &[ModelCall],
    scale: f64,
) -> TimelineEntry {
    let record = &iteration.record;
    let secs = iteration_secs(iteration);
    let mut bars = Vec::new();
    let mut x = 0.0;
    for (class, value) in ["model", "build", "run"].into_iter().zip(secs) {
        let width = if scale > 0.0 {
            value / scale * BAR_WIDTH
        } else {
            0.0
        };
        if width > 0.0 {
            bars.push(Bar {
                class,
                x: format!("{x:.1}"),
                width: format!("{:.1}", width.max(1.0)),
            });
        }
        x += width;
    }
    let tokens: u64 = calls_of(calls, record.iteration)
        .map(|call| call.usage.prompt_tokens + call.usage.completion_tokens)
        .sum();
    TimelineEntry {
        anchor: format!("{run_anchor}-iteration-{}", record.iteration),
        number: record.iteration,
        outcome: OutcomeView::of(&record.outcome),
        detail: text::one_line(&record.detail),
        model: seconds(secs[0]),
        build: record.build_secs.map(seconds).unwrap_or_else(|| "–".into()),
        run: record.run_secs.map(seconds).unwrap_or_else(|| "–".into()),
        tokens: thousands(tokens),
        bars,
    }
}

fn calls_of(calls: &[ModelCall], iteration: u32) -> impl Iterator<Item = &ModelCall> {
    calls.iter().filter(move |call| call.iteration == iteration)
}

fn iteration_views(run_anchor: &str, run: &RunOnDisk) -> Vec<IterationView> {
    let mut previous: Option<(u32, &BundleFiles)> = None;
    let mut views = Vec::new();
    for iteration in &run.iterations {
        let record = &iteration.record;
        let diff = iteration.bundle.as_ref().map(|bundle| {
            let empty = BundleFiles::new();
            let (files, unchanged) =
                diff::bundle_diff(previous.map_or(&empty, |(_, old)| old), bundle);
            DiffView {
                against: previous.map(|(number, _)| number),
                files,
                unchanged,
            }
        });
        if let Some(bundle) = &iteration.bundle {
            previous = Some((record.iteration, bundle));
        }
        views.push(IterationView {
            anchor: format!("{run_anchor}-iteration-{}", record.iteration),
            number: record.iteration,
            outcome: OutcomeView::of(&record.outcome),
            detail: text::multi_line(&record.detail),
            engine: record.engine.as_deref().map(text::one_line),
            lost_engines: record
                .retried_after_lost
                .iter()
                .map(|host| text::one_line(host))
                .collect(),
            refused: refused_lines(record),
            summary: text::multi_line(&record.summary),
            exit: exit_words(iteration),
            diff,
            check_groups: check_groups(&record.checks),
            build: build_view(iteration),
            streams: stream_views(iteration),
            calls: calls_of(&run.calls, record.iteration)
                .map(call_view)
                .collect(),
        });
    }
    views
}

/// Each refused connection: where, how, at which step, why.
fn refused_lines(record: &agent_run_dir::IterationRecord<String>) -> Vec<String> {
    let Some(egress) = &record.egress else {
        return Vec::new();
    };
    egress
        .refused
        .iter()
        .map(|refused| {
            let step = match (refused.step, &refused.instruction) {
                (Some(index), Some(instruction)) => format!(" at step {index} ({instruction})"),
                _ => String::new(),
            };
            let times = if refused.count > 1 {
                format!(", {} times", refused.count)
            } else {
                String::new()
            };
            text::one_line(&format!(
                "{}:{} ({}){step}: {}{times}",
                refused.host, refused.port, refused.via, refused.reason
            ))
        })
        .collect()
}

fn exit_words(iteration: &IterationOnDisk) -> Option<String> {
    let record = &iteration.record;
    let code = record.exit_code?;
    Some(if record.oom_killed {
        format!("exit code {code}, out of memory")
    } else {
        format!("exit code {code}")
    })
}

/// For a failed or timed-out build: the step that failed and what it printed.
fn build_view(iteration: &IterationOnDisk) -> Option<BuildView> {
    if !matches!(
        iteration.record.outcome.as_str(),
        "build_failed" | "build_timeout"
    ) {
        return None;
    }
    let log = iteration.build_log.as_deref()?;
    let step_start = log
        .split_inclusive(|byte| *byte == b'\n')
        .scan(0, |offset, line| {
            let start = *offset;
            *offset += line.len();
            Some((start, line))
        })
        .filter(|(_, line)| line.starts_with(b"Step "))
        .last();
    Some(match step_start {
        Some((start, line)) => BuildView {
            step: Some(text::one_line(
                String::from_utf8_lossy(line).trim_end_matches(['\r', '\n']),
            )),
            output: text::tail(&log[start + line.len()..], TAIL_BYTES),
        },
        None => BuildView {
            step: None,
            output: text::tail(log, TAIL_BYTES),
        },
    })
}

fn stream_views(iteration: &IterationOnDisk) -> Vec<StreamView> {
    let record = &iteration.record;
    [
        (
            "stderr",
            &iteration.stderr,
            record.stderr_bytes,
            record.stderr_truncated,
        ),
        (
            "stdout",
            &iteration.stdout,
            record.stdout_bytes,
            record.stdout_truncated,
        ),
    ]
    .into_iter()
    .filter_map(|(name, bytes, total_bytes, cut_at_limit)| {
        Some(StreamView {
            name,
            tail: text::tail(bytes.as_deref()?, TAIL_BYTES),
            total_bytes,
            cut_at_limit,
        })
    })
    .collect()
}

fn call_view(call: &ModelCall) -> CallView {
    let response = call.response.as_ref();
    let reply = response
        .and_then(|response| response.content.as_deref().or(response.refusal.as_deref()))
        .map(text::multi_line);
    CallView {
        purpose: text::one_line(&call.purpose),
        tokens: thousands(call.usage.prompt_tokens + call.usage.completion_tokens),
        latency: seconds(call.latency_ms as f64 / 1000.0),
        messages: call
            .request
            .messages
            .iter()
            .map(|message| MessageView {
                role: text::one_line(&message.role),
                content: text::multi_line(&message.content),
            })
            .collect(),
        reply,
        error: call.error.as_deref().map(text::multi_line),
    }
}

/// Seconds for people: one decimal below a minute, minutes and seconds above.
pub fn seconds(value: f64) -> String {
    if !value.is_finite() || value < 0.0 {
        return "–".to_owned();
    }
    if value < 60.0 {
        format!("{value:.1} s")
    } else {
        let whole = value.round() as u64;
        format!("{} min {:02} s", whole / 60, whole % 60)
    }
}

/// A count with thin spaces between groups of three digits.
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            grouped.push('\u{2009}');
        }
        grouped.push(digit);
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_are_grouped_in_order_with_failed_groups_first() {
        let check = |group: &str, name: &str, passed: bool| crate::disk::CheckResult {
            group: group.to_owned(),
            name: name.to_owned(),
            passed,
            detail: format!("{name} detail"),
        };
        let groups = check_groups(&[
            check("two numbers", "sum", true),
            check("image", "non_root", false),
            check("two numbers", "exit", true),
            check("", "old", true),
            check("image", "workdir", true),
        ]);
        let names: Vec<&str> = groups.iter().map(|group| group.name.as_str()).collect();
        assert_eq!(names, ["image", "two numbers", "checks"]);
        assert_eq!((groups[0].passed, groups[0].total), (1, 2));
        assert_eq!(groups[0].failed[0].name, "non_root");
        assert_eq!(groups[1].passed_names, "sum · exit");
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(1234567), "1\u{2009}234\u{2009}567");
        assert_eq!(thousands(12), "12");
        assert_eq!(seconds(2.345), "2.3 s");
        assert_eq!(seconds(125.0), "2 min 05 s");
        assert_eq!(seconds(f64::NAN), "–");
    }

    #[test]
    fn unknown_outcomes_get_a_fixed_class() {
        let view = OutcomeView::of("\"><img src=x>");
        assert_eq!(view.class, "unknown");
        assert_eq!(OutcomeView::of("checks_failed").word, "checks failed");
    }
}
