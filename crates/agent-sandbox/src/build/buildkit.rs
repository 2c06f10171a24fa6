//! BuildKit, through the engine's session API: its status messages read into steps
//! (`[2/3] RUN …`), the capped log, the failing vertex's own output and error. Every
//! image carries its inline cache (`BUILDKIT_INLINE_CACHE=1`), so a copy of it in a
//! registry serves another engine's build as a cache source.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use bollard::Docker;
use bollard::moby::buildkit::v1::StatusResponse;
use bollard::models::{BuildInfo, BuildInfoAux, ImageId};
use bollard::query_parameters::BuilderVersion;

use super::Reader;
use super::evidence::{self, CappedLog, FailingStep, Tail};
use crate::dialect;
use crate::errors::SandboxError;
use crate::outcome::{BuildProgress, BuildStatus};
use crate::request::BuildRequest;

/// The build arg that has BuildKit write its cache into the image's config.
const INLINE_CACHE_ARG: &str = "BUILDKIT_INLINE_CACHE";

/// The name BuildKit gives the vertex that resolves a `FROM` image.
const LOAD_METADATA: &str = "[internal] load metadata for ";

/// The build's status, its log, and the image it made (what the spec's cache keeps:
/// BuildKit's steps make no images).
pub(super) async fn build(
    docker: &Docker,
    request: &BuildRequest<'_>,
    build_args: &BTreeMap<String, String>,
    progress: &mut (dyn FnMut(BuildProgress) + Send),
) -> Result<(BuildStatus, String, Vec<String>), SandboxError> {
    let mut state = Vertices::default();
    let session = session_id();
    let stream = start_build(docker, request, build_args, &session);
    // BuildKit stops a solve whose client went away, so a timed-out build leaves no
    // step running.
    let status = super::read(stream, request.timeout, &mut state, progress)
        .await?
        .unwrap_or(BuildStatus::TimedOut);
    let heads = match &status {
        BuildStatus::Built { image_id } => vec![image_id.clone()],
        _ => Vec::new(),
    };
    Ok((status, state.log.finish(), heads))
}

/// A session id no other build of this process or another uses.
fn session_id() -> String {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    format!(
        "agent-{}-{}-{nanos}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Sends the context and opens the build's status stream (with the session bollard
/// serves beside it).
fn start_build<'a>(
    docker: &'a Docker,
    request: &BuildRequest<'_>,
    build_args: &BTreeMap<String, String>,
    session: &str,
) -> impl futures_util::Stream<Item = Result<BuildInfo, bollard::errors::Error>> + 'a {
    let mut build_args = build_args.clone();
    build_args.insert(INLINE_CACHE_ARG.to_owned(), "1".to_owned());
    let body = bollard::body_full(bytes::Bytes::copy_from_slice(&request.context.bytes));
    let options = super::options(request, &build_args);
    let options = options
        .version(BuilderVersion::BuilderBuildKit)
        .session(session);
    docker.build_image(options.build(), None, Some(body))
}

/// One vertex of the build graph: a step, or BuildKit's own work.
#[derive(Default)]
struct Vertex {
    /// Its number in the log (`#3`), in the order BuildKit first named it.
    number: usize,
    name: String,
    output: Tail,
    cached: bool,
    done: bool,
    errored: bool,
}

#[derive(Default)]
struct Vertices {
    log: CappedLog,
    by_digest: HashMap<String, Vertex>,
    /// The digest of the first vertex that failed.
    failed: Option<String>,
    image_id: Option<String>,
}

impl Reader for Vertices {
    fn take(&mut self, info: BuildInfo, progress: &mut (dyn FnMut(BuildProgress) + Send)) -> bool {
        if let Some(text) = info.stream.as_deref() {
            self.log.push(&evidence::without_colours(text));
        }
        match info.aux {
            Some(BuildInfoAux::BuildKit(status)) => {
                self.take_status(status, progress);
                false
            }
            // The image is stored when its id is announced. The stream goes on while
            // the session does, so the build ends here.
            Some(BuildInfoAux::Default(ImageId { id: Some(id) })) => {
                self.image_id = Some(id);
                true
            }
            _ => false,
        }
    }

    fn close(&mut self, _progress: &mut (dyn FnMut(BuildProgress) + Send)) {}

    fn image_id(&self) -> Option<&str> {
        self.image_id.as_deref()
    }

    fn log(&mut self) -> &mut CappedLog {
        &mut self.log
    }

    fn failing_step(&self) -> FailingStep {
        let vertex = self
            .failed
            .as_ref()
            .and_then(|digest| self.by_digest.get(digest));
        vertex.map_or_else(FailingStep::default, |vertex| FailingStep {
            name: Some(vertex.name.clone()),
            instruction: from_instruction(&vertex.name),
            output: vertex.output.as_str().to_owned(),
        })
    }
}

