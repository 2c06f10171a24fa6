//! The engine economy end to end: the layer cache holds across runs and specs, a
//! re-run leaves nothing dangling, and a run's cleanup never takes a layer from a
//! build that runs beside it. The classic builder's cache is images (tagged
//! `agent-cache/<spec>:…`); BuildKit's is its own, and a re-run takes its steps from
//! it too.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use agent_testkit::{PYTHON_IMAGE, ScriptedReply, ScriptedServer};
use serde_json::Value;

use crate::support::*;

/// A name no earlier test run used, so the first build of its steps is a real one.
fn unique(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

/// A Dockerfile whose dependency step (unique to `marker`) comes before `COPY`;
/// `extra` goes between them.
fn dependency_dockerfile(marker: &str, extra: &str) -> String {
    format!(
        "FROM {PYTHON_IMAGE}\nRUN echo 'dependencies {marker}' > /deps.txt\n{extra}WORKDIR /app\nCOPY main.py .\nCMD [\"python3\", \"main.py\"]\n"
    )
}

fn spec_text(word: &str) -> String {
    format!(
        "prompt = \"Write a Python program that prints {word}.\"\nconditions = \"It prints exactly {word}.\"\n\n[[check]]\nstdout_equals = \"{word}\"\n"
    )
}

/// [`Workspace::new`] building with `builder`.
fn workspace_with(server: &ScriptedServer, builder: &str) -> Workspace {
    let workspace = Workspace::new(&server.base_url(), "", "");
    let config = workspace.path().join("agent.toml");
    let text = std::fs::read_to_string(&config)
        .expect("agent.toml")
        .replace(
            "[docker]\n",
            &format!("[docker]\nbuilder = \"{builder}\"\n"),
        );
    std::fs::write(&config, text).expect("agent.toml written");
    workspace
}

/// The single run directory of `spec` under `out`.
fn run_dir(out: &Path, spec: &str) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(out.join(spec))
        .expect("the spec's run folder")
        .map(|entry| entry.expect("entry").path())
        .collect();
    assert_eq!(dirs.len(), 1, "one run of `{spec}`: {dirs:?}");
    dirs.into_iter().next().expect("one")
}

fn report(run_dir: &Path) -> Value {
    let text = std::fs::read_to_string(run_dir.join("report.json")).expect("report.json");
    serde_json::from_str(&text).expect("report.json is JSON")
}

fn build_log(run_dir: &Path, iteration: u32) -> String {
    std::fs::read_to_string(run_dir.join(format!("iterations/{iteration}/build.log")))
        .expect("build.log")
}

/// What the build printed for step `index` (from its `Step index/` line to the next).
fn step(log: &str, index: u32) -> String {
    let start = log
        .find(&format!("Step {index}/"))
        .unwrap_or_else(|| panic!("step {index} in\n{log}"));
    let rest = &log[start..];
    let end = rest[1..].find("Step ").map_or(rest.len(), |end| end + 1);
    rest[..end].to_string()
}

/// The image ids a build log names (`---> <id>`).
fn printed_ids(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|line| line.trim().strip_prefix("---> "))
        .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit()))
        .map(str::to_string)
        .collect()
}

fn image_exists(image: &str) -> bool {
    std::process::Command::new("docker")
        .args(["image", "inspect", image])
        .output()
        .expect("docker runs")
        .status
        .success()
}

