//! BuildKit builds on the real Docker engine: steps reported from its vertices, the
//! failing step's own output and the engine's message as evidence, a base image it
//! cannot get named as the Dockerfile names it, a timed-out build that leaves no step
//! running, a cached rebuild that runs nothing, and the seal that keeps the image's
//! inline cache. Each test labels what it makes with its own run id.

mod common;
use common::{build_labelled, built_image, sandbox_with, unique_run_id};

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use agent_sandbox::{
    BuildProgress, BuildRequest, BuildStatus, Builder, EngineAddress, LABEL_OWNER, LABEL_RUN,
    Sandbox, SandboxError, SealMethod, owner_id,
};
use agent_spec::BuilderChoice;
use agent_testkit::{BUSYBOX_IMAGE, BuildFrom, docker_build, processes_holding};

fn labels(run: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_RUN.to_owned(), run.to_owned()),
        (LABEL_OWNER.to_owned(), owner_id()),
    ])
}

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI runs")
}

async fn buildkit() -> Sandbox {
    let sandbox = sandbox_with(BuilderChoice::BuildKit).await;
    assert_eq!(sandbox.engine().builder, Builder::BuildKit);
    sandbox
}

async fn build(
    sandbox: &Sandbox,
    run: &str,
    dockerfile: &str,
    timeout: Duration,
) -> (agent_sandbox::BuildOutcome, Vec<BuildProgress>) {
    let files = BTreeMap::from([("Dockerfile".to_owned(), dockerfile.as_bytes().to_vec())]);
    build_labelled(sandbox, &files, &labels(run), timeout).await
}

/// A base image of the test's own (busybox with a label naming `run`), for the tests
/// that assert cache hits. On a cold builder, a step on a base that a concurrent build
/// holds and then fails or cancels is not kept in the cache, so the next build runs it
/// again (moby/buildkit#4674: wasted work, not a wrong image). A base no other test
/// builds on keeps those tests apart from the failing builds beside them.
fn own_base(run: &str) -> String {
    let tag = format!("agent-test/base-{run}:1");
    let dockerfile = format!("FROM {BUSYBOX_IMAGE}\nLABEL dev.agent.test-base={run}\n");
    docker_build(&tag, None, BuildFrom::Dockerfile(&dockerfile));
    tag
}

fn remove_own_base(tag: &str) {
    let removed = docker(&["rmi", tag]);
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
}

async fn clean_up(sandbox: &Sandbox, run: &str) {
    sandbox
        .remove_labelled(LABEL_RUN, run, None)
        .await
        .expect("cleanup");
}

#[tokio::test]
async fn a_buildkit_build_reports_its_steps_labels_its_image_and_a_rebuild_runs_nothing() {
    let sandbox = buildkit().await;
    let run = unique_run_id("buildkit-ok");
    let base = own_base(&run);
    let dockerfile = format!(
        "FROM {base}\nRUN echo ran-{run} && date +%s%N > /marker\nENV RUN_ID={run}\nCMD [\"cat\", \"/marker\"]\n"
    );
    let (outcome, mut steps) = build(&sandbox, &run, &dockerfile, Duration::from_secs(120)).await;
    let image = built_image(&outcome);
    assert!(image.starts_with("sha256:"), "{image}");
    // BuildKit names the steps that make a layer; ENV and CMD change only the config.
    // Its solver starts them in the order it reaches them, not the Dockerfile's: a
    // cached FROM may come after the RUN that needs it. Each comes once.
    steps.sort_by_key(|BuildProgress::Step { index, .. }| *index);
    assert_eq!(
        steps,
        [
            BuildProgress::Step {
                index: 1,
                total: 2,
                instruction: format!("FROM docker.io/{base}"),
            },
            BuildProgress::Step {
                index: 2,
                total: 2,
                instruction: format!("RUN echo ran-{run} && date +%s%N > /marker"),
            },
        ],
        "{}",
        outcome.log
    );
    assert!(
        outcome.log.contains(&format!("ran-{run}\n")),
        "{}",
        outcome.log
    );
    let inspected = docker(&["inspect", "--format", "{{json .Config}}", &image]);
    let config = String::from_utf8_lossy(&inspected.stdout);
    assert!(config.contains(&format!("RUN_ID={run}")), "{config}");
    assert!(
        config.contains(&format!("\"{LABEL_RUN}\":\"{run}\"")),
        "{config}"
    );

    let (again, _) = build(&sandbox, &run, &dockerfile, Duration::from_secs(120)).await;
    assert_eq!(
        built_image(&again),
        image,
        "the same steps make the same image: {}",
        again.log
    );
    assert!(again.log.contains("CACHED"), "{}", again.log);
    assert!(
        !again.log.contains(&format!("ran-{run}\n")),
        "{}",
        again.log
    );
    clean_up(&sandbox, &run).await;
    remove_own_base(&base);
}

