//! A CI job on a fresh runner: one run on the main engine builds, verifies and pushes;
//! a `--locked` run on an engine that holds nothing but the base image takes the pushed
//! image from the registry, runs and checks it, and builds nothing; with one source
//! file changed it builds, taking the dependency step from that image. Refused credentials
//! end that run with exit 3 and leak nowhere. All of it with either builder: the
//! classic builder takes the pulled image's steps by their history, BuildKit by the
//! inline cache the seal keeps in it. The fresh engines are engines 8 (classic) and 10
//! (BuildKit) of `scripts/second-engine`, which no other test uses; everything on them
//! but the base image, the build cache included, is removed first.

use std::path::{Path, PathBuf};

use agent_testkit::{BUSYBOX_IMAGE, ScriptedReply, ScriptedServer};
use serde_json::Value;

use super::{Registry, base64_of, docker, docker_config};
use crate::support::*;

/// A builder, the fresh engine its test uses, and what its build log says of a step
/// taken from the cache.
struct Builder {
    name: &'static str,
    fresh_engine: &'static str,
    cached_step: &'static str,
}

const CLASSIC: Builder = Builder {
    name: "classic",
    fresh_engine: "8",
    cached_step: "Using cache",
};

const BUILDKIT: Builder = Builder {
    name: "buildkit",
    fresh_engine: "10",
    cached_step: "CACHED",
};

/// The dependency step writes when it ran: a reused image keeps the first run's time.
fn dockerfile() -> String {
    format!(
        "FROM {BUSYBOX_IMAGE}\nRUN date +%s%N > /marker\nCOPY main.sh /main.sh\nCMD [\"sh\", \"/main.sh\"]\n"
    )
}

const MAIN_SH: &str = "echo built-at-$(cat /marker)\necho reused-ok\n";

const SPEC: &str = "prompt = \"Write a shell program that prints reused-ok.\"\nconditions = \"It prints reused-ok.\"\n[[check]]\nstdout_contains = \"reused-ok\"\n";

