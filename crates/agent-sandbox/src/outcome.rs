//! What the engine's work came to: build and run outcomes, captured output, cleanup
//! reports and the engine's identity.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineInfo {
    /// The address it was reached at (`unix://…`, `tcp://…`).
    pub host: String,
    /// Which program answered (from `/version`'s components).
    pub product: Product,
    /// The product's own version (Docker `20.10.24`, Podman `4.3.1`).
    pub version: String,
    pub api_version: String,
    /// `NCPU` of `/info`: the default number of builds and runs it takes at once.
    pub cpus: usize,
    /// `Driver` of `/info` (`overlay2`, `fuse-overlayfs`, …).
    pub storage_driver: String,
    /// The builder its builds go to.
    pub builder: Builder,
}

/// Which of the engine's builders builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Builder {
    /// The engine's first builder: one committed container per step.
    Classic,
    /// BuildKit, through the engine's session API.
    #[serde(rename = "buildkit")]
    BuildKit,
}

impl std::fmt::Display for Builder {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Builder::Classic => "classic",
            Builder::BuildKit => "buildkit",
        })
    }
}

/// Reported while a build goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildProgress {
    /// `Step 2/5 : RUN pip install …`
    Step {
        index: u32,
        total: u32,
        instruction: String,
    },
}

#[derive(Debug, Clone)]
pub struct BuildOutcome {
    pub status: BuildStatus,
    /// The whole build output as the engine streamed it (capped at 4 MiB, the cut
    /// marked).
    pub log: String,
    pub duration: Duration,
    /// What the build egress policy refused.
    pub egress: EgressRefusals,
}

/// What a build was refused: each host, port, step and way once, counted, in the
/// order they came, up to a hundred; the connections past those only counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressRefusals {
    pub kept: Vec<EgressRefusal>,
    pub unlisted: u64,
}

/// A connection a build step tried that the egress policy refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressRefusal {
    /// The name or address asked for.
    pub host: String,
    pub port: u16,
    /// `proxy` (asked of the proxy), `direct` (a connection that ignored it) or `dns`
    /// (a name looked up in the step).
    pub via: String,
    pub reason: String,
    /// The build step running then (1-based) and its instruction.
    pub step: Option<u32>,
    pub instruction: Option<String>,
    /// How many times the same host, port, step and way were refused.
    pub count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildStatus {
    Built {
        image_id: String,
    },
    Failed {
        /// The engine's one-line error.
        error: String,
        /// `Step k/n : INSTRUCTION` of the step that failed, when known.
        failing_step: Option<String>,
        /// What that step printed before it failed (e.g. a traceback), capped.
        step_output: String,
        /// The image a `FROM` named that the engine neither has nor can pull: the
        /// build failed for want of its base, not for anything the steps did.
        missing_image: Option<String>,
    },
    /// Stopped at the build timeout; what it left was removed.
    TimedOut,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    pub bytes: Vec<u8>,
    /// Everything the stream carried, kept or not.
    pub total_bytes: u64,
    pub truncated: bool,
}

impl Captured {
    /// Keeps up to `limit` bytes in all; counts everything.
    pub(crate) fn take(&mut self, data: &[u8], limit: usize) {
        self.total_bytes = self.total_bytes.saturating_add(data.len() as u64);
        let room = limit.saturating_sub(self.bytes.len());
        if data.len() > room {
            self.truncated = true;
        }
        self.bytes.extend_from_slice(&data[..data.len().min(room)]);
    }
}

#[derive(Debug, Clone, Default)]
pub struct RunOutcome {
    /// `None` when the container never exited on its own (timeout) or never started.
    pub exit_code: Option<i64>,
    pub stdout: Captured,
    pub stderr: Captured,
    pub timed_out: bool,
    pub oom_killed: bool,
    /// The engine refused to start the container (e.g. the command does not exist):
    /// its message.
    pub start_error: Option<String>,
    pub duration: Duration,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupReport {
    pub containers: Vec<String>,
    pub images: Vec<String>,
    /// The build egress gates' volumes.
    pub volumes: Vec<String>,
}

/// What the build cache (`agent-cache/…` tags) holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheUsage {
    /// Cache tags.
    pub entries: usize,
    /// Bytes of the layers only the cache keeps.
    pub bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_keeps_the_limit_and_counts_the_rest() {
        let mut captured = Captured::default();
        captured.take(b"hello", 8);
        assert!(!captured.truncated);
        captured.take(b"world", 8);
        captured.take(b"again", 8);
        assert_eq!(captured.bytes, b"hellowor");
        assert_eq!(captured.total_bytes, 15);
        assert!(captured.truncated);
    }