impl Vertices {
    /// Logs what changed, as BuildKit's plain progress does (`#3 [2/3] RUN …`,
    /// `#3 CACHED`, `#3 DONE`, `#3 ERROR: …`), and reports each step once.
    fn take_status(
        &mut self,
        status: StatusResponse,
        progress: &mut (dyn FnMut(BuildProgress) + Send),
    ) {
        for update in status.vertexes {
            let vertex = self.vertex(&update.digest);
            let mut lines = String::new();
            if vertex.name.is_empty() && !update.name.is_empty() {
                vertex.name = update.name;
                lines.push_str(&format!("#{} {}\n", vertex.number, vertex.name));
                if let Some((index, total, instruction)) = dialect::buildkit_step(&vertex.name) {
                    progress(BuildProgress::Step {
                        index,
                        total,
                        instruction: instruction.to_owned(),
                    });
                }
            }
            if update.cached && !vertex.cached {
                vertex.cached = true;
                lines.push_str(&format!("#{} CACHED\n", vertex.number));
            }
            let failed_now = !update.error.is_empty() && !vertex.errored;
            if failed_now {
                vertex.errored = true;
                lines.push_str(&format!("#{} ERROR: {}\n", vertex.number, update.error));
            } else if update.completed.is_some() && !vertex.done && !vertex.errored {
                vertex.done = true;
                lines.push_str(&format!("#{} DONE\n", vertex.number));
            }
            self.log.push(&lines);
            if failed_now {
                self.failed.get_or_insert(update.digest);
            }
        }
        for entry in status.logs {
            let text = String::from_utf8_lossy(&entry.msg);
            let text = evidence::without_colours(&text);
            self.vertex(&entry.vertex).output.push(&text);
            self.log.push(&text);
        }
    }

    fn vertex(&mut self, digest: &str) -> &mut Vertex {
        let next = self.by_digest.len() + 1;
        self.by_digest
            .entry(digest.to_owned())
            .or_insert_with(|| Vertex {
                number: next,
                ..Vertex::default()
            })
    }
}

/// The `FROM` a vertex stands for, with the image as the Dockerfile would name it:
/// BuildKit resolves `FROM x:1` in a vertex `[internal] load metadata for
/// docker.io/library/x:1`, then pulls it in `[1/3] FROM docker.io/library/x:1`.
fn from_instruction(name: &str) -> Option<String> {
    let image = match name.strip_prefix(LOAD_METADATA) {
        Some(image) => image,
        None => {
            let (_, _, instruction) = dialect::buildkit_step(name)?;
            let (keyword, rest) = instruction.split_once(' ')?;
            if !keyword.eq_ignore_ascii_case("FROM") {
                return None;
            }
            rest.split_whitespace()
                .find(|word| !word.starts_with("--"))?
        }
    };
    let short = image
        .strip_prefix("docker.io/library/")
        .or_else(|| image.strip_prefix("docker.io/"))
        .unwrap_or(image);
    Some(format!("FROM {short}"))
}

#[cfg(test)]
mod tests {
    use bollard::moby::buildkit::v1::{Vertex as Update, VertexLog};

    use super::*;

    fn update(digest: &str, name: &str, error: &str) -> Update {
        Update {
            digest: digest.to_owned(),
            name: name.to_owned(),
            error: error.to_owned(),
            ..Update::default()
        }
    }

    fn output(digest: &str, text: &str) -> VertexLog {
        VertexLog {
            vertex: digest.to_owned(),
            msg: text.as_bytes().to_vec(),
            ..VertexLog::default()
        }
    }

    #[test]
    fn steps_are_reported_once_and_the_failing_vertex_keeps_its_own_output() {
        let mut vertices = Vertices::default();
        let mut steps = Vec::new();
        let mut progress = |step| steps.push(step);
        vertices.take_status(
            StatusResponse {
                vertexes: vec![
                    update("a", "[internal] load build definition from Dockerfile", ""),
                    update("b", "[1/3] FROM docker.io/agent-base/python:3.11", ""),
                    update("c", "[stage-1 2/3] RUN pip install nothing", ""),
                ],
                logs: vec![
                    output("c", "\u{1b}[31mERROR: no such package\n"),
                    output("a", "other\n"),
                ],
                ..StatusResponse::default()
            },
            &mut progress,
        );
        vertices.take_status(
            StatusResponse {
                vertexes: vec![update(
                    "c",
                    "[stage-1 2/3] RUN pip install nothing",
                    "exit code: 1",
                )],
                ..StatusResponse::default()
            },
            &mut progress,
        );
        assert_eq!(steps.len(), 2, "{steps:?}");
        assert_eq!(
            steps[1],
            BuildProgress::Step {
                index: 2,
                total: 3,
                instruction: "RUN pip install nothing".to_owned()
            }
        );
        let BuildStatus::Failed {
            failing_step,
            step_output,
            missing_image,
            ..
        } = crate::build::failed(&mut vertices, "failed to solve: exit code: 1".to_owned())
        else {
            panic!("a failure");
        };
        assert_eq!(
            failing_step.as_deref(),
            Some("[stage-1 2/3] RUN pip install nothing")
        );
        assert_eq!(step_output, "ERROR: no such package\n");
        assert_eq!(missing_image, None);
        let log = vertices.log.finish();
        assert!(
            log.contains("#3 [stage-1 2/3] RUN pip install nothing\n"),
            "{log}"
        );
        assert!(log.contains("#3 ERROR: exit code: 1\n"), "{log}");
    }

    #[test]
    fn a_base_image_buildkit_cannot_resolve_is_named_as_the_dockerfile_names_it() {
        let mut vertices = Vertices::default();
        vertices.take_status(
            StatusResponse {
                vertexes: vec![update(
                    "m",
                    "[internal] load metadata for docker.io/library/no-such-image:1",
                    "pull access denied, repository does not exist",
                )],
                ..StatusResponse::default()
            },
            &mut |_| {},
        );
        let BuildStatus::Failed { missing_image, .. } = crate::build::failed(
            &mut vertices,
            "failed to solve: no-such-image:1: pull access denied".to_owned(),
        ) else {
            panic!("a failure");
        };
        assert_eq!(missing_image.as_deref(), Some("no-such-image:1"));
        assert_eq!(
            from_instruction("[2/2] FROM --platform=linux/amd64 docker.io/agent-base/x:1")
                .as_deref(),
            Some("FROM agent-base/x:1")
        );
        assert_eq!(from_instruction("[2/2] RUN x"), None);
    }
}
