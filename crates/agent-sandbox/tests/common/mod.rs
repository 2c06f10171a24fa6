//! What the engine-level test binaries share: the main engine, unique run ids, and a
//! build of a set of files under given labels.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agent_sandbox::{
    BuildOutcome, BuildProgress, BuildRequest, BuildStatus, Sandbox, build_context,
};

/// The main engine; these tests fail loudly without one.
pub async fn sandbox() -> Sandbox {
    Sandbox::connect(None)
        .await
        .expect("the Docker engine must be reachable for these tests (`docker info`)")
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
