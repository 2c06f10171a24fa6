//! Builds with the classic builder: streams the engine's output under the build
//! timeout, reports steps, keeps a capped log and the failing step's own output, and
//! removes the containers a timed-out build leaves behind.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use bollard::Docker;
use bollard::models::BuildInfo;
use bollard::query_parameters::BuildImageOptionsBuilder;
use futures_util::StreamExt;

use crate::cleanup;
use crate::dialect::{self, BuildMarker};
use crate::errors::SandboxError;
use crate::outcome::{BuildOutcome, BuildProgress, BuildStatus};
use crate::request::BuildRequest;

/// The whole log kept per build.
const LOG_LIMIT_BYTES: usize = 4 * 1024 * 1024;
/// The tail of the failing step's output kept as evidence.
const STEP_OUTPUT_LIMIT_BYTES: usize = 16 * 1024;
/// A "line" without a newline is cut here so a program printing no newlines cannot
/// grow the line buffer without bound.
const LINE_LIMIT_BYTES: usize = 64 * 1024;

/// What the engine says when a step's parent image vanished between its cache hit
/// and the step's use of it (removed by `gc --cache` or the cache's size cap while
/// this build ran, or on Podman, whose image removal also takes the untagged parents
/// another build's cache lookup stands on): the build is tried once more, and then
/// builds that layer anew.
const VANISHED_PARENT_ERRORS: [&str; 5] = [
    "unknown parent image id",
    "no such image: sha256:",
    "reference does not exist",
    // Podman 4.3: `checking if cached image exists from a previous build: getting
    // top layer info: layer not known`.
    "layer not known",
    "image not known",
];

/// `build_args` are the build's `ARG` values (the seal's label build passes its labels
/// so).
pub(crate) async fn build(
    docker: &Docker,
    request: BuildRequest<'_>,
    build_args: &BTreeMap<String, String>,
    progress: &mut (dyn FnMut(BuildProgress) + Send),
) -> Result<BuildOutcome, SandboxError> {
    let started = Instant::now();
    let first = build_once(docker, request, build_args, progress).await?;
    let vanished = match &first.status {
        BuildStatus::Failed { error, .. } => {
            let error = error.to_ascii_lowercase();
            VANISHED_PARENT_ERRORS
                .iter()
                .any(|known| error.contains(known))
        }
        _ => false,
    };
    let remaining = request.timeout.saturating_sub(started.elapsed());
    if !vanished || remaining.is_zero() {
        return Ok(first);
    }
    tracing::info!("a cached layer vanished during the build; building again");
    let retry = BuildRequest {
        timeout: remaining,
        ..request
    };
    let mut second = build_once(docker, retry, build_args, progress).await?;
    second.log = format!(
        "{}\n[a cached layer vanished during the build; built again]\n\n{}",
        first.log, second.log
    );
    second.duration = started.elapsed();
    Ok(second)
}

async fn build_once(
    docker: &Docker,
    request: BuildRequest<'_>,
    build_args: &BTreeMap<String, String>,
    progress: &mut (dyn FnMut(BuildProgress) + Send),
) -> Result<BuildOutcome, SandboxError> {
    let started = Instant::now();
    let mut stream = start_build(docker, &request, build_args);
    let mut state = BuildState::default();
    let streamed = tokio::time::timeout(request.timeout, async {
        while let Some(item) = stream.next().await {
            if let Some(end) = state.take(item, progress) {
                return end;
            }
        }
        state.finish_lines(progress);
        Ending::StreamClosed
    })
    .await;
    // Dropping the stream closes the connection, so after a timeout the engine's
    // writes of whatever the step still prints fail at once instead of waiting for a
    // reader: nothing of the engine is left blocked on us.
    drop(stream);

    let status = match streamed {
        Err(_elapsed) => {
            state.push_log(&format!(
                "\n[build stopped at the timeout of {} s]\n",
                request.timeout.as_secs()
            ));
            remove_build_containers(docker, &state.running_containers).await;
            BuildStatus::TimedOut
        }
        Ok(Ending::Built(image_id)) => BuildStatus::Built { image_id },
        Ok(Ending::Failed(error)) => state.failed(error),
        Ok(Ending::Broken(source)) => return Err(SandboxError::Build(source)),
        Ok(Ending::StreamClosed) => match state.image_id.clone() {
            Some(image_id) => BuildStatus::Built { image_id },
            None => state.failed("the engine ended the build without an image".to_owned()),
        },
    };
    if let Some(repository) = request.cache_repository {
        let heads: Vec<String> = state.stage_heads.iter().flatten().cloned().collect();
        crate::cache::keep_heads(docker, repository, &heads).await;
    }
    Ok(BuildOutcome {
        status,
        log: state.into_log(),
        duration: started.elapsed(),
    })
}

