//! Progress on stderr: a line per spec with its iteration and phase (indicatif) when
//! stderr is a terminal, plain lines otherwise.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_loop::{Event, EventSink, Phase};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bars: Option<Bars>,
}

struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, (ProgressBar, u32)>>,
}

impl Progress {
    pub fn new() -> Arc<Progress> {
        let bars = std::io::stderr().is_terminal().then(|| Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            bars: Mutex::new(HashMap::new()),
        });
        Arc::new(Progress { bars })
    }

    pub fn sink(self: &Arc<Self>) -> EventSink {
        let progress = self.clone();
        Arc::new(move |event| progress.handle(&event))
    }

    /// Prints a line above the bars (or plainly).
    pub fn println(&self, line: &str) {
        match &self.bars {
            Some(bars) => {
                let _ = bars.multi.println(line);
            }
            None => eprintln!("{line}"),
        }
    }

    /// Removes every bar (before the summary is printed).
    pub fn finish(&self) {
        if let Some(bars) = &self.bars {
            for (bar, _) in bars.bars.lock().expect("progress lock").values() {
                bar.finish_and_clear();
            }
            let _ = bars.multi.clear();
        }
    }

    fn handle(&self, event: &Event) {
        match &self.bars {
            Some(bars) => bars.handle(event),
            None => {
                if let Some(line) = plain_line(event) {
                    eprintln!("{line}");
                }
            }
        }
    }
}

fn phase_text(phase: Phase) -> String {
    match phase {
        Phase::Generating => "generating".to_string(),
        Phase::Repairing => "repairing".to_string(),
        Phase::Building { step: 0, .. } => "building".to_string(),
        Phase::Building { step, total } => format!("building step {step}/{total}"),
        Phase::Running => "running".to_string(),
        Phase::Checking => "checking".to_string(),
        Phase::Judging => "judging".to_string(),
        Phase::Pulling => "pulling the published image".to_string(),
    }
}

/// The plain-text form of an event; build steps are left out to keep logs short.
fn plain_line(event: &Event) -> Option<String> {
    match event {
        Event::Started { spec, run_dir, .. } => {
            Some(format!("{spec}: started, run directory {run_dir}"))
        }
        Event::Phase {
            phase: Phase::Building { step, .. },
            ..
        } if *step > 0 => None,
        Event::Phase {
            spec,
            iteration,
            phase,
        } => Some(format!(
            "{spec}: iteration {iteration}: {}",
            phase_text(*phase)
        )),
        Event::IterationFinished {
            spec,
            iteration,
            outcome,
            detail,
        } => Some(if detail.is_empty() {
            format!("{spec}: iteration {iteration}: {}", outcome.as_str())
        } else {
            format!(
                "{spec}: iteration {iteration}: {} — {detail}",
                outcome.as_str()
            )
        }),
        Event::CandidatesFinished {
            spec,
            iteration,
            candidates,
        } => {
            let each: Vec<String> = candidates
                .iter()
                .map(|(number, outcome, chosen)| {
                    let kept = if *chosen { " (kept)" } else { "" };
                    format!("{number} {}{kept}", outcome.as_str())
                })
                .collect();
            Some(format!(
                "{spec}: iteration {iteration}: candidates: {}",
                each.join(", ")
            ))
        }
        Event::Reused { .. }
        | Event::ReuseSkipped { .. }
        | Event::BaseResolved { .. }
        | Event::CacheSourceSkipped { .. } => image_line(event),
        Event::Finished {
            spec,
            verified,
            image,
            stopped_by,
        } => Some(match (verified, image) {
            (true, Some(image)) => format!("{spec}: verified, image {image}"),
            _ => format!(
                "{spec}: not verified ({})",
                serde_json::to_value(stopped_by).ok()?.as_str()?
            ),
        }),
    }
}

/// The plain-text form of an event about the images a run takes from a registry.
fn image_line(event: &Event) -> Option<String> {
    match event {
        Event::Reused { spec, reference } => Some(format!(
            "{spec}: reusing the published image {reference}: no build"
        )),
        Event::ReuseSkipped {
            spec,
            reference,
            reason,
        } => Some(format!(
            "{spec}: warning: not reusing {reference}, building instead: {reason}"
        )),
        Event::BaseResolved {
            spec,
            image,
            reference,
            moved,
            ..
        } => Some(match moved {
            true => format!("{spec}: base image {image} moved to {reference}: re-checking"),
            false => format!("{spec}: base image {image} unchanged at {reference}"),
        }),
        Event::CacheSourceSkipped {
            spec,
            reference,
            reason,
        } => Some(format!(
            "{spec}: warning: cache source {reference} skipped: {reason}"
        )),
        _ => None,
    }
}

impl Bars {
    fn handle(&self, event: &Event) {
        let mut bars = self.bars.lock().expect("progress lock");
        match event {
            Event::Started {
                spec,
                max_iterations,
                ..
            } => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix:.bold} {msg} {elapsed:.dim}")
                        .expect("a valid template"),
                );
                bar.set_prefix(spec.clone());
                bar.set_message("starting");
                bar.enable_steady_tick(Duration::from_millis(120));
                bars.insert(spec.clone(), (bar, *max_iterations));
            }
            Event::Phase {
                spec,
                iteration,
                phase,
            } => {
                if let Some((bar, max)) = bars.get(spec) {
                    bar.set_message(format!(
                        "iteration {iteration}/{max} · {}",
                        phase_text(*phase)
                    ));
                }
            }
            Event::IterationFinished { .. }
            | Event::CandidatesFinished { .. }
            | Event::Reused { .. }
            | Event::ReuseSkipped { .. }
            | Event::BaseResolved { .. }
            | Event::CacheSourceSkipped { .. } => {
                if let Some(line) = plain_line(event) {
                    let _ = self.multi.println(line);
                }
            }
            Event::Finished { spec, .. } => {
                if let Some((bar, _)) = bars.remove(spec) {
                    bar.finish_and_clear();
                }
                if let Some(line) = plain_line(event) {
                    let _ = self.multi.println(line);
                }
            }
        }
    }
}
