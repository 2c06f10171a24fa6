//! Builds, runs and cleanup against the real Docker engine. Each test labels what it
//! makes with its own run id and checks that nothing with that label is left.

mod common;
use common::{build_labelled, built_image, sandbox, unique_run_id};

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use agent_sandbox::{
    BuildOutcome, BuildProgress, BuildRequest, BuildStatus, LABEL_OWNER, LABEL_RUN, RunLimits,
    RunNetwork, RunOutcome, RunRequest, Sandbox, SandboxError, build_context, owner_id,
};
use agent_testkit::{BUSYBOX_IMAGE, PYTHON_IMAGE};

/// A label only these tests put on objects, so their `gc` never touches what other
/// processes on the same engine made.
const LABEL_TEST: &str = "dev.agent.test";

fn labels(run: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_RUN.to_owned(), run.to_owned()),
        (LABEL_OWNER.to_owned(), owner_id()),
        (LABEL_TEST.to_owned(), run.to_owned()),
    ])
}

fn docker(args: &[&str]) -> String {
    let output = Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI runs");
    assert!(
        output.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn containers_labelled(run: &str) -> Vec<String> {
    docker(&[
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("label={LABEL_RUN}={run}"),
    ])
    .split_whitespace()
    .map(str::to_owned)
    .collect()
}

fn images_labelled(run: &str) -> Vec<String> {
    docker(&[
        "images",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("label={LABEL_RUN}={run}"),
    ])
    .split_whitespace()
    .map(str::to_owned)
    .collect()
}

fn assert_no_container_left(run: &str) {
    let left = containers_labelled(run);
    assert!(left.is_empty(), "containers left for `{run}`: {left:?}");
}

async fn build(
    sandbox: &Sandbox,
    run: &str,
    dockerfile: &str,
    timeout: Duration,
) -> (BuildOutcome, Vec<BuildProgress>) {
    let files = BTreeMap::from([("Dockerfile".to_owned(), dockerfile.as_bytes().to_vec())]);
    build_files(sandbox, run, &files, timeout).await
}

async fn build_files(
    sandbox: &Sandbox,
    run: &str,
    files: &BTreeMap<String, Vec<u8>>,
    timeout: Duration,
) -> (BuildOutcome, Vec<BuildProgress>) {
    build_labelled(sandbox, files, &labels(run), timeout).await
}

fn limits() -> RunLimits {
    RunLimits {
        memory_mb: 256,
        cpus: 1.0,
        pids: 64,
        network: RunNetwork::None,
        timeout: Duration::from_secs(30),
        output_limit_bytes: 1024 * 1024,
        access: agent_sandbox::RunAccess::default(),
    }
}

async fn run_with(
    sandbox: &Sandbox,
    run: &str,
    image: &str,
    script: &str,
    stdin: Option<&[u8]>,
    env: &BTreeMap<String, String>,
    limits: RunLimits,
) -> RunOutcome {
    let args = if script.is_empty() {
        Vec::new()
    } else {
        // Appended to the busybox image's command, `/bin/sh`.
        vec!["-c".to_owned(), script.to_owned()]
    };
    let labels = labels(run);
    let outcome = sandbox
        .run(RunRequest {
            image,
            args: &args,
            entrypoint: None,
            command: None,
            user: None,
            env,
            stdin,
            limits,
            labels: &labels,
        })
        .await
        .expect("the engine answers");
    assert_no_container_left(run);
    outcome
}

async fn run_script(sandbox: &Sandbox, run: &str, script: &str, limits: RunLimits) -> RunOutcome {
    run_with(
        sandbox,
        run,
        BUSYBOX_IMAGE,
        script,
        None,
        &BTreeMap::new(),
        limits,
    )
    .await
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn clean_up(sandbox: &Sandbox, run: &str) {
    sandbox
        .remove_labelled(LABEL_RUN, run, None)
        .await
        .expect("cleanup");
    assert_no_container_left(run);
    assert!(images_labelled(run).is_empty(), "images left for `{run}`");
}

#[tokio::test]
async fn connect_negotiates_and_reports_the_engine() {
    let sandbox = sandbox().await;
    let engine = sandbox.engine();
    assert!(!engine.version.is_empty());
    assert!(engine.api_version.starts_with("1."), "{engine:?}");
}

#[tokio::test]
async fn connect_to_a_dead_socket_fails_fast() {
    let started = Instant::now();
    let result = Sandbox::connect(Some("unix:///tmp/nonexistent.sock")).await;
    assert!(
        matches!(&result, Err(SandboxError::Connect { host, .. }) if host == "unix:///tmp/nonexistent.sock"),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(6));
}

#[tokio::test]
async fn connect_to_a_socket_nobody_answers_times_out() {
    let directory = std::env::temp_dir().join(unique_run_id("silent"));
    std::fs::create_dir_all(&directory).expect("directory");
    let path = directory.join("docker.sock");
    // Accepts connections and never answers.
    let _listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    let host = format!("unix://{}", path.display());
    let started = Instant::now();
    let result = Sandbox::connect(Some(&host)).await;
    assert!(
        matches!(result, Err(SandboxError::Connect { .. })),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(8));
    let _ = std::fs::remove_dir_all(&directory);
}

#[tokio::test]
async fn connect_refuses_an_unknown_scheme() {
    let result = Sandbox::connect(Some("ftp://somewhere")).await;
    assert!(
        matches!(result, Err(SandboxError::Connect { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn build_succeeds_with_an_image_id_labels_and_steps() {
    let sandbox = sandbox().await;
    let run = unique_run_id("build-ok");
    let files = BTreeMap::from([
        (
            "Dockerfile".to_owned(),
            format!("FROM {BUSYBOX_IMAGE}\nCOPY app/ /app/\nRUN cat /app/nested/hello.txt\n")
                .into_bytes(),
        ),
        (
            "app/nested/hello.txt".to_owned(),
            format!("hello from the context {run}\n").into_bytes(),
        ),
    ]);
    let (outcome, steps) = build_files(&sandbox, &run, &files, Duration::from_secs(60)).await;
    let image = built_image(&outcome);
    assert!(image.starts_with("sha256:"), "{image}");
    assert!(
        outcome.log.contains("hello from the context"),
        "{}",
        outcome.log
    );
    // The three steps of the Dockerfile, then one `LABEL` step per label the builder
    // appends.
    assert_eq!(steps.len(), 3 + labels(&run).len(), "{steps:?}");
    assert!(
        matches!(&steps[0], BuildProgress::Step { index: 1, total: 6, instruction } if instruction.starts_with("FROM"))
    );
    let intermediate = outcome.intermediate_images();
    assert!(!intermediate.is_empty());
    assert!(
        image
            .trim_start_matches("sha256:")
            .starts_with(intermediate.last().expect("last"))
    );

    let label = docker(&[
        "inspect",
        "--format",
        &format!("{{{{index .Config.Labels \"{LABEL_RUN}\"}}}}"),
        &image,
    ]);
    assert_eq!(label.trim(), run);
    assert!(sandbox.image_present(&image).await.expect("inspect"));
    assert!(
        !sandbox
            .image_present("agent-test/absent:never")
            .await
            .expect("inspect")
    );
    assert_no_container_left(&run);
    clean_up(&sandbox, &run).await;
    assert!(!sandbox.image_present(&image).await.expect("inspect"));
}

#[tokio::test]
async fn a_failing_run_step_is_failed_with_its_output_as_evidence() {
    let sandbox = sandbox().await;
    let run = unique_run_id("build-traceback");
    let dockerfile = format!(
        "FROM {BUSYBOX_IMAGE}\nRUN echo preparing {run}\nRUN echo 'Traceback (most recent call last):' && echo '  File \"main.py\", line 1' && echo 'ValueError: boom {run}' >&2 && exit 1\n"
    );
    let (outcome, _) = build(&sandbox, &run, &dockerfile, Duration::from_secs(60)).await;
    let BuildStatus::Failed {
        error,
        failing_step,
        step_output,
        missing_image,
    } = &outcome.status
    else {
        panic!("expected a failure, got {:?}", outcome.status);
    };
    assert!(error.contains("non-zero code: 1"), "{error}");
    assert_eq!(missing_image, &None);
    let failing_step = failing_step.as_deref().expect("failing step");
    assert!(
        failing_step.starts_with("Step 3/") && failing_step.contains(" : RUN echo 'Traceback"),
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
    assert!(outcome.log.contains(error.as_str()));
    assert_no_container_left(&run);
    // The step's container is gone too (`forcerm`), though the builder gave it no label.
    let leftovers = docker(&["ps", "-a", "--no-trunc", "--format", "{{.Command}}"]);
    assert!(!leftovers.contains(&run), "{leftovers}");
    // The layer of the step that passed stays as cache until removed.
    sandbox
        .remove_untagged_images(&outcome.intermediate_images())
        .await
        .expect("remove the build's layers");
    clean_up(&sandbox, &run).await;
}

#[tokio::test]
async fn copying_a_missing_file_is_a_failed_build() {
    let sandbox = sandbox().await;
    let run = unique_run_id("build-copy");
    let dockerfile = format!("FROM {BUSYBOX_IMAGE}\nCOPY missing.txt /missing.txt\n");
    let (outcome, _) = build(&sandbox, &run, &dockerfile, Duration::from_secs(60)).await;
    let BuildStatus::Failed {
        error,
        failing_step,
        ..
    } = &outcome.status
    else {
        panic!("expected a failure, got {:?}", outcome.status);
    };
    assert!(error.contains("missing.txt"), "{error}");
    assert!(
        failing_step
            .as_deref()
            .is_some_and(|step| step.contains("COPY"))
    );
    clean_up(&sandbox, &run).await;
}

#[tokio::test]
async fn copying_from_outside_the_context_is_a_failed_build_with_the_engines_message() {
    let sandbox = sandbox().await;
    let run = unique_run_id("build-outside");
    for source in ["../../etc/passwd", "/etc/passwd"] {
        let dockerfile = format!("FROM {BUSYBOX_IMAGE}\nCOPY {source} /stolen\nCMD cat /stolen\n");
        let (outcome, _) = build(&sandbox, &run, &dockerfile, Duration::from_secs(60)).await;
        let BuildStatus::Failed { error, .. } = &outcome.status else {
            panic!("COPY {source} must fail, got {:?}", outcome.status);
        };
        assert!(
            error.contains("outside the build context") || error.contains("not found"),
            "the engine's message is kept: {error}"
        );
    }
    clean_up(&sandbox, &run).await;
}

#[tokio::test]
async fn find_image_describes_an_image_by_name_or_id_and_finds_no_missing_one() {
    let sandbox = sandbox().await;
    let id = docker(&["image", "inspect", "--format", "{{.Id}}", BUSYBOX_IMAGE]);
    let id = id.trim();
    let by_name = sandbox.find_image(BUSYBOX_IMAGE).await.unwrap();
    let by_name = by_name.expect("the base image is on the engine");
    assert_eq!(by_name.id, id);
    let by_id = sandbox.find_image(id).await.unwrap().expect("found by id");
    assert_eq!(by_id, by_name);
    // A local image was pushed nowhere: no repo digest to pin it by.
    assert_eq!(by_name.repo_digests, Vec::<String>::new());
    let missing = sandbox.find_image("agent-test/does-not-exist:never").await;
    assert_eq!(missing.unwrap(), None);
    assert!(
        !sandbox
            .image_present("agent-test/does-not-exist:never")
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn an_unknown_base_image_is_a_failed_build() {
    let sandbox = sandbox().await;
    let run = unique_run_id("build-from");
    let (outcome, _) = build(
        &sandbox,
        &run,
        "FROM agent-test/does-not-exist:never\nRUN true\n",
        Duration::from_secs(60),
    )
    .await;
    let BuildStatus::Failed { error, .. } = &outcome.status else {
        panic!("expected a failure, got {:?}", outcome.status);
    };
    assert!(!error.is_empty());
    clean_up(&sandbox, &run).await;
}

#[tokio::test]
async fn an_unparsable_dockerfile_is_a_failed_build() {
    let sandbox = sandbox().await;
    let run = unique_run_id("build-parse");
    let (outcome, _) = build(
        &sandbox,
        &run,
        "THIS IS NOT A DOCKERFILE\n",
        Duration::from_secs(60),
    )
    .await;
    assert!(
        matches!(outcome.status, BuildStatus::Failed { .. }),
        "{:?}",
        outcome.status
    );
    clean_up(&sandbox, &run).await;
}

#[tokio::test]
async fn a_build_past_its_timeout_stops_and_leaves_nothing_running() {
    let sandbox = sandbox().await;
    let run = unique_run_id("build-timeout");
    let dockerfile = format!("FROM {BUSYBOX_IMAGE}\nRUN echo {run} && sleep 60\n");
    let started = Instant::now();
    let (outcome, _) = build(&sandbox, &run, &dockerfile, Duration::from_secs(3)).await;
    assert_eq!(outcome.status, BuildStatus::TimedOut, "{}", outcome.log);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    // The step's container carries no label: find it by the command that names the run.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let leftovers = docker(&["ps", "-a", "--no-trunc", "--format", "{{.Command}}"]);
    assert!(!leftovers.contains(&run), "left running: {leftovers}");
    clean_up(&sandbox, &run).await;
}

#[tokio::test]
async fn run_keeps_stdout_and_stderr_apart_with_the_exit_code() {
    let sandbox = sandbox().await;
    let run = unique_run_id("run-streams");
    let outcome = run_script(
        &sandbox,
        &run,
        "echo out; echo err >&2; echo more; exit 3",
        limits(),
    )
    .await;
    assert_eq!(text(&outcome.stdout.bytes), "out\nmore\n");
    assert_eq!(text(&outcome.stderr.bytes), "err\n");
    assert_eq!(outcome.exit_code, Some(3));
    assert_eq!(outcome.stdout.total_bytes, 9);
    assert!(!outcome.timed_out && !outcome.oom_killed && outcome.start_error.is_none());

    let success = run_script(&sandbox, &run, "echo fine", limits()).await;
    assert_eq!(success.exit_code, Some(0));
    assert_eq!(text(&success.stdout.bytes), "fine\n");
}

#[tokio::test]
async fn run_feeds_stdin_then_closes_it() {
    let sandbox = sandbox().await;
    let run = unique_run_id("run-stdin");
    let outcome = run_with(
        &sandbox,
        &run,
        BUSYBOX_IMAGE,
        "cat; echo done",
        Some(b"3 4\nfive\n"),
        &BTreeMap::new(),
        limits(),
    )
    .await;
    assert_eq!(text(&outcome.stdout.bytes), "3 4\nfive\ndone\n");
    assert_eq!(outcome.exit_code, Some(0));

    // Without stdin the program sees an empty one and does not hang.
    let empty = run_script(&sandbox, &run, "cat; echo eof", limits()).await;
    assert_eq!(text(&empty.stdout.bytes), "eof\n");
    assert!(!empty.timed_out);
}

#[tokio::test]
async fn run_gets_only_the_given_environment() {
    let sandbox = sandbox().await;
    let run = unique_run_id("run-env");
    // Set for this test process by cargo and nextest: it must not reach the container.
    let host_value =
        std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR is set for tests");
    assert!(!host_value.is_empty());
    let env = BTreeMap::from([
        ("GREETING".to_owned(), "hi there".to_owned()),
        ("EMPTY".to_owned(), String::new()),
    ]);
    let outcome = run_with(&sandbox, &run, BUSYBOX_IMAGE, "env", None, &env, limits()).await;
    let printed = text(&outcome.stdout.bytes);
    assert!(
        printed.lines().any(|line| line == "GREETING=hi there"),
        "{printed}"
    );
    assert!(printed.lines().any(|line| line == "EMPTY="), "{printed}");
    assert!(!printed.contains("CARGO_MANIFEST_DIR"), "{printed}");
    assert!(!printed.contains(&host_value), "{printed}");
}

#[tokio::test]
async fn args_are_appended_to_the_command_and_no_args_keep_it() {
    let sandbox = sandbox().await;
    let run = unique_run_id("run-args");
    let dockerfile =
        format!("FROM {BUSYBOX_IMAGE}\nENTRYPOINT [\"echo\", \"base\"]\nCMD [\"default\"]\n");
    let (outcome, _) = build(&sandbox, &run, &dockerfile, Duration::from_secs(60)).await;
    let image = built_image(&outcome);
    let request_labels = labels(&run);
    let env = BTreeMap::new();
    let args = vec!["--fast".to_owned(), "two words".to_owned()];
    let with_args = sandbox
        .run(RunRequest {
            image: &image,
            args: &args,
            entrypoint: None,
            command: None,
            user: None,
            env: &env,
            stdin: None,
            limits: limits(),
            labels: &request_labels,
        })
        .await
        .expect("run");
    assert_eq!(
        text(&with_args.stdout.bytes),
        "base default --fast two words\n"
    );
    let without_args = sandbox
        .run(RunRequest {
            image: &image,
            args: &[],
            entrypoint: None,
            command: None,
            user: None,
            env: &env,
            stdin: None,
            limits: limits(),
            labels: &request_labels,
        })
        .await
        .expect("run");
    assert_eq!(text(&without_args.stdout.bytes), "base default\n");

    // Exec-form and shell-form CMD without an ENTRYPOINT: the args come after it.
    for (cmd, expected) in [
        ("CMD [\"echo\", \"exec\"]", "exec --fast two words\n"),
        ("CMD echo shell", "shell --fast two words\n"),
    ] {
        let dockerfile = format!("FROM {BUSYBOX_IMAGE}\n{cmd}\n");
        let (outcome, _) = build(&sandbox, &run, &dockerfile, Duration::from_secs(60)).await;
        let image = built_image(&outcome);
        let ran = sandbox
            .run(RunRequest {
                image: &image,
                args: &args,
                entrypoint: None,
                command: None,
                user: None,
                env: &env,
                stdin: None,
                limits: limits(),
                labels: &request_labels,
            })
            .await
            .expect("run");
        assert_eq!(text(&ran.stdout.bytes), expected, "{cmd}");
    }
    clean_up(&sandbox, &run).await;
}

#[tokio::test]
async fn a_run_past_its_timeout_is_killed_and_removed() {
    let sandbox = sandbox().await;
    let run = unique_run_id("run-timeout");
    let started = Instant::now();
    let outcome = run_script(
        &sandbox,
        &run,
        "echo started; sleep 60",
        RunLimits {
            timeout: Duration::from_secs(2),
            ..limits()
        },
    )
    .await;
    assert!(outcome.timed_out);
    assert_eq!(outcome.exit_code, None);
    assert_eq!(text(&outcome.stdout.bytes), "started\n");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// Starts `script`, drops the run after `cancel_after` (as Ctrl-C does to the loop's
/// future) and checks that its container, which existed, is gone within 30 s.
async fn cancel_run_and_expect_removal(
    name: &str,
    image: &str,
    script: &str,
    cancel_after: Duration,
) {
    let sandbox = sandbox().await;
    let run = unique_run_id(name);
    let labels = labels(&run);
    let env = BTreeMap::new();
    let args = vec!["-c".to_owned(), script.to_owned()];
    let cancelled = tokio::time::timeout(
        cancel_after,
        sandbox.run(RunRequest {
            image,
            args: &args,
            entrypoint: None,
            command: None,
            user: None,
            env: &env,
            stdin: None,
            limits: RunLimits {
                output_limit_bytes: 64 * 1024,
                ..limits()
            },
            labels: &labels,
        }),
    )
    .await;
    assert!(cancelled.is_err(), "the run should still be going");
    assert!(
        !containers_labelled(&run).is_empty(),
        "the container existed"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !containers_labelled(&run).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the container outlived its cancelled run"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_cancelled_run_still_removes_its_container() {
    cancel_run_and_expect_removal(
        "run-cancel",
        BUSYBOX_IMAGE,
        "sleep 60",
        Duration::from_secs(2),
    )
    .await;
}

#[tokio::test]
async fn a_cancelled_run_that_floods_its_output_still_removes_its_container() {
    cancel_run_and_expect_removal(
        "run-cancel-flood",
        PYTHON_IMAGE,
        &python_flood("stdout", "\\n"),
        Duration::from_secs(4),
    )
    .await;
}

#[tokio::test]
async fn output_past_the_limit_is_counted_and_cut() {
    let sandbox = sandbox().await;
    let run = unique_run_id("run-flood");
    let total: u64 = 200_000_000;
    let limit = 64 * 1024;
    let outcome = run_script(
        &sandbox,
        &run,
        &format!("yes | head -c {total}; yes err | head -c 1000 >&2"),
        RunLimits {
            output_limit_bytes: limit,
            timeout: Duration::from_secs(60),
            ..limits()
        },
    )
    .await;
    assert_eq!(outcome.exit_code, Some(0));
    assert!(outcome.stdout.truncated);
    assert_eq!(outcome.stdout.bytes.len(), limit);
    assert_eq!(outcome.stdout.total_bytes, total);
    assert!(outcome.stdout.bytes.starts_with(b"y\ny\n"));
    assert!(!outcome.stderr.truncated);
    assert_eq!(outcome.stderr.total_bytes, 1000);
}

#[tokio::test]
async fn a_memory_hog_is_oom_killed() {
    let sandbox = sandbox().await;
    let run = unique_run_id("run-oom");
    // Appended to the python image's command, `python3`.
    let args = vec!["-c".to_owned(), "b = bytearray(10**9)".to_owned()];
    let labels = labels(&run);
    let env = BTreeMap::new();
    let outcome = sandbox
        .run(RunRequest {
            image: PYTHON_IMAGE,
            args: &args,
            entrypoint: None,
            command: None,
            user: None,
            env: &env,
            stdin: None,
            limits: RunLimits {
                memory_mb: 64,
                ..limits()
            },
            labels: &labels,
        })
        .await
        .expect("run");
    assert!(outcome.oom_killed, "{outcome:?}");
    assert_eq!(outcome.exit_code, Some(137));
    assert_no_container_left(&run);
}

#[tokio::test]
async fn the_pids_limit_caps_forks() {
    let sandbox = sandbox().await;
    let run = unique_run_id("run-pids");
    let pids = 40;
    // The subshell dies at the first refused fork; the count uses builtins only, as
    // no fork is possible any more.
    let outcome = run_script(
        &sandbox,
        &run,
        "(for i in $(seq 600); do sleep 5 & done) 2>/dev/null; set -- /proc/[0-9]*; echo $#",
        RunLimits { pids, ..limits() },
    )
    .await;
    let printed = text(&outcome.stdout.bytes);
    let count: i64 = printed
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("count: {printed:?} {outcome:?}"));
    assert!(count > 5, "{count}");
    assert!(
        count <= pids + 2,
        "{count} processes under a limit of {pids}"
    );
}

#[tokio::test]
async fn network_none_has_only_loopback_and_bridge_has_eth0() {
    let sandbox = sandbox().await;
    let run = unique_run_id("run-network");
    let isolated = run_script(&sandbox, &run, "ls /sys/class/net", limits()).await;
    assert_eq!(
        text(&isolated.stdout.bytes)
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["lo"]
    );
    let bridged = run_script(
        &sandbox,
        &run,
        "ls /sys/class/net",
        RunLimits {
            network: RunNetwork::Bridge,
            ..limits()
        },
    )
    .await;
    let interfaces = text(&bridged.stdout.bytes);
    assert!(
        interfaces.split_whitespace().any(|name| name == "eth0"),
        "{interfaces}"
    );
}

#[tokio::test]
async fn a_missing_executable_is_a_start_error() {
    let sandbox = sandbox().await;
    let run = unique_run_id("run-noexec");
    let labels = labels(&run);
    let env = BTreeMap::new();
    let dockerfile = format!("FROM {BUSYBOX_IMAGE}\nCMD [\"/does/not/exist\"]\n");
    let (built, _) = build(&sandbox, &run, &dockerfile, Duration::from_secs(60)).await;
    let image = built_image(&built);
    let outcome = sandbox
        .run(RunRequest {
            image: &image,
            args: &[],
            entrypoint: None,
            command: None,
            user: None,
            env: &env,
            stdin: None,
            limits: limits(),
            labels: &labels,
        })
        .await
        .expect("an outcome, not an error");
    let message = outcome.start_error.as_deref().expect("start error");
    assert!(message.contains("/does/not/exist"), "{message}");
    assert_eq!(outcome.exit_code, None);
    clean_up(&sandbox, &run).await;
    assert_no_container_left(&run);
}

#[tokio::test]
async fn running_a_missing_image_is_a_create_error() {
    let sandbox = sandbox().await;
    let run = unique_run_id("run-noimage");
    let labels = labels(&run);
    let env = BTreeMap::new();
    let result = sandbox
        .run(RunRequest {
            image: "agent-test/absent:never",
            args: &[],
            entrypoint: None,
            command: None,
            user: None,
            env: &env,
            stdin: None,
            limits: limits(),
            labels: &labels,
        })
        .await;
    assert!(
        matches!(result, Err(SandboxError::CreateContainer { .. })),
        "{result:?}"
    );
    assert_no_container_left(&run);
}

/// A pid that belonged to a process of this host that has exited.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().expect("spawn");
    let pid = child.id();
    child.wait().expect("wait");
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    pid
}

fn create_container(run: &str, owner: &str) -> String {
    docker(&[
        "create",
        "--label",
        &format!("{LABEL_RUN}={run}"),
        "--label",
        &format!("{LABEL_OWNER}={owner}"),
        "--label",
        &format!("{LABEL_TEST}={run}"),
        BUSYBOX_IMAGE,
        "true",
    ])
    .trim()
    .to_owned()
}

#[tokio::test]
async fn gc_removes_what_dead_owners_left_and_keeps_live_ones() {
    let sandbox = sandbox().await;
    let run = unique_run_id("gc");
    let host = owner_id().rsplit_once('/').expect("host/pid").0.to_owned();
    let dead_owner = format!("{host}/{}", dead_pid());
    let dead = create_container(&run, &dead_owner);
    let live = create_container(&run, &owner_id());
    let other_host = create_container(&run, "another-host/1");

    // An image whose owner is dead, and a verified one that gc must always keep.
    let mut dead_labels = labels(&run);
    dead_labels.insert(LABEL_OWNER.to_owned(), dead_owner.clone());
    let context = build_context(&BTreeMap::from([(
        "Dockerfile".to_owned(),
        format!("FROM {BUSYBOX_IMAGE}\nENV GC_TEST={run}\n").into_bytes(),
    )]))
    .expect("context");
    let outcome = sandbox
        .build(
            BuildRequest {
                context: &context,
                labels: &dead_labels,
                timeout: Duration::from_secs(60),
                network: "none",
                egress: None,
                cache_repository: None,
                cache_from: &[],
                no_cache: false,
            },
            &mut |_| {},
        )
        .await
        .expect("build");
    let dead_image = built_image(&outcome);
    let (verified_outcome, _) = build(
        &sandbox,
        &run,
        &format!("FROM {BUSYBOX_IMAGE}\nENV GC_VERIFIED={run}\n"),
        Duration::from_secs(60),
    )
    .await;
    let verified_image = built_image(&verified_outcome);
    let verified_tag = format!("agent/gc-test:{}", std::process::id());
    sandbox
        .tag(&verified_image, &verified_tag)
        .await
        .expect("tag");

    let report = sandbox
        .gc_labelled(false, LABEL_TEST, &run)
        .await
        .expect("gc");
    assert_eq!(report.containers, std::slice::from_ref(&dead));
    assert_eq!(report.images, std::slice::from_ref(&dead_image));
    let left = containers_labelled(&run);
    assert!(
        left.contains(&live) && left.contains(&other_host) && !left.contains(&dead),
        "{left:?}"
    );

    let report = sandbox
        .gc_labelled(true, LABEL_TEST, &run)
        .await
        .expect("gc");
    assert_eq!(report.containers.len(), 2, "{report:?}");
    assert!(
        report.images.is_empty(),
        "the verified image is kept: {report:?}"
    );
    assert_no_container_left(&run);
    assert!(sandbox.image_present(&verified_tag).await.expect("inspect"));
    assert!(!sandbox.image_present(&dead_image).await.expect("inspect"));

    docker(&["rmi", &verified_tag]);
    clean_up(&sandbox, &run).await;
}

#[tokio::test]
async fn remove_labelled_keeps_verified_and_kept_images() {
    let sandbox = sandbox().await;
    let run = unique_run_id("remove");
    let mut images = Vec::new();
    for name in ["verified", "kept", "gone"] {
        let (outcome, _) = build(
            &sandbox,
            &run,
            &format!("FROM {BUSYBOX_IMAGE}\nENV WHICH={name}-{run}\n"),
            Duration::from_secs(60),
        )
        .await;
        images.push(built_image(&outcome));
    }
    let verified_tag = format!("agent/remove-test:{}", std::process::id());
    sandbox.tag(&images[0], &verified_tag).await.expect("tag");
    let container = create_container(&run, &owner_id());

    let report = sandbox
        .remove_labelled(LABEL_RUN, &run, Some(&images[1]))
        .await
        .expect("remove");
    assert_eq!(report.containers, [container]);
    assert_eq!(report.images, [images[2].clone()]);
    assert!(sandbox.image_present(&verified_tag).await.expect("inspect"));
    assert!(sandbox.image_present(&images[1]).await.expect("inspect"));
    assert!(!sandbox.image_present(&images[2]).await.expect("inspect"));
    assert_no_container_left(&run);

    // Again: nothing more to do, and nothing fails on what is already gone.
    let again = sandbox
        .remove_labelled(LABEL_RUN, &run, Some(&images[1]))
        .await
        .expect("remove");
    assert_eq!(again, Default::default());

    docker(&["rmi", &verified_tag]);
    clean_up(&sandbox, &run).await;
}

#[tokio::test]
async fn remove_untagged_images_removes_failed_build_leftovers_only() {
    let sandbox = sandbox().await;
    let run = unique_run_id("untagged");
    let dockerfile =
        format!("FROM {BUSYBOX_IMAGE}\nRUN echo {run} > /a\nRUN echo second > /b\nRUN exit 1\n");
    let (outcome, _) = build(&sandbox, &run, &dockerfile, Duration::from_secs(60)).await;
    assert!(
        matches!(outcome.status, BuildStatus::Failed { .. }),
        "{:?}",
        outcome.status
    );
    let ids = outcome.intermediate_images();
    // The base image, then one per successful RUN.
    assert_eq!(ids.len(), 3, "{ids:?}\n{}", outcome.log);
    let report = sandbox.remove_untagged_images(&ids).await.expect("remove");
    // The base image is tagged: kept. The two layers of this build go, child first.
    assert_eq!(report.images.len(), 2, "{report:?}");
    assert!(sandbox.image_present(BUSYBOX_IMAGE).await.expect("inspect"));
    for id in &ids[1..] {
        assert!(
            !sandbox.image_present(id).await.expect("inspect"),
            "{id} is still there"
        );
    }
    assert_no_container_left(&run);
}

#[tokio::test]
async fn runs_have_no_capabilities_and_no_new_privileges() {
    let sandbox = sandbox().await;
    let run = unique_run_id("run-privileges");
    let outcome = run_script(
        &sandbox,
        &run,
        "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status",
        limits(),
    )
    .await;
    let printed = text(&outcome.stdout.bytes);
    let fields: Vec<Vec<&str>> = printed
        .lines()
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert!(
        fields.contains(&vec!["CapEff:", "0000000000000000"]),
        "{printed}"
    );
    assert!(fields.contains(&vec!["NoNewPrivs:", "1"]), "{printed}");
}

#[tokio::test]
async fn stdin_the_program_never_reads_does_not_hang_the_run() {
    let sandbox = sandbox().await;
    let run = unique_run_id("run-unread-stdin");
    let input = vec![b'x'; 8 * 1024 * 1024];
    let started = Instant::now();
    let outcome = run_with(
        &sandbox,
        &run,
        BUSYBOX_IMAGE,
        "echo ignored; exit 4",
        Some(&input),
        &BTreeMap::new(),
        limits(),
    )
    .await;
    assert_eq!(outcome.exit_code, Some(4));
    assert!(!outcome.timed_out);
    assert_eq!(text(&outcome.stdout.bytes), "ignored\n");
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// A Python program that writes `chunk` to `stream` forever, in 64 KiB pieces: large
/// writes fill the engine's buffers at once, which small ones (`yes`) do not.
fn python_flood(stream: &str, chunk: &str) -> String {
    format!("import sys\nwhile True:\n    sys.{stream}.write('x' * 65536 + '{chunk}')\n")
}

/// Runs `script` with Python under a 3 s timeout and a 64 KiB cap and checks that a
/// program flooding its output is stopped at the timeout, its output cut and marked,
/// and its container removed; in well under the 30 s our engine calls may take at
/// most (and far under bollard's own 120 s), which an engine stalled on an unread
/// stream would need.
async fn flood_is_stopped_at_the_timeout(name: &str, script: &str) -> RunOutcome {
    let sandbox = sandbox().await;
    let run = unique_run_id(name);
    let limit = 64 * 1024;
    let started = Instant::now();
    // `run_with` also asserts that no container of the run is left.
    let outcome = run_with(
        &sandbox,
        &run,
        PYTHON_IMAGE,
        script,
        None,
        &BTreeMap::new(),
        RunLimits {
            timeout: Duration::from_secs(3),
            output_limit_bytes: limit,
            ..limits()
        },
    )
    .await;
    let elapsed = started.elapsed();
    assert!(outcome.timed_out, "{outcome:?}");
    assert_eq!(outcome.exit_code, None);
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
    for captured in [&outcome.stdout, &outcome.stderr] {
        assert!(captured.bytes.len() <= limit);
        assert_eq!(captured.truncated, captured.total_bytes > limit as u64);
    }
    outcome
}

#[tokio::test]
async fn a_stdout_flood_past_the_timeout_is_cut_killed_and_removed() {
    let outcome =
        flood_is_stopped_at_the_timeout("flood-stdout", &python_flood("stdout", "\\n")).await;
    assert!(outcome.stdout.truncated);
    assert_eq!(outcome.stdout.bytes.len(), 64 * 1024);
    assert!(outcome.stdout.bytes.starts_with(b"xxxx"));
    assert_eq!(outcome.stderr.total_bytes, 0);
}

#[tokio::test]
async fn a_stderr_only_flood_past_the_timeout_is_cut_killed_and_removed() {
    let outcome =
        flood_is_stopped_at_the_timeout("flood-stderr", &python_flood("stderr", "\\n")).await;
    assert!(outcome.stderr.truncated);
    assert_eq!(outcome.stderr.bytes.len(), 64 * 1024);
    assert!(outcome.stderr.bytes.starts_with(b"xxxx"));
    assert_eq!(outcome.stdout.total_bytes, 0);
}

#[tokio::test]
async fn a_flood_without_newlines_past_the_timeout_is_cut_killed_and_removed() {
    let outcome =
        flood_is_stopped_at_the_timeout("flood-no-newline", &python_flood("stdout", "")).await;
    assert!(outcome.stdout.truncated);
    assert_eq!(outcome.stdout.bytes.len(), 64 * 1024);
    assert!(!outcome.stdout.bytes.contains(&b'\n'));
}

#[tokio::test]
async fn a_build_step_flooding_past_the_timeout_stops_and_leaves_nothing_running() {
    let sandbox = sandbox().await;
    let run = unique_run_id("build-flood");
    let dockerfile = format!(
        "FROM {PYTHON_IMAGE}\nRUN echo {run} && python3 -c \"import sys; [sys.stdout.write('x' * 65536 + chr(10)) for _ in iter(int, 1)]\"\n"
    );
    let started = Instant::now();
    let (outcome, _) = build(&sandbox, &run, &dockerfile, Duration::from_secs(3)).await;
    assert_eq!(outcome.status, BuildStatus::TimedOut);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(
        outcome.log.len() < 4 * 1024 * 1024 + 1024,
        "the log stays capped"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let leftovers = docker(&["ps", "-a", "--no-trunc", "--format", "{{.Command}}"]);
    assert!(!leftovers.contains(&run), "left running: {leftovers}");
    clean_up(&sandbox, &run).await;
}

#[tokio::test]
async fn a_from_image_the_engine_cannot_get_is_a_structured_failure() {
    let sandbox = sandbox().await;
    let run = unique_run_id("build-missing-image");
    let (outcome, _) = build(
        &sandbox,
        &run,
        "FROM no-such-image:1\nRUN true\n",
        Duration::from_secs(60),
    )
    .await;
    let BuildStatus::Failed {
        missing_image,
        failing_step,
        error,
        ..
    } = &outcome.status
    else {
        panic!("expected a failure, got {:?}", outcome.status);
    };
    assert_eq!(missing_image.as_deref(), Some("no-such-image:1"), "{error}");
    let failing_step = failing_step.as_deref().expect("the step");
    assert!(
        failing_step.starts_with("Step 1/") && failing_step.ends_with(" : FROM no-such-image:1"),
        "{failing_step}"
    );
    assert!(
        !sandbox
            .image_present("no-such-image:1")
            .await
            .expect("inspect")
    );

    // A step that fails for its own reasons names no missing image.
    let (outcome, _) = build(
        &sandbox,
        &run,
        &format!("FROM {BUSYBOX_IMAGE}\nRUN echo not found && false\n"),
        Duration::from_secs(60),
    )
    .await;
    assert!(
        matches!(
            &outcome.status,
            BuildStatus::Failed {
                missing_image: None,
                ..
            }
        ),
        "{:?}",
        outcome.status
    );
    clean_up(&sandbox, &run).await;
}

#[tokio::test]
async fn gc_treats_a_zombie_owner_as_dead() {
    let sandbox = sandbox().await;
    let run = unique_run_id("gc-zombie");
    let mut child = Command::new("sleep").arg("60").spawn().expect("spawn");
    let pid = child.id();
    let host = owner_id().rsplit_once('/').expect("host/pid").0.to_owned();
    let container = create_container(&run, &format!("{host}/{pid}"));

    let report = sandbox
        .gc_labelled(false, LABEL_TEST, &run)
        .await
        .expect("gc");
    assert!(report.containers.is_empty(), "its owner runs: {report:?}");

    // Killed but not waited for: the child is a zombie, its /proc entry still there.
    child.kill().expect("kill");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("a zombie");
        if stat
            .rsplit_once(')')
            .expect("stat")
            .1
            .trim_start()
            .starts_with('Z')
        {
            break;
        }
        assert!(Instant::now() < deadline, "the child never became a zombie");
        std::thread::sleep(Duration::from_millis(20));
    }
    let report = sandbox
        .gc_labelled(false, LABEL_TEST, &run)
        .await
        .expect("gc");
    assert_eq!(report.containers, std::slice::from_ref(&container));
    child.wait().expect("reaped");
    clean_up(&sandbox, &run).await;
}

fn tags_in(repository: &str) -> Vec<String> {
    docker(&[
        "images",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.ID}}",
        repository,
    ])
    .lines()
    .map(str::to_owned)
    .collect()
}

#[tokio::test]
async fn a_build_keeps_every_image_it_reaches_under_cache_tags_and_none_dangling() {
    let sandbox = sandbox().await;
    let run = unique_run_id("cache-tags");
    let repository = format!("agent-cache/{run}");
    let files = BTreeMap::from([(
        "Dockerfile".to_owned(),
        format!("FROM {BUSYBOX_IMAGE}\nENV CACHE_TEST={run}\nCMD [\"true\"]\n").into_bytes(),
    )]);
    let context = build_context(&files).expect("context");
    let outcome = sandbox
        .build(
            BuildRequest {
                context: &context,
                labels: &BTreeMap::new(),
                timeout: Duration::from_secs(300),
                network: "none",
                egress: None,
                cache_repository: Some(&repository),
                cache_from: &[],
                no_cache: false,
            },
            &mut |_| {},
        )
        .await
        .expect("the engine answers");
    let image = built_image(&outcome);
    let hex = image.trim_start_matches("sha256:");
    let tags = tags_in(&repository);
    assert_eq!(
        tags,
        [format!("{repository}:{} {}", &hex[..12], &hex[..12])],
        "one entry, named by the image, and no progress tag left"
    );
    let dangling = docker(&["images", "-q", "--no-trunc", "--filter", "dangling=true"]);
    for id in outcome.intermediate_images() {
        assert!(!dangling.contains(&id), "{id} is dangling");
    }
    docker(&["rmi", &format!("{repository}:{}", &hex[..12])]);
}

#[tokio::test]
async fn moving_a_tag_removes_the_image_it_left_unless_used() {
    let sandbox = sandbox().await;
    let run = unique_run_id("retag");
    let reference = format!("agent/{run}:t");
    let mut images = Vec::new();
    for value in ["one", "two"] {
        let (outcome, _) = build(
            &sandbox,
            &run,
            &format!("FROM {BUSYBOX_IMAGE}\nLABEL retag={run}-{value}\n"),
            Duration::from_secs(300),
        )
        .await;
        images.push(built_image(&outcome));
    }
    sandbox.tag(&images[0], &reference).await.expect("tagged");
    // A second tag keeps the first image when the first tag moves away.
    let kept = format!("agent/{run}:kept");
    sandbox.tag(&images[0], &kept).await.expect("tagged");
    sandbox.tag(&images[1], &reference).await.expect("moved");
    let inspect = |image: &str| {
        Command::new("docker")
            .args(["image", "inspect", image])
            .output()
            .expect("docker runs")
            .status
            .success()
    };
    assert!(inspect(&images[0]), "still tagged, so kept");
    sandbox.tag(&images[1], &kept).await.expect("moved");
    assert!(!inspect(&images[0]), "the image both tags left is removed");
    assert!(inspect(&reference) && inspect(&kept));
    docker(&["rmi", &reference, &kept]);
    clean_up(&sandbox, &run).await;
}

#[tokio::test]
async fn relabel_adds_labels_over_the_same_layers_without_a_build() {
    let sandbox = sandbox().await;
    let run = unique_run_id("relabel");
    let (outcome, _) = build(
        &sandbox,
        &run,
        &format!(
            "FROM {BUSYBOX_IMAGE}\nRUN echo {run} > /marker\nLABEL kept=yes\nCMD [\"cat\", \"/marker\"]\n"
        ),
        Duration::from_secs(60),
    )
    .await;
    let built = built_image(&outcome);
    let hostile = "x\"y\\z $HOME\nRUN rm -rf /".to_owned();
    let mut added = labels(&run);
    added.insert("dev.agent.checks".into(), hostile.clone());
    let relabelled = sandbox.relabel(&built, &added).await.expect("relabel");
    assert_ne!(relabelled, built, "a new image, not the same one");

    let inspect =
        |image: &str, format: &str| docker(&["image", "inspect", "--format", format, image]);
    assert_eq!(
        inspect(&relabelled, "{{json .RootFS.Layers}}"),
        inspect(&built, "{{json .RootFS.Layers}}"),
        "the same layers"
    );
    let labels: BTreeMap<String, String> =
        serde_json::from_str(&inspect(&relabelled, "{{json .Config.Labels}}")).expect("labels");
    assert_eq!(labels.get("kept").map(String::as_str), Some("yes"));
    assert_eq!(
        labels.get("dev.agent.checks"),
        Some(&hostile),
        "values kept as they are"
    );
    assert_eq!(labels.get(LABEL_RUN), Some(&run));
    assert_eq!(
        inspect(&relabelled, "{{json .Config.Cmd}}"),
        inspect(&built, "{{json .Config.Cmd}}")
    );
    let history = docker(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}",
        &relabelled,
    ]);
    assert!(history.contains(&format!("echo {run}")), "{history}");

    // It runs as the built image does, and stands alone once the built image is gone.
    docker(&["rmi", &built]);
    let printed = docker(&["run", "--rm", "--network", "none", &relabelled]);
    assert_eq!(printed.trim(), run);
    clean_up(&sandbox, &run).await;
    assert!(!sandbox.image_present(&relabelled).await.expect("inspect"));
}

/// An image with every kind of fact the checks read: metadata of each kind, and a
/// file, an executable, a directory, a symbolic link and a large file with owners.
async fn image_with_facts(sandbox: &Sandbox, run: &str) -> String {
    let dockerfile = format!(
        "FROM {BUSYBOX_IMAGE}\n\
         RUN mkdir -p /app/data && echo 'def main(): pass' > /app/main.py \
         && chmod 640 /app/main.py && chown 1000:100 /app/main.py \
         && printf '#!/bin/sh\\necho hi\\n' > /app/run && chmod 755 /app/run \
         && ln -s /app/main.py /app/link && head -c 300000 /dev/zero > /app/big \
         && chmod 2750 /app/data && mkdir -p /tmp && chmod 1777 /tmp\n\
         ENV MODE=fast GREETING=\"hello world\"\n\
         LABEL org.example.team=core\n\
         EXPOSE 8080 53/udp\n\
         VOLUME /data\n\
         WORKDIR /app\n\
         USER 1000\n\
         ENTRYPOINT [\"/bin/sh\", \"-c\"]\n\
         CMD [\"echo from-cmd\"]\n"
    );
    let (outcome, _) = build(sandbox, run, &dockerfile, Duration::from_secs(300)).await;
    built_image(&outcome)
}

#[tokio::test]
async fn image_and_file_facts_are_read_without_starting_a_container() {
    let sandbox = sandbox().await;
    let run = unique_run_id("facts");
    let image = image_with_facts(&sandbox, &run).await;

    let facts = sandbox.image_facts(&image).await.expect("inspect");
    assert_eq!(facts.user, "1000");
    assert_eq!(facts.workdir, "/app");
    assert_eq!(facts.exposed_ports, ["53/udp", "8080/tcp"]);
    assert!(
        facts.env.contains(&"GREETING=hello world".to_owned()),
        "{:?}",
        facts.env
    );
    assert_eq!(
        facts.labels.get("org.example.team").map(String::as_str),
        Some("core")
    );
    assert_eq!(facts.entrypoint, ["/bin/sh", "-c"]);
    assert_eq!(facts.cmd, ["echo from-cmd"]);
    assert_eq!(facts.volumes, ["/data"]);
    assert!(facts.size_bytes > 300_000, "{}", facts.size_bytes);

    let paths: Vec<String> = [
        "/app/main.py",
        "/app/run",
        "/app/data",
        "/app/link",
        "/app/big",
        "/nope",
        "/app/main.py/x",
    ]
    .map(str::to_owned)
    .to_vec();
    let files = sandbox
        .file_facts(&image, &paths, &labels(&run), 1024)
        .await
        .expect("archive");
    assert_no_container_left(&run);
    let entry = |index: usize| {
        files[index]
            .entry
            .clone()
            .unwrap_or_else(|| panic!("{:?}", files[index]))
    };
    let main = entry(0);
    assert_eq!((main.mode, main.uid, main.gid), (0o100_640, 1000, 100));
    assert_eq!(main.content.as_deref(), Some(&b"def main(): pass\n"[..]));
    assert_eq!(entry(1).mode, 0o100_755);
    let data = entry(2);
    assert_eq!(data.mode, 0o042_750, "the setgid bit and the directory bit");
    assert_eq!(data.content, None);
    let link = entry(3);
    assert_eq!(link.mode & 0o170_000, 0o120_000);
    assert_eq!(link.link_target.as_deref(), Some("/app/main.py"));
    assert_eq!(
        link.content.as_deref(),
        Some(&b"def main(): pass\n"[..]),
        "the link's target is read"
    );
    let big = entry(4);
    assert_eq!(big.content.map(|content| content.len()), Some(1024));
    assert!(big.content_truncated);
    assert_eq!(files[5].entry, None);
    assert_eq!(files[6].entry, None, "a path through a file is absent");
    clean_up(&sandbox, &run).await;
}

#[tokio::test]
async fn a_run_replaces_the_entrypoint_and_the_command_and_setup_commands_are_committed() {
    let sandbox = sandbox().await;
    let run = unique_run_id("setup");
    let image = image_with_facts(&sandbox, &run).await;
    let labels = labels(&run);
    let env = BTreeMap::from([("NAME".to_owned(), "case".to_owned())]);
    let echo = ["/bin/echo".to_owned()];
    let command = ["from".to_owned(), "override".to_owned()];
    let args = ["and-args".to_owned()];
    let ran = sandbox
        .run(RunRequest {
            image: &image,
            args: &args,
            entrypoint: Some(&echo),
            command: Some(&command),
            user: None,
            env: &env,
            stdin: None,
            limits: limits(),
            labels: &labels,
        })
        .await
        .expect("run");
    assert_eq!(text(&ran.stdout.bytes), "from override and-args\n");
    let id = ["/bin/id".to_owned(), "-u".to_owned()];
    let ran = sandbox
        .run(RunRequest {
            image: &image,
            args: &[],
            entrypoint: Some(&[]),
            command: Some(&id),
            user: Some("0"),
            env: &env,
            stdin: None,
            limits: limits(),
            labels: &labels,
        })
        .await
        .expect("run");
    assert_eq!(
        text(&ran.stdout.bytes),
        "0\n",
        "the image's USER 1000 is replaced"
    );

    let images_before = images_labelled(&run);
    let setup = vec![
        vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            "echo one > /tmp/step".to_owned(),
        ],
        vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            "echo \"$NAME\" >> /tmp/step".to_owned(),
        ],
    ];
    let script = [
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        "cat /tmp/step; echo $MODE".to_owned(),
    ];
    let ran = sandbox
        .run_after_setup(
            &setup,
            &env,
            RunRequest {
                image: &image,
                args: &[],
                entrypoint: Some(&[]),
                command: Some(&script),
                user: None,
                env: &BTreeMap::new(),
                stdin: None,
                limits: limits(),
                labels: &labels,
            },
        )
        .await
        .expect("run after setup");
    assert_eq!(text(&ran.stdout.bytes), "one\ncase\nfast\n", "{ran:?}");
    assert_eq!(ran.exit_code, Some(0));
    assert_no_container_left(&run);
    assert_eq!(
        images_labelled(&run),
        images_before,
        "every committed image is removed"
    );

    let missing = vec![vec!["/no/such/program".to_owned()]];
    let ran = sandbox
        .run_after_setup(
            &missing,
            &env,
            RunRequest {
                image: &image,
                args: &[],
                entrypoint: Some(&[]),
                command: Some(&script),
                user: None,
                env: &BTreeMap::new(),
                stdin: None,
                limits: limits(),
                labels: &labels,
            },
        )
        .await
        .expect("a setup command that cannot start is an outcome");
    let why = ran.start_error.unwrap_or_default();
    assert!(
        why.contains("setup command") && why.contains("/no/such/program"),
        "{why}"
    );
    assert_no_container_left(&run);
    clean_up(&sandbox, &run).await;
}