/// Sends the context and opens the build's output stream.
fn start_build(
    docker: &Docker,
    request: &BuildRequest<'_>,
    build_args: &BTreeMap<String, String>,
) -> impl futures_util::Stream<Item = Result<BuildInfo, bollard::errors::Error>> {
    let labels: HashMap<&str, &str> = request
        .labels
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    let build_args: HashMap<&str, &str> = build_args
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    // `rm` and `forcerm` so no intermediate container outlives its step, even when
    // the step fails. The builder version stays the default (classic): asking for
    // BuildKit without bollard's `buildkit` feature breaks the stream.
    let mut options = BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .rm(true)
        .forcerm(true)
        .labels(&labels)
        .buildargs(&build_args)
        .nocache(request.no_cache);
    if request.network != "default" {
        options = options.networkmode(request.network);
    }
    // A JSON array of references, as bollard sends it; `Sandbox::build` sends none to
    // an engine that refuses the array (`dialect::takes_cache_from_list`).
    if !request.cache_from.is_empty() {
        options = options.cachefrom(&request.cache_from.to_vec());
    }
    let body = bollard::body_full(bytes::Bytes::copy_from_slice(&request.context.bytes));
    docker.build_image(options.build(), None, Some(body))
}

enum Ending {
    Built(String),
    Failed(String),
    Broken(bollard::errors::Error),
    StreamClosed,
}

#[derive(Default)]
struct BuildState {
    log: String,
    log_cut_bytes: usize,
    /// Text of the current line not yet ended by a newline.
    partial_line: String,
    last_step: Option<String>,
    step_output: String,
    image_id: Option<String>,
    /// `---> Running in <id>`: the containers of the steps, for cleanup on timeout.
    running_containers: Vec<String>,
    /// Whether the current step is a `FROM`: its `---> <id>` is the base image, not
    /// one this build made.
    in_from: bool,
    /// The last image each stage reached (`None` while a stage has only its `FROM`).
    stage_heads: Vec<Option<String>>,
}

impl BuildState {
    /// Takes one stream item; `Some` when the build has ended.
    fn take(
        &mut self,
        item: Result<BuildInfo, bollard::errors::Error>,
        progress: &mut (dyn FnMut(BuildProgress) + Send),
    ) -> Option<Ending> {
        match item {
            Ok(info) => {
                if let Some(text) = info.stream.as_deref() {
                    self.push_text(text, progress);
                }
                if let Some(id) = info.aux.and_then(|aux| aux.id) {
                    self.image_id = Some(id);
                }
                None
            }
            Err(error) => {
                self.finish_lines(progress);
                // bollard 0.21.1 may report a decoding error after the stream has
                // already delivered the image id: the build succeeded.
                if let Some(image_id) = self.image_id.clone() {
                    tracing::debug!(%error, "ignored an error after the build succeeded");
                    return Some(Ending::Built(image_id));
                }
                Some(match error {
                    bollard::errors::Error::DockerStreamError { error } => {
                        Ending::Failed(error.trim().to_owned())
                    }
                    // The engine answered, but refused the build (a Dockerfile it
                    // cannot parse, say): an outcome for the model, not an engine error.
                    bollard::errors::Error::DockerResponseServerError { message, .. } => {
                        Ending::Failed(message.trim().to_owned())
                    }
                    other => Ending::Broken(other),
                })
            }
        }
    }