#[tokio::test]
async fn a_failing_buildkit_step_is_failed_with_its_own_output_as_evidence() {
    let sandbox = buildkit().await;
    let run = unique_run_id("buildkit-traceback");
    let dockerfile = format!(
        "FROM {BUSYBOX_IMAGE}\nRUN echo preparing {run}\nRUN echo 'Traceback (most recent call last):' && echo 'ValueError: boom {run}' >&2 && exit 3\n"
    );
    let (outcome, _) = build(&sandbox, &run, &dockerfile, Duration::from_secs(120)).await;
    let BuildStatus::Failed {
        error,
        failing_step,
        step_output,
        missing_image,
    } = &outcome.status
    else {
        panic!(
            "expected a failure, got {:?}\n{}",
            outcome.status, outcome.log
        );
    };
    assert!(error.contains("exit code: 3"), "{error}");
    assert_eq!(missing_image, &None);
    let failing_step = failing_step.as_deref().expect("the failing step");
    assert!(
        failing_step.starts_with("[3/3] RUN echo 'Traceback"),
        "{failing_step}"
    );
    assert!(
        step_output.contains("Traceback (most recent call last):"),
        "{step_output}"
    );
    assert!(
        step_output.contains(&format!("ValueError: boom {run}")),
        "{step_output}"
    );
    assert!(!step_output.contains("preparing"), "{step_output}");
    assert!(outcome.log.contains(error.as_str()), "{}", outcome.log);
    clean_up(&sandbox, &run).await;
}

#[tokio::test]
async fn a_base_image_buildkit_cannot_get_is_named_as_the_dockerfile_names_it() {
    let sandbox = buildkit().await;
    let run = unique_run_id("buildkit-from");
    let (outcome, _) = build(
        &sandbox,
        &run,
        "FROM no-such-image-agent:1\nRUN true\n",
        Duration::from_secs(120),
    )
    .await;
    let BuildStatus::Failed {
        missing_image,
        error,
        ..
    } = &outcome.status
    else {
        panic!("expected a failure, got {:?}", outcome.status);
    };
    assert_eq!(
        missing_image.as_deref(),
        Some("no-such-image-agent:1"),
        "{error}\n{}",
        outcome.log
    );
    clean_up(&sandbox, &run).await;
}

#[tokio::test]
async fn buildkit_run_steps_get_the_build_network_asked_for() {
    let sandbox = buildkit().await;
    let run = unique_run_id("buildkit-network");
    // Interfaces other than `lo` in the step's network namespace.
    let dockerfile = format!(
        "FROM {BUSYBOX_IMAGE}\nRUN echo {run} && ls /sys/class/net | grep -v '^lo$' | wc -l > /interfaces\nCMD [\"cat\", \"/interfaces\"]\n"
    );
    let files = BTreeMap::from([("Dockerfile".to_owned(), dockerfile.into_bytes())]);
    let context = agent_sandbox::build_context(&files).expect("context");
    let mut counts = Vec::new();
    for network in ["none", "host"] {
        let labels = labels(&run);
        let outcome = sandbox
            .build(
                BuildRequest {
                    context: &context,
                    labels: &labels,
                    timeout: Duration::from_secs(120),
                    network,
                    egress: None,
                    cache_repository: None,
                    cache_from: &[],
                    no_cache: true,
                },
                &mut |_| {},
            )
            .await
            .expect("the engine answers");
        let image = built_image(&outcome);
        let printed = docker(&["run", "--rm", "--network", "none", &image]);
        counts.push(String::from_utf8_lossy(&printed.stdout).trim().to_owned());
    }
    assert_eq!(counts[0], "0", "`none` has only loopback");
    assert_ne!(counts[1], "0", "`host` has the host's interfaces");
    clean_up(&sandbox, &run).await;
}

/// Waits up to 20 s for the host to have no process whose command line holds
/// `marker`; fails naming those left.
async fn assert_no_process_left(marker: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut left = processes_holding(marker);
    while !left.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        left = processes_holding(marker);
    }
    assert!(left.is_empty(), "left running: {left:?}");
}

#[tokio::test]
async fn a_buildkit_build_past_its_timeout_stops_and_leaves_no_step_running() {
    let sandbox = buildkit().await;
    let run = unique_run_id("buildkit-timeout");
    let marker = format!("sleeping-{run}");
    let dockerfile = format!("FROM {BUSYBOX_IMAGE}\nRUN echo {marker} && sleep 120\n");
    let started = Instant::now();
    let (outcome, _) = build(&sandbox, &run, &dockerfile, Duration::from_secs(4)).await;
    assert_eq!(outcome.status, BuildStatus::TimedOut, "{}", outcome.log);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(
        outcome
            .log
            .contains("[build stopped at the timeout of 4 s]")
    );
    // The step ran (its process was there) and is stopped once the client is gone.
    assert_no_process_left(&marker).await;
    clean_up(&sandbox, &run).await;
}

