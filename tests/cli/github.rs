//! CI-native use: the action's own step scripts (`scripts/action/`) run as the runner
//! runs them — the install against a release served on 127.0.0.1, the run step with a
//! GitHub-like environment against the real engine — the CI files through actionlint,
//! zizmor and check-jsonschema, and the root `Dockerfile` built and run on the engine.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use agent_testkit::{PYTHON_IMAGE, ScriptedServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root")
}

/// `program args` in `dir` with none of the machine's variables `agent` reads, the
/// way [`agent_command`] runs `agent`.
fn clean_command(dir: &Path, program: &str, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(program);
    for name in agent_cli::env::ALL {
        command.env_remove(name);
    }
    for name in ["GITHUB_PATH", "RUNNER_TEMP", "CARGO_HOME", "RUSTUP_HOME"] {
        command.env_remove(name);
    }
    let home = dir.join("home");
    std::fs::create_dir_all(&home).expect("a home folder");
    command
        .args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// A static file server on 127.0.0.1 for a release folder: `GET /<path>` answers the
/// file below `root`, else 404; it counts the requests.
struct ReleaseServer {
    url: String,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl ReleaseServer {
    async fn start(root: PathBuf) -> ReleaseServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let root = root.clone();
                tokio::spawn(async move {
                    let mut head = vec![0u8; 8192];
                    let read = stream.read(&mut head).await.unwrap_or(0);
                    let head = String::from_utf8_lossy(&head[..read]).into_owned();
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let file = root.join(path.trim_start_matches('/'));
                    let safe = !path.contains("..");
                    let response = match std::fs::read(&file) {
                        Ok(body) if safe && file.is_file() => {
                            let mut response = format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                body.len()
                            )
                            .into_bytes();
                            response.extend(body);
                            response
                        }
                        _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_vec(),
                    };
                    let _ = stream.write_all(&response).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        ReleaseServer {
            url,
            requests,
            task,
        }
    }
}

impl Drop for ReleaseServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn sha256_of(path: &Path) -> String {
    let output = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum runs");
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// `<root>/download/<version>/agent-<target>.tar.gz` of the just-built binary, and
/// its `.sha256` holding `checksum` (the tarball's own when `None`).
fn publish_release(root: &Path, version: &str, checksum: Option<&str>) {
    let folder = root.join("download").join(version);
    std::fs::create_dir_all(&folder).unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_agent"));
    let asset = "agent-x86_64-unknown-linux-gnu.tar.gz";
    let status = std::process::Command::new("tar")
        .args(["--use-compress-program", "gzip -1", "-cf"])
        .arg(folder.join(asset))
        .arg("-C")
        .arg(binary.parent().unwrap())
        .arg("agent")
        .status()
        .expect("tar runs");
    assert!(status.success());
    let sum = checksum.map_or_else(|| sha256_of(&folder.join(asset)), str::to_owned);
    std::fs::write(
        folder.join(format!("{asset}.sha256")),
        format!("{sum}  {asset}\n"),
    )
    .unwrap();
}

async fn install(dir: &Path, url: &str, version: &str) -> Output {
    let script = root().join("scripts/action/install.sh");
    let mut command = clean_command(dir, "bash", &[script.to_str().unwrap()]);
    install_env(&mut command, dir, version).env("AGENT_DOWNLOAD_URL", url);
    run_agent(&mut command).await
}

/// The variables the action gives the install step, but the download URL.
fn install_env<'a>(
    command: &'a mut tokio::process::Command,
    dir: &Path,
    version: &str,
) -> &'a mut tokio::process::Command {
    command
        .env("AGENT_VERSION", version)
        .env("AGENT_INSTALL_DIR", dir.join("bin"))
        .env("AGENT_COMPILE_FALLBACK", "false")
        .env("GITHUB_PATH", dir.join("github_path"))
        .env("GITHUB_OUTPUT", dir.join("github_output"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_action_installs_a_checksum_verified_release_and_refuses_a_wrong_checksum() {
    assert_eq!(
        std::env::consts::ARCH,
        "x86_64",
        "the release of this test is built for x86_64 Linux"
    );
    let releases = tempfile::tempdir().unwrap();
    publish_release(releases.path(), "v9.9.9", None);
    publish_release(releases.path(), "v9.9.8", Some(&"0".repeat(64)));
    let server = ReleaseServer::start(releases.path().to_path_buf()).await;

    let runner = tempfile::tempdir().unwrap();
    let output = install(runner.path(), &server.url, "v9.9.9").await;
    output.assert_code(0);
    let installed = runner.path().join("bin/agent");
    assert_eq!(
        sha256_of(&installed),
        sha256_of(Path::new(env!("CARGO_BIN_EXE_agent"))),
        "the released binary is installed as it was built"
    );
    let path_file = std::fs::read_to_string(runner.path().join("github_path")).unwrap();
    assert_eq!(
        path_file.trim(),
        runner.path().join("bin").to_str().unwrap()
    );
    let outputs = std::fs::read_to_string(runner.path().join("github_output")).unwrap();
    assert!(
        outputs.contains(&format!("path={}", installed.display())),
        "{outputs}"
    );
    assert_eq!(
        server.requests.load(Ordering::SeqCst),
        2,
        "tarball and checksum"
    );

    // What actions/cache restored is used without a download.
    let output = install(runner.path(), &server.url, "v9.9.9").await;
    output.assert_code(0);
    assert!(
        output.stdout.contains("using the cached binary"),
        "{}",
        output.stdout
    );
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);

    let refused = tempfile::tempdir().unwrap();
    let output = install(refused.path(), &server.url, "v9.9.8").await;
    output.assert_code(1);
    output.assert_stderr_has("::error title=agent install::checksum of agent-x86_64-unknown-linux-gnu.tar.gz does not match");
    assert!(!refused.path().join("bin").exists(), "nothing is installed");
    assert!(!refused.path().join("github_path").exists());

    // No download URL: the releases of the repository the runner checked the action
    // out from (`<runner>/_actions/<owner>/<repo>/<ref>`), on GITHUB_SERVER_URL.
    publish_release(&releases.path().join("acme/agent/releases"), "v9.9.7", None);
    let checkout = tempfile::tempdir().unwrap();
    let action = checkout.path().join("_actions/acme/agent/v9.9.7");
    std::fs::create_dir_all(action.join("scripts/action")).unwrap();
    let script = action.join("scripts/action/install.sh");
    std::fs::copy(root().join("scripts/action/install.sh"), &script).unwrap();
    let mut command = clean_command(checkout.path(), "bash", &[script.to_str().unwrap()]);
    install_env(&mut command, checkout.path(), "v9.9.7")
        .env("AGENT_DOWNLOAD_URL", "")
        .env("AGENT_ACTION_REPOSITORY", "")
        .env("GITHUB_SERVER_URL", &server.url);
    run_agent(&mut command).await.assert_code(0);
    assert!(checkout.path().join("bin/agent").is_file());

    let missing = tempfile::tempdir().unwrap();
    let output = install(missing.path(), &server.url, "v0.0.404").await;
    output.assert_code(1);
    output.assert_stderr_has("compiling is off");
    assert!(!missing.path().join("bin").exists());
}

/// The action's run step as the runner runs it in `dir`: the inputs as `INPUT_*`
/// variables, GitHub's files below `dir`.
pub(crate) fn run_step(dir: &Path, specs: &str, push: &str) -> tokio::process::Command {
    let script = root().join("scripts/action/run.sh");
    let mut command = clean_command(dir, "bash", &[script.to_str().unwrap()]);
    command
        .env("INPUT_SPECS", specs)
        .env("INPUT_LOCKED", "false")
        .env("INPUT_REFRESH_BASE", "false")
        .env("INPUT_PUSH", push)
        .env("INPUT_SIGN", "false")
        .env("INPUT_SHARD", "1/1")
        .env("INPUT_CONFIG", "")
        .env("INPUT_JUNIT", "runs/junit.xml")
        .env("INPUT_OUT", "runs")
        .env("AGENT_BIN", env!("CARGO_BIN_EXE_agent"))
        .env("OPENAI_API_KEY", API_KEY)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_WORKSPACE", dir)
        .env("GITHUB_OUTPUT", dir.join("github_output"))
        .env("GITHUB_STEP_SUMMARY", dir.join("step_summary.md"));
    command
}

#[tokio::test(flavor = "multi_thread")]
async fn the_action_run_step_names_each_pushed_image_by_its_registry_digest() {
    require_engine();
    let registry = crate::publish::Registry::start(None).await;
    let server = crate::publish::model_printing("pushed-action").await;
    let workspace = Workspace::new(&server.base_url(), "", "");
    let dir = workspace.path();
    std::fs::create_dir_all(dir.join("specs/nested")).unwrap();
    std::fs::write(
        dir.join("specs/nested/pushed-action.toml"),
        crate::publish::spec_printing("pushed-action"),
    )
    .unwrap();
    let repository = registry.repository();
    let output = run_agent(&mut run_step(dir, "specs/**/*.toml", &repository)).await;
    output.assert_code(0);
    assert!(!output.stderr.contains("::error"), "{}", output.stderr);

    let report = workspace.report("pushed-action");
    let tag = crate::publish::short_digest(&report);
    let digest = registry.manifest_digest("team/pushed-action", &tag).await;
    let outputs =
        agent_testkit::github_outputs(&std::fs::read_to_string(dir.join("github_output")).unwrap());
    assert_eq!(outputs["verified"], "true");
    let images: serde_json::Value = serde_json::from_str(&outputs["images"]).unwrap();
    assert_eq!(
        images,
        serde_json::json!({"pushed-action": format!("{repository}/pushed-action@{digest}")})
    );
    assert_run_cleaned_up(&report);
    let pushed = format!("{repository}/pushed-action:{tag}");
    let _ = std::process::Command::new("docker")
        .args(["rmi", &pushed])
        .output();
}

/// The spec of the run step's test: its second `[[check]]` table, on line 8, fails.
const FAILING_SPEC: &str = "prompt = \"Write a Python program that prints hello.\"
conditions = \"It prints exactly hello.\"

[[check]]
exit_code = 0

# The program prints bye, so this check fails.
[[check]]
name = \"greeting\"
stdout_equals = \"hello\"

[limits]
max_iterations = 1
";

#[tokio::test(flavor = "multi_thread")]
async fn the_action_run_step_sets_outputs_and_annotates_the_failing_check_table() {
    require_engine();
    let server = crate::publish::model_printing("bye").await;
    let workspace = Workspace::new(&server.base_url(), "", "");
    let dir = workspace.path();
    std::fs::create_dir_all(dir.join("specs")).unwrap();
    std::fs::write(dir.join("specs/greet-action.toml"), FAILING_SPEC).unwrap();

    let run_step = |specs: &str| run_step(dir, specs, "");

    let output = run_agent(&mut run_step("specs/nothing-*.toml")).await;
    output.assert_code(2);
    output.assert_stderr_has("no spec file matches `specs/nothing-*.toml`");

    let output = run_agent(&mut run_step("specs/*.toml")).await;
    output.assert_code(1);
    let annotations: Vec<&str> = output
        .stderr
        .lines()
        .filter(|line| line.starts_with("::error "))
        .collect();
    assert_eq!(annotations.len(), 1, "{}", output.stderr);
    assert!(
        annotations[0].starts_with(
            "::error file=specs/greet-action.toml,line=8,title=greet-action%3A greeting::"
        ),
        "{}",
        annotations[0]
    );
    assert!(
        annotations[0].contains("bye"),
        "the actual output: {}",
        annotations[0]
    );

    let outputs =
        agent_testkit::github_outputs(&std::fs::read_to_string(dir.join("github_output")).unwrap());
    assert_eq!(outputs["verified"], "false");
    assert_eq!(outputs["images"], "{}", "nothing was pushed");
    assert_eq!(outputs["attestations"], "");
    let report = PathBuf::from(&outputs["report"]);
    assert_eq!(report, dir.join("runs/report.html"));
    let page = std::fs::read_to_string(&report).unwrap();
    assert!(page.contains("greet-action"), "the page names the spec");

    let summary = std::fs::read_to_string(dir.join("step_summary.md")).unwrap();
    assert!(
        summary.contains("### agent: 0 of 1 specs verified"),
        "{summary}"
    );
    assert!(
        summary.contains("- **greet-action** `run/greeting`"),
        "{summary}"
    );
    assert!(dir.join("runs/junit.xml").is_file());
    assert_run_cleaned_up(&workspace.report("greet-action"));
}

#[tokio::test(flavor = "multi_thread")]
async fn gitlab_gets_the_outputs_as_a_dotenv_file_in_out() {
    require_engine();
    let server = crate::publish::model_printing("hello").await;
    let workspace = Workspace::new(&server.base_url(), "", "");
    let spec = workspace.spec("hello-gitlab", HELLO_SPEC);
    let mut command = agent_command(&workspace, &["run", spec.to_str().unwrap(), "--out", "out"]);
    command.env("GITLAB_CI", "true");
    let output = run_agent(&mut command).await;
    output.assert_code(0);
    assert!(!output.stderr.contains("::error"), "{}", output.stderr);
    let dotenv = std::fs::read_to_string(workspace.path().join("out/agent.env")).unwrap();
    let report = workspace.path().join("out/report.html");
    assert_eq!(
        dotenv,
        format!(
            "AGENT_VERIFIED=true\nAGENT_IMAGES={{}}\nAGENT_REPORT={}\nAGENT_ATTESTATIONS=[]\n",
            report.display()
        )
    );
    assert!(report.is_file());
    let report_json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::fs::read_dir(workspace.path().join("out/hello-gitlab"))
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path()
                .join("report.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_run_cleaned_up(&report_json);
}

/// The folder of actionlint, zizmor and check-jsonschema: `AGENT_TEST_CI_LINT`
/// (scripts/test), else what `scripts/ci-lint-setup` installs.
fn ci_linters() -> PathBuf {
    if let Ok(bin) = std::env::var("AGENT_TEST_CI_LINT") {
        return PathBuf::from(bin);
    }
    let output = std::process::Command::new(root().join("scripts/ci-lint-setup"))
        .output()
        .expect("scripts/ci-lint-setup runs");
    assert!(
        output.status.success(),
        "scripts/ci-lint-setup: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

fn lint(bin: &Path, tool: &str, args: &[&str]) {
    let output = std::process::Command::new(bin.join(tool))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|error| panic!("{tool} runs: {error}"));
    assert!(
        output.status.success(),
        "{tool} {args:?} found problems:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_action_and_the_workflow_examples_pass_actionlint_zizmor_and_the_schemas() {
    let bin = ci_linters();
    let workflows = [
        "examples/github-actions.yml",
        "examples/release.yml",
        "examples/refresh-base.yml",
    ];
    for workflow in workflows {
        lint(&bin, "actionlint", &["-no-color", workflow]);
        lint(
            &bin,
            "check-jsonschema",
            &["--builtin-schema", "vendor.github-workflows", workflow],
        );
    }
    lint(
        &bin,
        "check-jsonschema",
        &["--builtin-schema", "vendor.github-actions", "action.yml"],
    );
    let mut zizmor = vec!["--offline", "--no-progress", "action.yml"];
    zizmor.extend(workflows);
    lint(&bin, "zizmor", &zizmor);
}

/// Removes the test's image whatever happens to the test.
struct ImageGuard(String);

impl Drop for ImageGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["image", "rm", "--force", &self.0])
            .output();
    }
}

fn docker(args: &[&str]) -> std::process::Output {
    std::process::Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_root_dockerfile_runs_doctor_and_a_replayed_fixture_against_the_socket() {
    require_engine();
    // No registry here: the image is made from the local base image and the binary
    // just built, through the Dockerfile's `prebuilt` stage.
    let context = tempfile::tempdir().unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_agent"), context.path().join("agent")).unwrap();
    let tag = format!("agent-test/agent-image:{}", std::process::id());
    let _guard = ImageGuard(tag.clone());
    let dockerfile = root().join("Dockerfile");
    let build = docker(&[
        "build",
        "--quiet",
        "--file",
        dockerfile.to_str().unwrap(),
        "--target",
        "prebuilt",
        "--build-arg",
        &format!("RUNTIME_IMAGE={PYTHON_IMAGE}"),
        "--build-arg",
        "INSTALL_CA_CERTIFICATES=false",
        "--build-arg",
        "AGENT_BINARY=agent",
        "--tag",
        &tag,
        context.path().to_str().unwrap(),
    ]);
    assert!(
        build.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&build.stderr)
    );
    let user = docker(&["image", "inspect", "--format", "{{.Config.User}}", &tag]);
    assert_eq!(String::from_utf8_lossy(&user.stdout).trim(), "10001:10001");

    let server = ScriptedServer::start(vec![]).await;
    let workspace = Workspace::new(&server.base_url(), "", "");
    std::fs::copy(
        root().join("agent.toml"),
        workspace.path().join("repo-agent.toml"),
    )
    .unwrap();
    // The image's user writes its run directories here.
    std::fs::set_permissions(
        workspace.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let socket = "/var/run/docker.sock";
    let socket_group = std::os::unix::fs::MetadataExt::gid(&std::fs::metadata(socket).unwrap());
    let run_in_image = |args: &[&str]| {
        let mut command = vec![
            "run".to_owned(),
            "--rm".to_owned(),
            // The scripted model listens on the host's 127.0.0.1.
            "--network".to_owned(),
            "host".to_owned(),
            "--group-add".to_owned(),
            socket_group.to_string(),
            "--volume".to_owned(),
            format!("{socket}:{socket}"),
            "--volume".to_owned(),
            format!("{}:/work", workspace.path().display()),
            "--volume".to_owned(),
            format!("{}:/fixtures:ro", root().join("fixtures").display()),
            "--env".to_owned(),
            format!("OPENAI_API_KEY={API_KEY}"),
            tag.clone(),
        ];
        command.extend(args.iter().map(|arg| (*arg).to_owned()));
        let words: Vec<&str> = command.iter().map(String::as_str).collect();
        docker(&words)
    };

    let doctor = run_in_image(&["doctor"]);
    let stdout = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        doctor.status.success(),
        "agent doctor in the image: {stdout}\n{}",
        String::from_utf8_lossy(&doctor.stderr)
    );
    assert!(stdout.contains("ok    engine"), "{stdout}");
    assert!(stdout.contains("ok    base image"), "{stdout}");

    let replay = run_in_image(&[
        "run",
        "--config",
        "/work/repo-agent.toml",
        "--no-lock",
        "--replay",
        "/fixtures/fizzbuzz/transcript.jsonl",
        "--out",
        "/work/runs",
        "/fixtures/fizzbuzz/spec.toml",
    ]);
    assert!(
        replay.status.success(),
        "the replayed fixture in the image: {}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let report = workspace.report("fizzbuzz");
    assert_eq!(report["verified"], true);
    assert_run_cleaned_up(&report);
}

#[test]
fn the_action_runs_the_tested_scripts_with_every_input_through_the_environment() {
    use yaml_rust2::Yaml;
    let text = std::fs::read_to_string(root().join("action.yml")).unwrap();
    let action = &yaml_rust2::YamlLoader::load_from_str(&text).unwrap()[0];
    let inputs: Vec<String> = action["inputs"]
        .as_hash()
        .unwrap()
        .keys()
        .map(|key| key.as_str().unwrap().to_owned())
        .collect();
    let steps = action["runs"]["steps"].as_vec().unwrap();
    let runs: Vec<&str> = steps
        .iter()
        .filter_map(|step| step["run"].as_str())
        .collect();
    assert_eq!(
        runs,
        [
            "\"$AGENT_SOURCE_DIR/scripts/action/install.sh\"",
            "\"$ACTION_PATH/scripts/action/run.sh\""
        ],
        "the scripts the tests run, and no expression inside a script"
    );
    let mut passed: Vec<String> = Vec::new();
    for step in steps {
        if let Yaml::Hash(env) = &step["env"] {
            for value in env.values() {
                let value = value.as_str().unwrap();
                if let Some(input) = value
                    .strip_prefix("${{ inputs.")
                    .and_then(|rest| rest.strip_suffix(" }}"))
                {
                    passed.push(input.to_owned());
                }
            }
        }
    }
    passed.sort();
    let mut expected = inputs.clone();
    expected.sort();
    assert_eq!(passed, expected, "every input reaches a script, each once");
    let script = std::fs::read_to_string(root().join("scripts/action/run.sh")).unwrap();
    for input in [
        "specs",
        "locked",
        "refresh-base",
        "push",
        "sign",
        "shard",
        "config",
        "junit",
        "out",
    ] {
        let variable = format!("INPUT_{}", input.to_uppercase().replace('-', "_"));
        assert!(
            text.contains(&format!("{variable}: ${{{{ inputs.{input} }}}}")),
            "{variable}"
        );
        assert!(script.contains(&variable), "run.sh reads {variable}");
    }
}
