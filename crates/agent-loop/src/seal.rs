//! The verified image's labels: ownership and provenance, put on once, on the
//! verified image only, as one `LABEL` step built on top of it; then the tag.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use agent_sandbox::{BuildRequest, BuildStatus};

use crate::errors::LoopError;
use crate::job::Job;
use crate::ports::EnginePort;

/// What the labels say of the verification.
pub(crate) struct Verification<'a> {
    pub image_id: &'a str,
    pub spec_digest: &'a str,
    pub bundle_digest: &'a str,
    pub iterations: u32,
    pub checks: Vec<&'a str>,
}

/// How long the label step may take: it builds no layer, only a new image config.
const SEAL_TIMEOUT: Duration = Duration::from_secs(120);

/// Labels `verification.image_id` and tags the result; returns the new image's id.
pub(crate) async fn seal<E: EnginePort>(
    job: &Job,
    engine: &E,
    verification: &Verification<'_>,
    tag: &str,
) -> Result<String, LoopError> {
    let mut dockerfile = format!("FROM {}\n", verification.image_id);
    dockerfile.push_str(&label_instruction(&labels(job, verification)));
    let files = BTreeMap::from([(
        crate::bundle::DOCKERFILE.to_string(),
        dockerfile.into_bytes(),
    )]);
    let context = agent_sandbox::build_context(&files)?;
    let request = BuildRequest {
        context: &context,
        labels: &BTreeMap::new(),
        timeout: SEAL_TIMEOUT,
        network: "none",
        cache_repository: None,
    };
    let built = engine.build(request, &mut |_| {}).await?;
    let image_id = match built.status {
        BuildStatus::Built { image_id } => image_id,
        BuildStatus::Failed { error, .. } => {
            return Err(LoopError::Seal {
                image: verification.image_id.to_string(),
                reason: error,
            });
        }
        BuildStatus::TimedOut => {
            return Err(LoopError::Seal {
                image: verification.image_id.to_string(),
                reason: format!("did not finish within {} s", SEAL_TIMEOUT.as_secs()),
            });
        }
    };
    // A re-run moves the tag from the previous run's image; `tag` removes that image
    // unless something still uses it.
    engine.tag(&image_id, tag).await?;
    Ok(image_id)
}

/// The run's own labels, the OCI annotations and the verification's.
fn labels(job: &Job, verification: &Verification<'_>) -> BTreeMap<String, String> {
    let mut labels = job.labels();
    let created = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let oci = "org.opencontainers.image";
    labels.insert(format!("{oci}.title"), job.spec.name.clone());
    labels.insert(format!("{oci}.created"), created);
    if let Some(revision) = &job.provenance.revision {
        labels.insert(format!("{oci}.revision"), revision.clone());
    }
    if let Some(source) = &job.provenance.source {
        labels.insert(format!("{oci}.source"), source.clone());
    }
    labels.insert(
        "dev.agent.spec-digest".into(),
        verification.spec_digest.into(),
    );
    labels.insert(
        "dev.agent.bundle-digest".into(),
        verification.bundle_digest.into(),
    );
    labels.insert("dev.agent.model".into(), job.settings.model.name.clone());
    labels.insert(
        "dev.agent.iterations".into(),
        verification.iterations.to_string(),
    );
    labels.insert("dev.agent.checks".into(), verification.checks.join(","));
    labels
}

/// One `LABEL` instruction; keys and values double-quoted with `\`, `"` and `$`
/// escaped and control characters dropped, so no value can end the instruction.
fn label_instruction(labels: &BTreeMap<String, String>) -> String {
    let quote = |text: &str| {
        let mut quoted = String::from("\"");
        for c in text.chars().filter(|c| !c.is_control()) {
            if matches!(c, '\\' | '"' | '$') {
                quoted.push('\\');
            }
            quoted.push(c);
        }
        quoted.push('"');
        quoted
    };
    let mut line = String::from("LABEL");
    for (key, value) in labels {
        let _ = write!(line, " {}={}", quote(key), quote(value));
    }
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::label_instruction;

    #[test]
    fn label_values_cannot_end_the_instruction() {
        let labels = [("a.b".to_string(), "x\"y\\z $HOME\nRUN rm -rf /".to_string())].into();
        assert_eq!(
            label_instruction(&labels),
            "LABEL \"a.b\"=\"x\\\"y\\\\z \\$HOMERUN rm -rf /\"\n"
        );
    }
}
