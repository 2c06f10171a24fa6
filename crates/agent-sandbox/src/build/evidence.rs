//! What a build leaves as evidence, whichever builder ran it: the whole log, capped
//! with its cut marked; the tail of one step's output; and whether a failing `FROM`
//! failed for want of its image.

use std::borrow::Cow;

/// The whole log kept per build.
pub(super) const LOG_LIMIT_BYTES: usize = 4 * 1024 * 1024;
/// The tail of the failing step's output kept as evidence.
pub(super) const STEP_OUTPUT_LIMIT_BYTES: usize = 16 * 1024;

/// The build's log: everything up to [`LOG_LIMIT_BYTES`], then only a count.
#[derive(Default)]
pub(super) struct CappedLog {
    text: String,
    cut_bytes: usize,
}

impl CappedLog {
    pub(super) fn push(&mut self, text: &str) {
        let room = LOG_LIMIT_BYTES.saturating_sub(self.text.len());
        if self.cut_bytes == 0 && text.len() <= room {
            self.text.push_str(text);
            return;
        }
        if self.cut_bytes == 0 {
            let kept = agent_spec::floor_boundary(text, room);
            self.text.push_str(&text[..kept]);
            self.cut_bytes = text.len() - kept;
        } else {
            self.cut_bytes += text.len();
        }
    }

    #[cfg(test)]
    pub(super) fn as_str(&self) -> &str {
        &self.text
    }

    pub(super) fn finish(mut self) -> String {
        if self.cut_bytes > 0 {
            let marker = format!("\n[build log cut: {} more bytes]\n", self.cut_bytes);
            self.text.push_str(&marker);
        }
        self.text
    }
}

/// The last [`STEP_OUTPUT_LIMIT_BYTES`] of what one step printed.
#[derive(Default, Debug, Clone)]
pub(super) struct Tail(String);

impl Tail {
    pub(super) fn push(&mut self, text: &str) {
        self.0.push_str(text);
        if self.0.len() > STEP_OUTPUT_LIMIT_BYTES {
            let cut = agent_spec::ceil_boundary(&self.0, self.0.len() - STEP_OUTPUT_LIMIT_BYTES);
            self.0.replace_range(..cut, "");
        }
    }

    pub(super) fn clear(&mut self) {
        self.0.clear();
    }

    pub(super) fn as_str(&self) -> &str {
        &self.0
    }
}

/// `text` without terminal colours: builders colour what steps print on stderr; the
/// log and the feedback want the text alone. The crate drops every control character
/// but the newline (tabs too), so text without an escape is taken as it is.
pub(super) fn without_colours(text: &str) -> Cow<'_, str> {
    if text.contains('\u{1b}') {
        Cow::Owned(strip_ansi_escapes::strip_str(text))
    } else {
        Cow::Borrowed(text)
    }
}

/// What a builder knows of the step its build failed at.
#[derive(Default)]
pub(super) struct FailingStep {
    /// The step as the builder names it (`Step 3/3 : RUN …`, `[3/3] RUN …`).
    pub name: Option<String>,
    /// Its instruction (`FROM x:1`, `RUN …`), when it can be told.
    pub instruction: Option<String>,
    /// The tail of what it printed.
    pub output: String,
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

/// The image a failing `FROM` instruction named, when the engine's error says it could
/// not get that image. The error does not always name the image (`dial tcp: lookup
/// registry-1.docker.io …`), so the instruction is where the name comes from.
pub(super) fn missing_base_image(error: &str, instruction: Option<&str>) -> Option<String> {
    let mut words = instruction?.split_whitespace();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_end() {
        let mut tail = Tail::default();
        for index in 0..5000 {
            tail.push(&format!("line {index} é\n"));
        }
        assert!(tail.as_str().len() <= STEP_OUTPUT_LIMIT_BYTES);
        assert!(tail.as_str().ends_with("line 4999 é\n"));
    }

    #[test]
    fn the_log_is_capped_and_the_cut_marked() {
        let mut log = CappedLog::default();
        let chunk = "é".repeat(1000);
        for _ in 0..(LOG_LIMIT_BYTES / chunk.len() + 10) {
            log.push(&chunk);
        }
        let log = log.finish();
        assert!(log.len() < LOG_LIMIT_BYTES + 100);
        assert!(log.contains("[build log cut: "));
    }

    #[test]
    fn an_unavailable_from_image_is_named() {
        let from = Some("FROM --platform=linux/amd64 no-such-image:1 AS base");
        let offline = "Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io: no such host";
        assert_eq!(
            missing_base_image(offline, from).as_deref(),
            Some("no-such-image:1")
        );
        let denied = "pull access denied for no-such-image, repository does not exist or may require 'docker login'";
        assert_eq!(
            missing_base_image(denied, Some("from x")).as_deref(),
            Some("x")
        );
        // Another step failing, or a FROM failing for another reason, is not a missing image.
        assert_eq!(
            missing_base_image("dial tcp: timeout", Some("RUN pip install x")),
            None
        );
        assert_eq!(
            missing_base_image("unknown flag: --nope", Some("FROM x")),
            None
        );
        assert_eq!(missing_base_image("manifest unknown", None), None);
        // Podman's builder (buildah) names the registry its own way.
        let podman = "creating build container: initializing source docker://no-such-image-agent:1: pinging container registry registry-1.docker.io: Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io on 10.255.255.53:53: no such host";
        assert_eq!(
            missing_base_image(podman, Some("FROM no-such-image-agent:1")).as_deref(),
            Some("no-such-image-agent:1")
        );
    }
}