/// Engine `number`, started when it does not answer, holding the base image and
/// nothing else: no other image, and no BuildKit step cache from an earlier run (which
/// would hand the dependency step to a build as a registry's image would).
async fn fresh_engine(number: &str) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/second-engine");
    let output = std::process::Command::new(script)
        .args(["start", number])
        .output()
        .expect("scripts/second-engine runs");
    assert!(
        output.status.success(),
        "scripts/second-engine start {number}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let url = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let others: Vec<String> = docker_lines(&["-H", &url, "images", "-a", "-q", "--no-trunc"])
        .into_iter()
        .filter(|id| *id != image_id(&url, BUSYBOX_IMAGE).unwrap_or_default())
        .collect();
    for id in others {
        let _ = docker(&["-H", &url, "rmi", "-f", &id]);
    }
    let pruned = docker(&["-H", &url, "builder", "prune", "--all", "--force"]);
    assert!(
        pruned.status.success(),
        "docker builder prune on engine {number}: {}",
        String::from_utf8_lossy(&pruned.stderr)
    );
    if image_id(&url, BUSYBOX_IMAGE).is_none() {
        let saved = docker(&["save", BUSYBOX_IMAGE]);
        assert!(saved.status.success(), "docker save {BUSYBOX_IMAGE}");
        let mut load = std::process::Command::new("docker")
            .args(["-H", &url, "load"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("docker load runs");
        use std::io::Write as _;
        load.stdin
            .take()
            .expect("stdin")
            .write_all(&saved.stdout)
            .expect("the image is sent");
        assert!(load.wait().expect("docker load ends").success());
    }
    assert_eq!(
        docker_lines(&["-H", &url, "images", "-a", "-q"]).len(),
        1,
        "engine {number} holds the base image only"
    );
    url
}

fn image_id(url: &str, image: &str) -> Option<String> {
    let output = docker(&["-H", url, "image", "inspect", "-f", "{{.Id}}", image]);
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// `agent.toml` building on busybox with `builder`.
fn busybox_workspace(server: &ScriptedServer, builder: &Builder) -> Workspace {
    let workspace = Workspace::new(&server.base_url(), "", "");
    let config = workspace.path().join("agent.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("base_image = \"{}\"", agent_testkit::PYTHON_IMAGE),
        &format!(
            "base_image = \"{BUSYBOX_IMAGE}\"\nbuilder = \"{}\"",
            builder.name
        ),
    );
    std::fs::write(&config, text).unwrap();
    workspace
}

/// The report of the one run of `spec` below `out`.
fn report_in(workspace: &Workspace, out: &str, spec: &str) -> (PathBuf, Value) {
    let folder = workspace.path().join(out).join(spec);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&folder)
        .expect("the spec's run folder exists")
        .map(|entry| entry.expect("entry").path())
        .collect();
    assert_eq!(dirs.len(), 1, "one run below {}", folder.display());
    let dir = dirs.remove(0);
    let text = std::fs::read_to_string(dir.join("report.json")).expect("report.json");
    (dir, serde_json::from_str(&text).expect("JSON"))
}

async fn run_in(workspace: &Workspace, config: &Path, args: &[&str]) -> Output {
    let mut command = agent_command(workspace, args);
    command.env("DOCKER_CONFIG", config);
    run_agent(&mut command).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_engine_reuses_the_pushed_image_of_an_unchanged_spec_and_its_layers_for_a_changed_source()
 {
    reuse_on_a_fresh_engine(&CLASSIC).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_buildkit_a_fresh_engine_reuses_the_pushed_image_and_its_inline_cache() {
    reuse_on_a_fresh_engine(&BUILDKIT).await;
}

async fn reuse_on_a_fresh_engine(builder: &Builder) {
    require_engine();
    let password = "reuse-password-sentinel-7731";
    let registry = Registry::start(Some(("ci", password))).await;
    let reply = bundle(Some(&dockerfile()), &[("main.sh", MAIN_SH)]);
    let server = ScriptedServer::start(vec![ScriptedReply::Content(reply)]).await;
    let workspace = busybox_workspace(&server, builder);
    // Its own spec name per builder: the two tests tag and push apart.
    let name = format!("reuse-{}", builder.name);
    let spec = workspace.spec(&name, SPEC);
    let spec = spec.to_str().unwrap();
    let auth = base64_of(&format!("ci:{password}"));
    let config = docker_config(&format!(
        r#"{{"auths": {{"{}": {{"auth": "{auth}"}}}}}}"#,
        registry.address()
    ));
    let repository = format!("{}/ci", registry.address());

    // The first job builds, verifies and pushes; the lock records where the image went.
    let first = run_in(
        &workspace,
        config.path(),
        &["run", spec, "--out", "first", "--push", &repository],
    )
    .await;
    first.assert_code(0);
    let (_, built) = report_in(&workspace, "first", &name);
    assert_eq!(built["iterations"], 1);
    let published = built["published"].clone();
    let lock: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace.path().join(format!("{name}.lock/lock.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(lock["published"], published, "the lock names the push");
    let first_marker = std::fs::read_to_string(
        report_in(&workspace, "first", &name)
            .0
            .join("iterations/1/stdout.txt"),
    )
    .unwrap();
    assert_run_cleaned_up(&built);

    // A fresh runner: nothing but the base image on its engine.
    let fresh = fresh_engine(builder.fresh_engine).await;
    let second = run_in(
        &workspace,
        config.path(),
        &[
            "run", spec, "--locked", "--out", "second", "--engine", &fresh,
        ],
    )
    .await;
    second.assert_code(0);
    let (run_dir, reused) = report_in(&workspace, "second", &name);
    assert_eq!(reused["verified"], true);
    assert_eq!(reused["reused"], published, "{reused}");
    assert_eq!(reused["iterations"], 0, "nothing was built: {reused}");
    assert!(reused["history"][0]["build_secs"].is_null(), "{reused}");
    assert!(!run_dir.join("iterations/1/build.log").exists());
    second.assert_stderr_has(&format!(
        "reusing the published image {}",
        published["reference"].as_str().unwrap()
    ));
    assert_eq!(server.requests().len(), 1, "--locked asks no model");
    let printed = std::fs::read_to_string(run_dir.join("iterations/1/stdout.txt")).unwrap();
    assert_eq!(
        printed, first_marker,
        "the image that ran is the first run's"
    );
    let on_fresh = docker_lines(&["-H", &fresh, "images", "--format", "{{.Repository}}"]);
    assert!(
        !on_fresh.iter().any(|name| name.starts_with("agent-cache/")),
        "no build left a cache image: {on_fresh:?}"
    );
    let verified = reused["image"].as_str().unwrap();
    assert!(
        image_id(&fresh, verified).is_some(),
        "{verified} is on the fresh engine"
    );

    // The same job with a wrong password: refused, exit 3, the password nowhere.
    fresh_engine(builder.fresh_engine).await;
    let wrong = "wrong-reuse-password-4242";
    let wrong_config = docker_config(&format!(
        r#"{{"auths": {{"{}": {{"username": "ci", "password": "{wrong}"}}}}}}"#,
        registry.address()
    ));
    let mut command = agent_command(
        &workspace,
        &[
            "run", spec, "--locked", "--out", "third", "--engine", &fresh,
        ],
    );
    command
        .env("DOCKER_CONFIG", wrong_config.path())
        .env("RUST_LOG", "trace");
    let refused = run_agent(&mut command).await;
    refused.assert_code(3);
    refused.assert_stderr_has(&format!("docker login {}", registry.address()));
    for text in [&refused.stdout, &refused.stderr] {
        assert!(!text.contains(wrong) && !text.contains(password));
    }
    for path in files_below(&workspace.path().join("third")) {
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        assert!(
            !text.contains(wrong),
            "the password leaked into {}",
            path.display()
        );
    }
    // Only a source file changed: the fresh engine builds, and its dependency step
    // comes from the registry's image (the marker is the first run's), not run again.
    fresh_engine(builder.fresh_engine).await;
    let absent = format!("{repository}/absent:none");
    let source = workspace.path().join(format!("{name}.lock/main.sh"));
    std::fs::write(&source, format!("{MAIN_SH}echo changed\n")).unwrap();
    let changed = run_in(
        &workspace,
        config.path(),
        &[
            "run",
            spec,
            "--locked",
            "--out",
            "changed",
            "--engine",
            &fresh,
            "--cache-from",
            &absent,
        ],
    )
    .await;
    changed.assert_code(0);
    assert!(
        changed
            .stderr
            .contains(&format!("warning: cache source {absent} skipped")),
        "a missing cache source is said and skipped: {}",
        changed.stderr
    );
    let (run_dir, rebuilt) = report_in(&workspace, "changed", &name);
    assert_eq!(rebuilt["iterations"], 1, "{rebuilt}");
    assert!(rebuilt.get("reused").is_none(), "{rebuilt}");
    assert!(
        changed.stderr.contains("not reusing") && changed.stderr.contains("bundle-digest"),
        "{}",
        changed.stderr
    );
    let printed = std::fs::read_to_string(run_dir.join("iterations/1/stdout.txt")).unwrap();
    assert_eq!(
        printed,
        format!("{first_marker}changed\n"),
        "the dependency step was not run again"
    );
    let log = std::fs::read_to_string(run_dir.join("iterations/1/build.log")).unwrap();
    assert!(log.contains(builder.cached_step), "{log}");
    let label = format!(
        "label=dev.agent.run={}",
        rebuilt["run_id"].as_str().unwrap()
    );
    let left = docker_lines(&["-H", &fresh, "ps", "-aq", "--filter", &label]);
    assert!(
        left.is_empty(),
        "containers left on the fresh engine: {left:?}"
    );

    let _ = docker(&["rmi", published["reference"].as_str().unwrap()]);
}