#[tokio::test]
async fn a_buildkit_step_flooding_past_the_timeout_is_stopped_with_its_log_capped() {
    let sandbox = buildkit().await;
    let run = unique_run_id("buildkit-flood");
    let marker = format!("flood-{run}");
    let dockerfile = format!("FROM {BUSYBOX_IMAGE}\nRUN while true; do echo {marker}; done\n");
    let (outcome, _) = build(&sandbox, &run, &dockerfile, Duration::from_secs(5)).await;
    assert_eq!(outcome.status, BuildStatus::TimedOut);
    assert!(
        outcome.log.contains(&marker),
        "the step's output is in the log"
    );
    assert!(
        outcome.log.len() <= 4 * 1024 * 1024 + 256,
        "the log is capped: {} bytes",
        outcome.log.len()
    );
    assert_no_process_left(&marker).await;
    clean_up(&sandbox, &run).await;
}

#[tokio::test]
async fn a_buildkit_image_is_sealed_by_its_cached_rebuild_with_its_inline_cache() {
    let sandbox = buildkit().await;
    let run = unique_run_id("buildkit-seal");
    let base = own_base(&run);
    let dockerfile = format!("FROM {base}\nRUN echo {run} > /marker\nCMD [\"cat\", \"/marker\"]\n");
    let (outcome, _) = build(&sandbox, &run, &dockerfile, Duration::from_secs(120)).await;
    let image = built_image(&outcome);
    let mut seal_labels = labels(&run);
    seal_labels.insert(
        "dev.agent.spec-digest".to_owned(),
        format!("digest \"{run}\" $HOME"),
    );
    let sealed = sandbox.seal(&image, &seal_labels).await.expect("sealed");
    assert_eq!(sealed.method, SealMethod::Rebuild);
    assert_ne!(sealed.image_id, image);
    let layers = |id: &str| {
        String::from_utf8_lossy(
            &docker(&["inspect", "--format", "{{json .RootFS.Layers}}", id]).stdout,
        )
        .into_owned()
    };
    assert_eq!(
        layers(&sealed.image_id),
        layers(&image),
        "no layer was made"
    );
    let label = docker(&[
        "inspect",
        "--format",
        "{{index .Config.Labels \"dev.agent.spec-digest\"}}",
        &sealed.image_id,
    ]);
    assert_eq!(
        String::from_utf8_lossy(&label.stdout).trim(),
        format!("digest \"{run}\" $HOME")
    );
    // The image's own config (as `docker save` writes it) holds BuildKit's cache.
    let saved = docker(&["save", &sealed.image_id]);
    assert!(saved.status.success());
    let mut archive = tar::Archive::new(saved.stdout.as_slice());
    let config = archive
        .entries()
        .expect("a tar")
        .filter_map(Result::ok)
        .find_map(|mut entry| {
            let path = entry.path().ok()?.to_string_lossy().into_owned();
            let hex = sealed.image_id.trim_start_matches("sha256:");
            (path == format!("{hex}.json") || path == format!("blobs/sha256/{hex}")).then(|| {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut entry, &mut text).expect("config");
                text
            })
        })
        .expect("the config is in the archive");
    assert!(config.contains("moby.buildkit.cache.v0"), "{config}");
    // The same image sealed again (two specs of one bundle) gets its own labels the
    // same way.
    seal_labels.insert("dev.agent.spec-digest".to_owned(), "another".to_owned());
    let again = sandbox
        .seal(&image, &seal_labels)
        .await
        .expect("sealed again");
    assert_eq!(again.method, SealMethod::Rebuild);
    let label = docker(&[
        "inspect",
        "--format",
        "{{index .Config.Labels \"dev.agent.spec-digest\"}}",
        &again.image_id,
    ]);
    assert_eq!(String::from_utf8_lossy(&label.stdout).trim(), "another");
    clean_up(&sandbox, &run).await;
    let _ = docker(&["rmi", &again.image_id, &sealed.image_id, &image]);
    remove_own_base(&base);
}

#[tokio::test]
async fn an_engine_without_buildkit_refuses_the_buildkit_builder_and_auto_picks_classic() {
    let url = std::env::var("AGENT_TEST_PODMAN").expect(
        "AGENT_TEST_PODMAN must name Podman's socket: `export AGENT_TEST_PODMAN=$(scripts/podman-engine start)`",
    );
    let podman = || async {
        Sandbox::connect_to(&EngineAddress::plain(&url))
            .await
            .unwrap_or_else(|error| panic!("Podman at {url} must answer: {error}"))
    };
    let refused = podman()
        .await
        .with_builder(BuilderChoice::BuildKit, agent_spec::BuildNetwork::Default);
    let Err(error @ SandboxError::NoBuildKit { .. }) = refused else {
        panic!("Podman cannot run BuildKit builds: {refused:?}");
    };
    assert!(error.to_string().contains("builder = \"auto\""), "{error}");
    let auto = podman()
        .await
        .with_builder(BuilderChoice::Auto, agent_spec::BuildNetwork::Default)
        .expect("auto");
    assert_eq!(auto.engine().builder, Builder::Classic);
    let main = sandbox_with(BuilderChoice::Auto).await;
    assert_eq!(
        main.engine().builder,
        Builder::BuildKit,
        "Docker's engine runs BuildKit"
    );
}