    /// Takes a piece of the builder's output. The classic builder colours what RUN
    /// steps print on stderr; the log and the feedback want the text alone.
    fn push_text(&mut self, text: &str, progress: &mut (dyn FnMut(BuildProgress) + Send)) {
        // The crate drops every control character but the newline (tabs too), so text
        // without an escape is taken as it is.
        let text = if text.contains('\u{1b}') {
            std::borrow::Cow::Owned(strip_ansi_escapes::strip_str(text))
        } else {
            std::borrow::Cow::Borrowed(text)
        };
        self.push_log(&text);
        self.push_lines(&text, progress);
    }

    fn push_log(&mut self, text: &str) {
        let room = LOG_LIMIT_BYTES.saturating_sub(self.log.len());
        if self.log_cut_bytes == 0 && text.len() <= room {
            self.log.push_str(text);
            return;
        }
        if self.log_cut_bytes == 0 {
            let kept = floor_char_boundary(text, room);
            self.log.push_str(&text[..kept]);
            self.log_cut_bytes = text.len() - kept;
        } else {
            self.log_cut_bytes += text.len();
        }
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

    fn finish_lines(&mut self, progress: &mut (dyn FnMut(BuildProgress) + Send)) {
        if !self.partial_line.is_empty() {
            let line = std::mem::take(&mut self.partial_line);
            self.take_line(&line, progress);
        }
    }

    fn take_line(&mut self, line: &str, progress: &mut (dyn FnMut(BuildProgress) + Send)) {
        let line = line.trim_end_matches('\r');
        if let Some(step) = parse_step(line) {
            let BuildProgress::Step { instruction, .. } = &step;
            self.in_from = instruction
                .split_whitespace()
                .next()
                .is_some_and(|keyword| keyword.eq_ignore_ascii_case("FROM"));
            if self.in_from {
                self.stage_heads.push(None);
            }
            self.last_step = Some(line.trim().to_owned());
            self.step_output.clear();
            progress(step);
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
            None => self.keep_step_output(line),
        }
    }

    fn keep_step_output(&mut self, line: &str) {
        self.step_output.push_str(line);
        self.step_output.push('\n');
        if self.step_output.len() > STEP_OUTPUT_LIMIT_BYTES {
            let cut = ceil_char_boundary(
                &self.step_output,
                self.step_output.len() - STEP_OUTPUT_LIMIT_BYTES,
            );
            self.step_output.replace_range(..cut, "");
        }
    }
}

impl BuildState {
    /// The failure `error` ended the build with, logged, with the evidence gathered.
    fn failed(&mut self, error: String) -> BuildStatus {
        self.push_log(&format!("ERROR: {error}\n"));
        BuildStatus::Failed {
            missing_image: missing_base_image(&error, self.last_step.as_deref()),
            failing_step: self.last_step.clone(),
            step_output: self.step_output.clone(),
            error,
        }
    }