    #[test]
    fn captured_exactly_at_the_limit_is_not_truncated() {
        let mut captured = Captured::default();
        captured.take(b"12345678", 8);
        assert!(!captured.truncated);
        captured.take(b"", 8);
        assert!(!captured.truncated);
    }
}

/// Why a registry refused a push, for the hint the user gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushRefusal {
    /// Missing or wrong credentials, or no right to push there.
    AuthRefused,
    /// The registry did not answer (connection refused, no such host, TLS).
    Unreachable,
    /// The reference is not a valid name, or the registry does not accept it.
    NameRejected,
    /// The push did not finish in time.
    TimedOut,
    Other,
}

impl PushRefusal {
    /// Sorts the engine's words for a failed push.
    pub fn classify(message: &str) -> PushRefusal {
        let message = message.to_ascii_lowercase();
        let any = |words: &[&str]| words.iter().any(|word| message.contains(word));
        if any(&[
            "unauthorized",
            "authentication required",
            "no basic auth credentials",
            "incorrect username or password",
            "denied",
            "forbidden",
        ]) {
            PushRefusal::AuthRefused
        } else if any(&[
            "invalid reference format",
            "name unknown",
            "name invalid",
            "repository name must",
            "invalid repository name",
            "does not exist locally",
        ]) {
            PushRefusal::NameRejected
        } else if any(&[
            "dial tcp",
            "connection refused",
            "no such host",
            "i/o timeout",
            "network is unreachable",
            "no route to host",
            "http response to https client",
            "x509",
            "tls:",
        ]) {
            PushRefusal::Unreachable
        } else {
            PushRefusal::Other
        }
    }
}

/// Which program serves the engine's API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Product {
    Docker,
    Podman,
    /// Something else that speaks the API (a component list naming neither).
    Other,
}

impl std::fmt::Display for Product {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Product::Docker => "Docker Engine",
            Product::Podman => "Podman",
            Product::Other => "an engine speaking the Docker API",
        })
    }
}

/// A way of putting labels on an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SealMethod {
    /// A new config over the same layers, loaded as a config-only archive.
    ConfigLoad,
    /// `POST /commit` of a created, never-started container that carries the labels.
    Commit,
    /// A build of `FROM <image id>` with the labels as the build's `labels`.
    Build,
    /// BuildKit's build of the image again, every step cached, with the labels added
    /// (see `rebuild`): only for an image BuildKit built on this engine.
    Rebuild,
}

impl SealMethod {
    /// Cheapest first.
    pub(crate) const ALL: [SealMethod; 3] = [
        SealMethod::ConfigLoad,
        SealMethod::Commit,
        SealMethod::Build,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SealMethod::ConfigLoad => "config_load",
            SealMethod::Commit => "commit",
            SealMethod::Build => "build",
            SealMethod::Rebuild => "rebuild",
        }
    }
}

/// The labelled image, the way that made it, and how long the seal took (ways
/// tried and refused included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub image_id: String,
    pub method: SealMethod,
    pub duration: Duration,
}

/// What an image that [`Sandbox::ensure_image`] makes sure of is for: the error of a
/// missing one and its hint name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageRole {
    /// An image the model's Dockerfile may build `FROM`.
    Base,
    /// The image of the helper container that sends a service's probes.
    Probe,
    /// The image of the build egress gate and relay.
    Egress,
}

impl std::fmt::Display for ImageRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ImageRole::Base => "base image",
            ImageRole::Probe => "probe image",
            ImageRole::Egress => "egress image",
        })
    }
}

/// An image on the engine (pulled from a registry, or found there), as the engine
/// holds it now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PulledImage {
    pub id: String,
    pub labels: BTreeMap<String, String>,
    /// `repository@sha256:…` for each repository it was pulled from or pushed to.
    pub repo_digests: Vec<String>,
}
