//! What the engine-level test binaries share: the main engine, unique run ids, and a
//! build of a set of files under given labels. Each test binary uses some of them.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agent_spec::BuilderChoice;

use agent_sandbox::{
    BuildOutcome, BuildProgress, BuildRequest, BuildStatus, Sandbox, build_context,
};

/// The main engine with the classic builder, whose output most build tests read;
/// these tests fail loudly without an engine.
pub async fn sandbox() -> Sandbox {
    sandbox_with(BuilderChoice::Classic).await
}

/// The main engine building with `builder`.
pub async fn sandbox_with(builder: BuilderChoice) -> Sandbox {
    Sandbox::connect(None)
        .await
        .expect("the Docker engine must be reachable for these tests (`docker info`)")
        .with_builder(builder, agent_spec::BuildNetwork::Default)
        .expect("the main engine runs this builder")
}

/// A run id no other test or process on the engine uses.
pub fn unique_run_id(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("test-{name}-{}-{nanos}", std::process::id())
}

/// Builds `files` (a `Dockerfile` among them) with no network, its steps as reported.
pub async fn build_labelled(
    sandbox: &Sandbox,
    files: &BTreeMap<String, Vec<u8>>,
    labels: &BTreeMap<String, String>,
    timeout: Duration,
) -> (BuildOutcome, Vec<BuildProgress>) {
    let context = build_context(files).expect("context");
    let mut steps = Vec::new();
    let outcome = sandbox
        .build(
            BuildRequest {
                context: &context,
                labels,
                timeout,
                network: "none",
                egress: None,
                cache_repository: None,
                cache_from: &[],
                no_cache: false,
            },
            &mut |step| steps.push(step),
        )
        .await
        .expect("the engine answers");
    (outcome, steps)
}

/// The id of the image a build made; a failed build's log otherwise.
pub fn built_image(outcome: &BuildOutcome) -> String {
    match &outcome.status {
        BuildStatus::Built { image_id } => image_id.clone(),
        other => panic!("expected a built image, got {other:?}\n{}", outcome.log),
    }
}