    fn into_log(mut self) -> String {
        if self.log_cut_bytes > 0 {
            let marker = format!("\n[build log cut: {} more bytes]\n", self.log_cut_bytes);
            self.log.push_str(&marker);
        }
        self.log
    }
}

/// What the engine says when it has no copy of an image and cannot pull one: the
/// registry refused or does not know it, or could not be reached at all.
const UNAVAILABLE_IMAGE_ERRORS: [&str; 7] = [
    "pull access denied",
    "repository does not exist",
    "manifest unknown",
    "not found",
    "dial tcp",
    "no such host",
    "registry-1.docker.io",
];

/// The image a failing `FROM` step named, when the engine's error says it could not
/// get that image. The classic builder prints the step (`Step 1/3 : FROM x AS y`)
/// before it tries the registry, and the registry's error does not always name the
/// image (`dial tcp: lookup registry-1.docker.io …`), so the step is where the name
/// comes from.
fn missing_base_image(error: &str, failing_step: Option<&str>) -> Option<String> {
    let (_, _, instruction) = dialect::build_step(failing_step?)?;
    let mut words = instruction.split_whitespace();
    if !words.next()?.eq_ignore_ascii_case("FROM") {
        return None;
    }
    let image = words.find(|word| !word.starts_with("--"))?;
    let error = error.to_ascii_lowercase();
    UNAVAILABLE_IMAGE_ERRORS
        .iter()
        .any(|known| error.contains(known))
        .then(|| image.to_owned())
}

fn parse_step(line: &str) -> Option<BuildProgress> {
    let (index, total, instruction) = dialect::build_step(line)?;
    Some(BuildProgress::Step {
        index,
        total,
        instruction: instruction.to_owned(),
    })
}

/// A timed-out build may leave its current step's container running: the engine does
/// not always stop a classic build when the client goes away. The builder gives those
/// containers no labels, so they are found by the ids the build printed.
async fn remove_build_containers(docker: &Docker, ids: &[String]) {
    for id in ids {
        cleanup::force_remove_container(docker, id).await;
    }
}

fn floor_char_boundary(text: &str, index: usize) -> usize {
    let mut index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

fn ceil_char_boundary(text: &str, index: usize) -> usize {
    let mut index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index += 1;
    }
    index
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
        assert_eq!(state.step_output, "boom\nTraceback:\n");
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
            state.step_output, "boom\n",
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
        assert_eq!(state.step_output, "partial\n");
    }

    #[test]
    fn step_output_keeps_the_tail() {
        let mut state = BuildState::default();
        for index in 0..5000 {
            feed(&mut state, &format!("line {index}\n"));
        }
        assert!(state.step_output.len() <= STEP_OUTPUT_LIMIT_BYTES);
        assert!(state.step_output.ends_with("line 4999\n"));
    }

    #[test]
    fn the_log_is_capped_and_the_cut_marked() {
        let mut state = BuildState::default();
        let chunk = "é".repeat(1000);
        for _ in 0..(LOG_LIMIT_BYTES / chunk.len() + 10) {
            state.push_log(&chunk);
        }
        let log = state.into_log();
        assert!(log.len() < LOG_LIMIT_BYTES + 100);
        assert!(log.contains("[build log cut: "));
    }

    #[test]
    fn an_unavailable_from_image_is_named() {
        let step = Some("Step 1/3 : FROM --platform=linux/amd64 no-such-image:1 AS base");
        let offline = "Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io: no such host";
        assert_eq!(
            missing_base_image(offline, step).as_deref(),
            Some("no-such-image:1")
        );
        let denied = "pull access denied for no-such-image, repository does not exist or may require 'docker login'";
        assert_eq!(
            missing_base_image(denied, Some("Step 1/1 : from x")).as_deref(),
            Some("x")
        );
        // Another step failing, or a FROM failing for another reason, is not a missing image.
        assert_eq!(
            missing_base_image("dial tcp: timeout", Some("Step 2/3 : RUN pip install x")),
            None
        );
        assert_eq!(
            missing_base_image("unknown flag: --nope", Some("Step 1/1 : FROM x")),
            None
        );
        assert_eq!(missing_base_image("manifest unknown", None), None);
        // Podman's builder (buildah) names the step and the registry its own way.
        let podman = "creating build container: initializing source docker://no-such-image-agent:1: pinging container registry registry-1.docker.io: Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io on 10.255.255.53:53: no such host";
        assert_eq!(
            missing_base_image(podman, Some("STEP 1/2: FROM no-such-image-agent:1")).as_deref(),
            Some("no-such-image-agent:1")
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
        assert_eq!(state.step_output, "ValueError: config missing\n");
        assert!(!state.log.contains('\u{1b}'));
        feed(&mut state, "plain \u{1b}[1;31mbold\u{1b}[0m\n");
        assert!(
            state.step_output.ends_with("plain bold\n"),
            "{}",
            state.step_output
        );
    }
}
