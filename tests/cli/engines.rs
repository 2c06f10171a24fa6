//! Several engines: specs spread over two real engines, an engine lost mid-run hands
//! its iteration to the other, an engine down at start is left out, and `doctor`
//! lists each. The second engine is started by `scripts/second-engine` (which
//! `scripts/test` calls) and found through `AGENT_TEST_ENGINE_2`; the engine that is
//! killed is a third one of its own, so no other test loses its engine.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use agent_sandbox::Sandbox;
use agent_testkit::{BUSYBOX_IMAGE, ScriptedReply, ScriptedServer};
use serde_json::Value;

use crate::support::*;

mod contexts;
mod ssh;

const MAIN_ENGINE: &str = "unix:///var/run/docker.sock";
/// Never started: an engine that does not answer.
const ABSENT_ENGINE: &str = "unix:///var/run/agent-engine-9.sock";

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/second-engine")
}

/// Runs `scripts/second-engine <args>`; its stdout.
fn second_engine_script(args: &[&str]) -> String {
    let output = std::process::Command::new(script())
        .args(args)
        .output()
        .expect("scripts/second-engine runs");
    assert!(
        output.status.success(),
        "scripts/second-engine {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The second engine `scripts/test` started, with the busybox base image on it.
/// Fails loudly when it is not there.
async fn second_engine() -> String {
    let url = std::env::var("AGENT_TEST_ENGINE_2").unwrap_or_default();
    assert!(
        !url.is_empty(),
        "AGENT_TEST_ENGINE_2 is not set: run the tests through scripts/test, or \
         `export AGENT_TEST_ENGINE_2=$(scripts/second-engine start)`"
    );
    with_base_image(&url).await;
    url
}

/// Copies the busybox base image from the main engine to `url` when it lacks it.
async fn with_base_image(url: &str) {
    let main = Sandbox::connect(Some(MAIN_ENGINE))
        .await
        .expect("the main engine answers");
    let other = Sandbox::connect(Some(url))
        .await
        .unwrap_or_else(|error| panic!("the engine at {url} does not answer: {error}"));
    if !other.image_present(BUSYBOX_IMAGE).await.expect("inspect") {
        main.copy_image_to(&other, BUSYBOX_IMAGE, Duration::from_secs(120))
            .await
            .expect("the base image is copied");
    }
    assert!(other.image_present(BUSYBOX_IMAGE).await.expect("inspect"));
}

/// A workspace building on busybox, with `engines` as `[docker] engines`.
fn busybox_workspace(server: &ScriptedServer, engines: &str) -> Workspace {
    require_engine();
    let workspace = Workspace::new(&server.base_url(), "", "");
    let config = workspace.path().join("agent.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("base_image = \"{}\"", agent_testkit::PYTHON_IMAGE),
        &format!("base_image = \"{BUSYBOX_IMAGE}\"\nengines = {engines}"),
    );
    std::fs::write(&config, text).unwrap();
    workspace
}

/// `count` specs named `<prefix>-<n>` that want `hello`, and one model reply for each.
fn hello_specs(workspace: &Workspace, prefix: &str, count: usize) -> Vec<String> {
    (1..=count)
        .map(|number| {
            let path = workspace.spec(&format!("{prefix}-{number}"), HELLO_SPEC);
            path.to_str().unwrap().to_string()
        })
        .collect()
}

fn busybox_reply(command: &str) -> ScriptedReply {
    let dockerfile = format!("FROM {BUSYBOX_IMAGE}\nCMD [\"sh\", \"-c\", \"{command}\"]\n");
    ScriptedReply::Content(bundle(Some(&dockerfile), &[]))
}

fn reports(workspace: &Workspace, specs: &[String]) -> Vec<Value> {
    specs
        .iter()
        .map(|path| {
            let name = std::path::Path::new(path).file_stem().unwrap();
            workspace.report(name.to_str().unwrap())
        })
        .collect()
}

/// Ids of containers and images on the engine at `url` labelled with `run_id`.
fn left_on(url: &str, run_id: &str) -> Vec<String> {
    let label = format!("label=dev.agent.run={run_id}");
    let mut left = docker_lines(&["-H", url, "ps", "-aq", "--filter", &label]);
    left.extend(docker_lines(&[
        "-H",
        url,
        "images",
        "-q",
        "--filter",
        &label,
        "--filter",
        "dangling=true",
    ]));
    left
}

#[tokio::test(flavor = "multi_thread")]
async fn specs_spread_over_two_engines_and_each_is_cleaned() {
    let second = second_engine().await;
    let server = ScriptedServer::start((0..4).map(|_| busybox_reply("echo hello")).collect()).await;
    let engines =
        format!("[{{ url = \"{MAIN_ENGINE}\", slots = 1 }}, {{ url = \"{second}\", slots = 1 }}]");
    let workspace = busybox_workspace(&server, &engines);
    let specs = hello_specs(&workspace, "spread", 4);
    let mut args = vec!["run", "--json"];
    args.extend(specs.iter().map(String::as_str));
    let output = agent(&workspace, &args).await;
    output.assert_code(0);

    let reports = reports(&workspace, &specs);
    let used: BTreeSet<String> = reports
        .iter()
        .map(|report| {
            assert_eq!(report["verified"], true, "{report}");
            let engine = report["history"][0]["engine"].as_str().unwrap_or_default();
            engine.to_string()
        })
        .collect();
    assert_eq!(
        used,
        BTreeSet::from([MAIN_ENGINE.to_string(), second.clone()]),
        "both engines took specs"
    );
    for report in &reports {
        let run_id = report["run_id"].as_str().unwrap();
        for url in [MAIN_ENGINE, second.as_str()] {
            assert_eq!(left_on(url, run_id), Vec::<String>::new(), "{url}");
        }
        // The verified image is on the engine that ran the spec.
        let engine = report["history"][0]["engine"].as_str().unwrap();
        let tag = report["image"].as_str().unwrap();
        docker_lines(&["-H", engine, "image", "inspect", "--format", "{{.Id}}", tag]);
        docker_lines(&["-H", engine, "rmi", tag]);
    }
    assert_eq!(server.requests().len(), 4, "one model call per spec");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_engine_lost_mid_run_hands_its_iteration_to_the_other_with_no_new_model_call() {
    let doomed = second_engine_script(&["start", "3"]);
    with_base_image(&doomed).await;
    let server = ScriptedServer::start(
        (0..4)
            .map(|_| busybox_reply("sleep 4; echo hello"))
            .collect(),
    )
    .await;
    let engines =
        format!("[{{ url = \"{MAIN_ENGINE}\", slots = 2 }}, {{ url = \"{doomed}\", slots = 2 }}]");
    let workspace = busybox_workspace(&server, &engines);
    let specs = hello_specs(&workspace, "failover", 4);
    let mut args = vec!["run"];
    args.extend(specs.iter().map(String::as_str));
    let child = agent_command(&workspace, &args);

    // Once a container runs on the third engine, it is killed as a crash would.
    let watch = tokio::spawn({
        let doomed = doomed.clone();
        async move {
            for _ in 0..600 {
                let running =
                    docker_lines(&["-H", &doomed, "ps", "-q", "--filter", "label=dev.agent.run"]);
                if !running.is_empty() {
                    second_engine_script(&["kill", "3"]);
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        }
    });
    let mut child = child;
    let output = run_agent(&mut child).await;
    assert!(
        watch.await.unwrap(),
        "a container ran on the third engine before the run ended"
    );
    output.assert_code(0);
    output.assert_stderr_has(&format!("engine `{doomed}` was lost"));
    let reports = reports(&workspace, &specs);
    let mut retried = 0;
    for report in &reports {
        assert_eq!(report["verified"], true, "{report}");
        assert_eq!(report["iterations"], 1, "{report}");
        let first = &report["history"][0];
        if let Some(lost) = first["retried_after_lost"].as_array() {
            assert_eq!(lost, &vec![Value::from(doomed.clone())], "{report}");
            assert_eq!(first["engine"], MAIN_ENGINE, "{report}");
            retried += 1;
        }
        let run_id = report["run_id"].as_str().unwrap();
        assert_eq!(left_on(MAIN_ENGINE, run_id), Vec::<String>::new());
        docker_lines(&["rmi", report["image"].as_str().unwrap()]);
    }
    assert!(
        retried >= 1,
        "at least one iteration was retried: {reports:?}"
    );
    assert_eq!(server.requests().len(), 4, "no new model call for a retry");
    second_engine_script(&["stop", "3"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_engine_down_at_start_is_left_out_and_none_answering_exits_3() {
    assert!(
        !std::path::Path::new(ABSENT_ENGINE.trim_start_matches("unix://")).exists(),
        "{ABSENT_ENGINE} must not exist"
    );
    let server = ScriptedServer::start(vec![busybox_reply("echo hello")]).await;
    let engines = format!("[\"{MAIN_ENGINE}\"]");
    let workspace = busybox_workspace(&server, &engines);
    let specs = hello_specs(&workspace, "down", 1);
    let output = agent(
        &workspace,
        &[
            "run",
            "--engine",
            ABSENT_ENGINE,
            "--engine",
            MAIN_ENGINE,
            &specs[0],
        ],
    )
    .await;
    output.assert_code(0);
    output.assert_stderr_has(&format!(
        "agent: engine `{ABSENT_ENGINE}` does not answer; it is left out"
    ));
    let report = workspace.report("down-1");
    assert_eq!(report["history"][0]["engine"], MAIN_ENGINE);
    docker_lines(&["rmi", report["image"].as_str().unwrap()]);

    let dead = workspace.spec("dead", HELLO_SPEC);
    let output = agent(
        &workspace,
        &[
            "run",
            "--engine",
            ABSENT_ENGINE,
            "--engine",
            "unix:///var/run/agent-no-engine.sock",
            dead.to_str().unwrap(),
        ],
    )
    .await;
    output.assert_code(3);
    output.assert_stderr_has("error: no engine answers with the base images");
    output.assert_stderr_has("hint: ");
    assert_eq!(
        server.requests().len(),
        1,
        "no model call without an engine"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_lists_every_engine_with_slots_driver_and_base_images() {
    let second = second_engine().await;
    let server = ScriptedServer::start(vec![]).await;
    let workspace = busybox_workspace(&server, "[]");
    let output = agent(
        &workspace,
        &[
            "doctor",
            "--engine",
            MAIN_ENGINE,
            "--engine",
            &second,
            "--engine",
            ABSENT_ENGINE,
        ],
    )
    .await;
    output.assert_code(3);
    for url in [MAIN_ENGINE, second.as_str()] {
        let line = output
            .stdout
            .lines()
            .find(|line| line.starts_with("ok    engine ") && line.contains(url))
            .unwrap_or_else(|| panic!("a line for {url}:\n{}", output.stdout));
        assert!(line.contains("(API 1."), "{line}");
        assert!(line.contains(" slots, storage driver "), "{line}");
        assert!(
            line.ends_with(", builder buildkit"),
            "auto picks BuildKit: {line}"
        );
        assert!(
            output.stdout.contains(&format!(
                "ok    base image `{BUSYBOX_IMAGE}` is present on {url}"
            )),
            "{}",
            output.stdout
        );
    }
    assert!(
        output
            .stdout
            .contains(&format!("fail  engine {ABSENT_ENGINE}:")),
        "{}",
        output.stdout
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as `dockerd
/// --tlsverify` and the Docker CLI's `DOCKER_CERT_PATH` want them.
fn tls_files(dir: &std::path::Path) {
    let steps: [&[&str]; 9] = [
        &["genrsa", "-out", "ca-key.pem", "2048"],
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca-key.pem",
            "-sha256",
            "-days",
            "2",
            "-subj",
            "/CN=agent-test-ca",
            "-out",
            "ca.pem",
        ],
        &["genrsa", "-out", "server-key.pem", "2048"],
        &[
            "req",
            "-new",
            "-key",
            "server-key.pem",
            "-subj",
            "/CN=127.0.0.1",
            "-out",
            "server.csr",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "2",
            "-sha256",
            "-extfile",
            "server.ext",
            "-out",
            "server-cert.pem",
        ],
        &["genrsa", "-out", "key.pem", "2048"],
        &[
            "req",
            "-new",
            "-key",
            "key.pem",
            "-subj",
            "/CN=agent-test-client",
            "-out",
            "client.csr",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "2",
            "-sha256",
            "-extfile",
            "client.ext",
            "-out",
            "cert.pem",
        ],
        &["verify", "-CAfile", "ca.pem", "cert.pem"],
    ];
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for step in steps {
        let output = std::process::Command::new("openssl")
            .args(step)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            output.status.success(),
            "openssl {step:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_engine_over_tcp_with_tls_is_reached_as_the_docker_cli_reaches_it() {
    let certificates = tempfile::tempdir().unwrap();
    tls_files(certificates.path());
    let folder = certificates.path().to_str().unwrap();
    let url = second_engine_script(&["start", "4", "--tls", folder]);
    assert!(url.starts_with("tcp://127.0.0.1:"), "{url}");
    with_base_image("unix:///var/run/agent-engine-4.sock").await;
    // `doctor` asks the model once itself: its own server.
    let silent = ScriptedServer::start(vec![]).await;
    let doctor_workspace = busybox_workspace(&silent, "[]");
    let server = ScriptedServer::start(vec![busybox_reply("echo hello")]).await;
    let workspace = busybox_workspace(&server, "[]");

    // Without DOCKER_TLS_VERIFY the engine refuses a plain client.
    let plain = agent(&doctor_workspace, &["doctor", "--engine", &url]).await;
    plain.assert_code(3);
    assert!(
        plain.stdout.contains(&format!("fail  engine {url}:")),
        "{}",
        plain.stdout
    );

    let with_tls = |workspace: &Workspace, args: &[&str]| {
        let mut command = agent_command(workspace, args);
        command
            .env("DOCKER_TLS_VERIFY", "1")
            .env("DOCKER_CERT_PATH", certificates.path());
        command
    };
    let doctor = run_agent(&mut with_tls(
        &doctor_workspace,
        &["doctor", "--engine", &url],
    ))
    .await;
    doctor.assert_code(0);
    assert!(
        doctor
            .stdout
            .lines()
            .any(|line| line.starts_with("ok    engine ") && line.contains(&url)),
        "{}",
        doctor.stdout
    );

    let spec = workspace.spec("tls-1", HELLO_SPEC);
    let run = run_agent(&mut with_tls(
        &workspace,
        &["run", "--engine", &url, spec.to_str().unwrap()],
    ))
    .await;
    run.assert_code(0);
    let report = workspace.report("tls-1");
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(report["history"][0]["engine"], url.as_str());
    second_engine_script(&["stop", "4"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_engine_with_one_slot_runs_one_container_at_a_time() {
    let server = ScriptedServer::start(
        (0..3)
            .map(|_| busybox_reply("sleep 1; echo hello"))
            .collect(),
    )
    .await;
    let engines = format!("[{{ url = \"{MAIN_ENGINE}\", slots = 1 }}]");
    let workspace = busybox_workspace(&server, &engines);
    let specs = hello_specs(&workspace, "one-slot", 3);
    let mut args = vec!["run"];
    args.extend(specs.iter().map(String::as_str));
    let mut command = agent_command(&workspace, &args);

    // The most of these specs' containers seen running at once (with 3 slots: 3).
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watch = tokio::spawn({
        let done = done.clone();
        async move {
            let mut most = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let running: usize = (1..=3)
                    .map(|number| {
                        let label = format!("label=dev.agent.spec=one-slot-{number}");
                        docker_lines(&["ps", "-q", "--filter", &label]).len()
                    })
                    .sum();
                most = most.max(running);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            most
        }
    });
    let output = run_agent(&mut command).await;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    output.assert_code(0);
    assert_eq!(
        watch.await.unwrap(),
        1,
        "one container at a time, and one seen"
    );
    for report in reports(&workspace, &specs) {
        assert_eq!(report["verified"], true, "{report}");
        docker_lines(&["rmi", report["image"].as_str().unwrap()]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_engine_without_a_base_image_is_left_out() {
    let second = second_engine().await;
    let python = agent_testkit::PYTHON_IMAGE;
    let other = Sandbox::connect(Some(&second)).await.expect("answers");
    assert!(
        !other.image_present(python).await.expect("inspect"),
        "the second engine only ever gets {BUSYBOX_IMAGE}"
    );
    let server = ScriptedServer::start(vec![busybox_reply("echo hello")]).await;
    let workspace = busybox_workspace(&server, &format!("[\"{MAIN_ENGINE}\", \"{second}\"]"));
    // The model may build FROM either image, so both must be on every engine used.
    let config = workspace.path().join("agent.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[docker]\n",
        &format!("[docker]\nallowed_base_images = [\"{BUSYBOX_IMAGE}\", \"{python}\"]\n"),
    );
    std::fs::write(&config, text).unwrap();
    let specs = hello_specs(&workspace, "lacking", 1);
    let output = agent(&workspace, &["run", &specs[0]]).await;
    output.assert_code(0);
    output.assert_stderr_has(&format!(
        "agent: engine `{second}` lacks a base image; it is left out: base image `{python}`"
    ));
    let report = workspace.report("lacking-1");
    assert_eq!(report["history"][0]["engine"], MAIN_ENGINE);
    docker_lines(&["rmi", report["image"].as_str().unwrap()]);
}

/// The cache tags on the engine at `url` under `agent-cache/<spec>`.
fn cache_tags(url: &str, spec: &str) -> Vec<String> {
    docker_lines(&["-H", url, "images", "--format", "{{.Repository}}:{{.Tag}}"])
        .into_iter()
        .filter(|reference| reference.starts_with(&format!("agent-cache/{spec}:")))
        .collect()
}

/// A trim and `gc --cache` act on a whole engine's cache, so this test has an engine
/// of its own (engine 6) and disturbs no other test's cache.
#[tokio::test(flavor = "multi_thread")]
async fn the_build_cache_is_trimmed_to_its_cap_once_a_run_ends_and_gc_cache_empties_it() {
    let url = second_engine_script(&["start", "6"]);
    with_base_image(&url).await;
    // Each build makes a 3 MB layer of its own, over a cap of 1 MB.
    let server = ScriptedServer::start_with(|_, request| {
        let text = request.all_text();
        let marker = if text.contains("(uncapped)") { "uncapped" } else { "capped" };
        let dockerfile = format!(
            "FROM {BUSYBOX_IMAGE}\nRUN head -c 3000000 /dev/urandom > /blob-{marker}\nCMD [\"echo\", \"hello\"]\n"
        );
        ScriptedReply::Content(bundle(Some(&dockerfile), &[]))
    })
    .await;
    let workspace = busybox_workspace(&server, &format!("[\"{url}\"]"));
    let config = workspace.path().join("agent.toml");
    let capped = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[docker]\n", "[docker]\ncache_max_mb = 1\n");
    std::fs::write(&config, &capped).unwrap();
    let spec = |name: &str| {
        let text = HELLO_SPEC.replace("prints hello.", &format!("prints hello ({name})."));
        workspace.spec(name, &text).to_str().unwrap().to_string()
    };
    let (first, second) = (spec("capped"), spec("uncapped"));

    agent(&workspace, &["run", "--no-lock", &first])
        .await
        .assert_code(0);
    let report = workspace.report("capped");
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(
        cache_tags(&url, "capped"),
        Vec::<String>::new(),
        "trimmed to the cap"
    );
    // The verified image is not part of the cache: it stays, and runs.
    let tag = report["image"].as_str().unwrap();
    assert_eq!(
        docker_lines(&["-H", &url, "run", "--rm", "--network", "none", tag]),
        ["hello"]
    );

    // With no cap the cache keeps the build's result, until `gc --cache`.
    std::fs::write(
        &config,
        capped.replace("cache_max_mb = 1", "cache_max_mb = 0"),
    )
    .unwrap();
    agent(&workspace, &["run", "--no-lock", &second])
        .await
        .assert_code(0);
    assert_eq!(
        cache_tags(&url, "uncapped").len(),
        1,
        "the build's result is kept"
    );
    agent(&workspace, &["gc", "--cache", "--engine", &url])
        .await
        .assert_code(0);
    assert_eq!(
        cache_tags(&url, "uncapped"),
        Vec::<String>::new(),
        "gc --cache empties it"
    );
    for name in ["capped", "uncapped"] {
        let tag = workspace.report(name)["image"]
            .as_str()
            .unwrap()
            .to_string();
        docker_lines(&["-H", &url, "image", "inspect", "--format", "{{.Id}}", &tag]);
        docker_lines(&["-H", &url, "rmi", &tag]);
    }
    second_engine_script(&["stop", "6"]);
}
