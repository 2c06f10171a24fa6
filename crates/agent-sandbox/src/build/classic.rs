//! The classic builder: its text output read into steps, the capped log, the failing
//! step's own output and the images each stage reached; the containers a timed-out
//! build leaves behind are removed.

use std::collections::BTreeMap;

use bollard::Docker;
use bollard::models::{BuildInfo, BuildInfoAux, ImageId};

use super::Reader;
use super::evidence::{self, CappedLog, FailingStep, Tail};
use crate::cleanup;
use crate::dialect::{self, BuildMarker};
use crate::errors::SandboxError;
use crate::outcome::{BuildProgress, BuildStatus};
use crate::request::BuildRequest;

/// A "line" without a newline is cut here so a program printing no newlines cannot
/// grow the line buffer without bound.
const LINE_LIMIT_BYTES: usize = 64 * 1024;

/// The build's status, its log, and the last image of each stage (what the spec's
/// cache keeps).
pub(super) async fn build(
    docker: &Docker,
    request: &BuildRequest<'_>,
    build_args: &BTreeMap<String, String>,
    progress: &mut (dyn FnMut(BuildProgress) + Send),
) -> Result<(BuildStatus, String, Vec<String>), SandboxError> {
    let mut state = BuildState::default();
    let stream = start_build(docker, request, build_args);
    let status = match super::read(stream, request.timeout, &mut state, progress).await? {
        Some(status) => status,
        None => {
            remove_build_containers(docker, &state.running_containers).await;
            BuildStatus::TimedOut
        }
    };
    let heads = state.stage_heads.iter().flatten().cloned().collect();
    Ok((status, state.log.finish(), heads))
}

/// Sends the context and opens the build's output stream.
fn start_build<'a>(
    docker: &'a Docker,
    request: &BuildRequest<'_>,
    build_args: &BTreeMap<String, String>,
) -> impl futures_util::Stream<Item = Result<BuildInfo, bollard::errors::Error>> + 'a {
    let body = bollard::body_full(bytes::Bytes::copy_from_slice(&request.context.bytes));
    let options = super::options(request, build_args);
    // `rm` and `forcerm` so no intermediate container outlives its step, even when
    // the step fails.
    let options = options.rm(true).forcerm(true);
    docker.build_image(options.build(), None, Some(body))
}

#[derive(Default)]
struct BuildState {
    log: CappedLog,
    /// Text of the current line not yet ended by a newline.
    partial_line: String,
    last_step: Option<String>,
    step_output: Tail,
    image_id: Option<String>,
    /// `---> Running in <id>`: the containers of the steps, for cleanup on timeout.
    running_containers: Vec<String>,
    /// Whether the current step is a `FROM`: its `---> <id>` is the base image, not
    /// one this build made.
    in_from: bool,
    /// The last image each stage reached (`None` while a stage has only its `FROM`).
    stage_heads: Vec<Option<String>>,
}

impl Reader for BuildState {
    fn take(&mut self, info: BuildInfo, progress: &mut (dyn FnMut(BuildProgress) + Send)) -> bool {
        if let Some(text) = info.stream.as_deref() {
            self.push_text(text, progress);
        }
        if let Some(BuildInfoAux::Default(ImageId { id: Some(id) })) = info.aux {
            self.image_id = Some(id);
        }
        false
    }

    fn close(&mut self, progress: &mut (dyn FnMut(BuildProgress) + Send)) {
        if !self.partial_line.is_empty() {
            let line = std::mem::take(&mut self.partial_line);
            self.take_line(&line, progress);
        }
    }

    fn image_id(&self) -> Option<&str> {
        self.image_id.as_deref()
    }

    fn log(&mut self) -> &mut CappedLog {
        &mut self.log
    }

    fn failing_step(&self) -> FailingStep {
        FailingStep {
            name: self.last_step.clone(),
            instruction: self
                .last_step
                .as_deref()
                .and_then(dialect::build_step)
                .map(|(_, _, instruction)| instruction.to_owned()),
            output: self.step_output.as_str().to_owned(),
        }
    }
}

impl BuildState {
    /// Takes a piece of the builder's output. The classic builder colours what RUN
    /// steps print on stderr.
    fn push_text(&mut self, text: &str, progress: &mut (dyn FnMut(BuildProgress) + Send)) {
        let text = evidence::without_colours(text);
        self.log.push(&text);
        self.push_lines(&text, progress);
    }

    fn push_lines(&mut self, text: &str, progress: &mut (dyn FnMut(BuildProgress) + Send)) {
        let mut rest = text;
        while let Some(end) = rest.find('\n') {
            self.partial_line.push_str(&rest[..end]);
            let line = std::mem::take(&mut self.partial_line);
            self.take_line(&line, progress);
            rest = &rest[end + 1..];
        }
        self.partial_line.push_str(rest);
        if self.partial_line.len() > LINE_LIMIT_BYTES {
            let line = std::mem::take(&mut self.partial_line);
            self.take_line(&line, progress);
        }
    }