/// Removes the verified and cache tags of `spec` (and the images only they keep).
fn remove_spec_images(spec: &str) {
    let references: Vec<String> = docker_lines(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
        .into_iter()
        .filter(|reference| {
            reference.starts_with(&format!("agent/{spec}:"))
                || reference.starts_with(&format!("agent-cache/{spec}:"))
        })
        .collect();
    for reference in references {
        let _ = std::process::Command::new("docker")
            .args(["rmi", &reference])
            .output();
    }
}

/// Two runs of a spec named `name` whose Dockerfile has a dependency step, both
/// verified with `builder`: the workspace (kept while its runs are read) and the two
/// run directories.
async fn run_twice(name: &str, builder: &str) -> (Workspace, PathBuf, PathBuf) {
    let reply = bundle(
        Some(&dependency_dockerfile(name, "")),
        &[("main.py", "print('hello')")],
    );
    let server = ScriptedServer::start(vec![
        ScriptedReply::Content(reply.clone()),
        ScriptedReply::Content(reply),
    ])
    .await;
    let workspace = workspace_with(&server, builder);
    let spec = workspace.spec(name, &spec_text("hello"));
    for out in ["first", "second"] {
        agent(
            &workspace,
            &["run", "--no-lock", "--out", out, spec.to_str().unwrap()],
        )
        .await
        .assert_code(0);
    }
    let first = run_dir(&workspace.path().join("first"), name);
    let second = run_dir(&workspace.path().join("second"), name);
    (workspace, first, second)
}

/// No dangling image carries the spec's label.
fn assert_nothing_of_spec_dangles(name: &str) {
    let dangling_of_spec = docker_lines(&[
        "images",
        "-q",
        "--filter",
        "dangling=true",
        "--filter",
        &format!("label=dev.agent.spec={name}"),
    ]);
    assert_eq!(dangling_of_spec, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_run_reuses_the_dependency_install_and_leaves_nothing_dangling() {
    require_engine();
    let name = unique("rerun");
    let (_workspace, first, second) = run_twice(&name, "classic").await;

    let install = |dir: &Path| step(&build_log(dir, 1), 2);
    assert!(
        !install(&first).contains("Using cache"),
        "the first run installs: {}",
        install(&first)
    );
    assert!(
        install(&second).contains("---> Using cache"),
        "the second run takes the install from the cache: {}",
        install(&second)
    );

    let (first_report, second_report) = (report(&first), report(&second));
    let tag = second_report["image"].as_str().expect("a verified image");
    assert_eq!(first_report["image"].as_str(), Some(tag), "the same bundle");
    let earlier = first_report["image_id"].as_str().expect("image id");
    let later = second_report["image_id"].as_str().expect("image id");
    assert_ne!(earlier, later, "each run labels its verified image anew");
    assert!(!image_exists(earlier), "the image the tag left is removed");
    assert_nothing_of_spec_dangles(&name);
    let dangling = docker_lines(&["images", "-q", "--no-trunc", "--filter", "dangling=true"]);
    for log in [build_log(&first, 1), build_log(&second, 1)] {
        for id in printed_ids(&log) {
            assert!(
                !dangling
                    .iter()
                    .any(|image| image.trim_start_matches("sha256:").starts_with(&id)),
                "{id}, built by the runs, is dangling"
            );
        }
    }
    remove_spec_images(&name);
}

/// Whether BuildKit's log (`#3 [2/5] RUN …`, `#3 CACHED`) says the step whose
/// instruction holds `needle` was taken from the cache.
fn vertex_cached(log: &str, needle: &str) -> bool {
    let number = log.lines().find_map(|line| {
        let (number, name) = line.split_once(' ')?;
        (number.starts_with('#') && name.starts_with('[') && name.contains(needle))
            .then(|| number.to_owned())
    });
    let number = number.unwrap_or_else(|| panic!("a step with `{needle}` in\n{log}"));
    log.lines().any(|line| line == format!("{number} CACHED"))
}

#[tokio::test(flavor = "multi_thread")]
async fn with_buildkit_a_second_run_takes_the_dependency_step_from_its_cache() {
    require_engine();
    let name = unique("rerun-buildkit");
    let (_workspace, first, second) = run_twice(&name, "buildkit").await;
    let install = format!("RUN echo 'dependencies {name}'");
    assert!(
        !vertex_cached(&build_log(&first, 1), &install),
        "the first run installs"
    );
    assert!(
        vertex_cached(&build_log(&second, 1), &install),
        "the second run takes the install from the cache: {}",
        build_log(&second, 1)
    );
    let (first_report, second_report) = (report(&first), report(&second));
    assert_eq!(first_report["seal"]["method"], "rebuild", "{first_report}");
    let earlier = first_report["image_id"].as_str().expect("image id");
    assert_ne!(Some(earlier), second_report["image_id"].as_str());
    assert!(!image_exists(earlier), "the image the tag left is removed");
    assert_nothing_of_spec_dangles(&name);
    remove_spec_images(&name);
}

/// Whether an image is tagged `agent-cache/<spec>:…`: the spec's build has reached
/// its first step of its own.
fn has_cache_tag(spec: &str) -> bool {
    docker_lines(&["images", "--format", "{{.Repository}}"])
        .iter()
        .any(|repository| repository == &format!("agent-cache/{spec}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_runs_sharing_their_first_steps_survive_one_cleaning_up_while_the_other_builds()
{
    require_engine();
    let marker = unique("shared");
    let (quick, slow) = (unique("quick"), unique("slow"));
    let quick_reply = bundle(
        Some(&dependency_dockerfile(&marker, "")),
        &[("main.py", "print('alpha')")],
    );
    // The slow build stands on the layer the quick one made, while the quick run ends
    // and cleans up.
    let slow_reply = bundle(
        Some(&dependency_dockerfile(&marker, "RUN sleep 20\n")),
        &[("main.py", "print('beta')")],
    );
    let server = ScriptedServer::start_with(move |_, request| {
        ScriptedReply::Content(if request.all_text().contains("beta") {
            slow_reply.clone()
        } else {
            quick_reply.clone()
        })
    })
    .await;
    let workspace = workspace_with(&server, "classic");
    let quick_spec = workspace.spec(&quick, &spec_text("alpha"));
    let slow_spec = workspace.spec(&slow, &spec_text("beta"));
    let quick_run = agent_command(
        &workspace,
        &[
            "run",
            "--no-lock",
            "--out",
            "quick",
            quick_spec.to_str().unwrap(),
        ],
    )
    .spawn()
    .expect("agent starts");
    // The slow run starts once the quick build has made the shared layer.
    let started = std::time::Instant::now();
    while !has_cache_tag(&quick) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(180),
            "the quick build reached its dependency step"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mut slow_run = agent_command(
        &workspace,
        &[
            "run",
            "--no-lock",
            "--out",
            "slow",
            slow_spec.to_str().unwrap(),
        ],
    )
    .spawn()
    .expect("agent starts");
    let quick_output = quick_run.wait_with_output().await.expect("quick run ends");
    assert_eq!(
        quick_output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&quick_output.stderr)
    );
    assert!(
        slow_run.try_wait().expect("status").is_none(),
        "the slow run still builds while the quick one has ended and cleaned up"
    );
    let slow_output = slow_run.wait_with_output().await.expect("slow run ends");
    assert_eq!(
        slow_output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&slow_output.stderr)
    );

    let quick_dir = run_dir(&workspace.path().join("quick"), &quick);
    let slow_dir = run_dir(&workspace.path().join("slow"), &slow);
    assert!(
        !step(&build_log(&quick_dir, 1), 2).contains("Using cache"),
        "the quick build made the shared layer"
    );
    let shared = step(&build_log(&slow_dir, 1), 2);
    assert!(
        shared.contains("---> Using cache"),
        "the slow build stands on the quick one's layer: {shared}"
    );
    let shared_layer = printed_ids(&shared).pop().expect("the shared layer's id");
    assert!(image_exists(&shared_layer), "the shared layer is kept");
    for spec in [&quick, &slow] {
        remove_spec_images(spec);
    }
}