    fn take_line(&mut self, line: &str, progress: &mut (dyn FnMut(BuildProgress) + Send)) {
        let line = line.trim_end_matches('\r');
        if let Some((index, total, instruction)) = dialect::build_step(line) {
            self.in_from = instruction
                .split_whitespace()
                .next()
                .is_some_and(|keyword| keyword.eq_ignore_ascii_case("FROM"));
            if self.in_from {
                self.stage_heads.push(None);
            }
            self.last_step = Some(line.trim().to_owned());
            self.step_output.clear();
            progress(BuildProgress::Step {
                index,
                total,
                instruction: instruction.to_owned(),
            });
            return;
        }
        // The builder's own bookkeeping is not what the step printed.
        match dialect::build_marker(line) {
            Some(BuildMarker::RunningIn(id)) => self.running_containers.push(id.to_owned()),
            Some(BuildMarker::Image(id)) if !self.in_from => {
                if let Some(head) = self.stage_heads.last_mut() {
                    *head = Some(id.to_owned());
                }
            }
            Some(_) => {}
            None => {
                self.step_output.push(line);
                self.step_output.push("\n");
            }
        }
    }
}

/// A timed-out build may leave its current step's container running: the engine does
/// not always stop a classic build when the client goes away. The builder gives those
/// containers no labels, so they are found by the ids the build printed.
async fn remove_build_containers(docker: &Docker, ids: &[String]) {
    for id in ids {
        cleanup::force_remove_container(docker, id).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(state: &mut BuildState, text: &str) -> Vec<BuildProgress> {
        let mut steps = Vec::new();
        state.push_text(text, &mut |step| steps.push(step));
        steps
    }

    #[test]
    fn step_lines_become_progress_and_reset_the_step_output() {
        let mut state = BuildState::default();
        let steps = feed(
            &mut state,
            "Step 1/2 : FROM busybox\n ---> abc123\nStep 2/2 : RUN false\n ---> Running in 0123abcd\nboom\nTraceback:\n",
        );
        assert_eq!(
            steps,
            [
                BuildProgress::Step {
                    index: 1,
                    total: 2,
                    instruction: "FROM busybox".to_owned()
                },
                BuildProgress::Step {
                    index: 2,
                    total: 2,
                    instruction: "RUN false".to_owned()
                },
            ]
        );
        assert_eq!(state.last_step.as_deref(), Some("Step 2/2 : RUN false"));
        assert_eq!(state.step_output.as_str(), "boom\nTraceback:\n");
        assert_eq!(state.running_containers, ["0123abcd"]);
    }

    #[test]
    fn podman_steps_and_image_markers_are_read_as_dockers() {
        let mut state = BuildState::default();
        let steps = feed(
            &mut state,
            "STEP 1/3: FROM agent-base/python:3.11\nSTEP 2/3: WORKDIR /app\n--> Using cache f89f0da5017bf556179677a373ad6664558797421abcf02d30ca8b01181fdad1\n--> f89f0da5017\nSTEP 3/3: RUN false\nboom\nCOMMIT\n",
        );
        assert_eq!(steps.len(), 3);
        assert_eq!(state.stage_heads, [Some("f89f0da5017".to_owned())]);
        assert_eq!(
            state.step_output.as_str(),
            "boom\n",
            "the builder's own lines are not the step's"
        );
        assert_eq!(state.last_step.as_deref(), Some("STEP 3/3: RUN false"));
    }

    #[test]
    fn lines_split_across_stream_items_are_joined() {
        let mut state = BuildState::default();
        feed(&mut state, "Step 1/1 : RUN ec");
        let steps = feed(&mut state, "ho\npart");
        assert_eq!(steps.len(), 1);
        feed(&mut state, "ial\n");
        assert_eq!(state.step_output.as_str(), "partial\n");
    }

    #[test]
    fn a_failing_from_step_names_the_image_it_could_not_get() {
        let mut state = BuildState::default();
        feed(
            &mut state,
            "Step 1/2 : FROM --platform=linux/amd64 no-such:1 AS base\n",
        );
        let denied = "pull access denied for no-such, repository does not exist or may require 'docker login'";
        let BuildStatus::Failed { missing_image, .. } =
            crate::build::failed(&mut state, denied.to_owned())
        else {
            panic!("a failure");
        };
        assert_eq!(missing_image.as_deref(), Some("no-such:1"));
        feed(&mut state, "Step 2/2 : RUN pip install x\n");
        let BuildStatus::Failed { missing_image, .. } =
            crate::build::failed(&mut state, "dial tcp: timeout".to_owned())
        else {
            panic!("a failure");
        };
        assert_eq!(
            missing_image, None,
            "a RUN step is not a missing base image"
        );
    }

    #[test]
    fn terminal_colours_are_stripped_from_the_log_and_the_step_output() {
        let mut state = BuildState::default();
        feed(&mut state, "Step 2/3 : RUN python3 -c boom\n");
        feed(
            &mut state,
            "\u{1b}[91mValueError\u{1b}[0m\u{1b}[91m: \u{1b}[0m\u{1b}[91mconfig missing\n\u{1b}[0mRemoving intermediate container b8f104234bf3\n",
        );
        assert_eq!(state.step_output.as_str(), "ValueError: config missing\n");
        assert!(!state.log.as_str().contains('\u{1b}'));
        feed(&mut state, "plain \u{1b}[1;31mbold\u{1b}[0m\n");
        assert!(
            state.step_output.as_str().ends_with("plain bold\n"),
            "{}",
            state.step_output.as_str()
        );
    }
}
