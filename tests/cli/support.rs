//! Helpers for the end-to-end tests: a temp workspace with `agent.toml`, specs, the
//! real `agent` binary run as a child process, and looks at the real engine.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use agent_testkit::{PYTHON_IMAGE, ScriptedServer};
use serde_json::Value;

/// A spec whose one check wants `hello` on stdout.
pub const HELLO_SPEC: &str = r#"
prompt = "Write a Python program that prints hello."
conditions = "It prints exactly hello."

[[check]]
name = "greeting"
stdout_equals = "hello"
"#;

/// The key the tests hand to `agent`; it must never appear in what `agent` writes.
pub const API_KEY: &str = "sk-test-0123456789-SECRET-abcdef";

/// Fails the test loudly when no engine answers: these tests never skip themselves.
pub fn require_engine() {
    let status = std::process::Command::new("docker")
        .args(["image", "inspect", PYTHON_IMAGE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("the `docker` command runs");
    assert!(
        status.success(),
        "the Docker engine must answer and have `{PYTHON_IMAGE}`: run scripts/base-images"
    );
}

/// The line of a test workspace's `[docker]` table that gives builds the engine's
/// default network.
pub const BUILD_NETWORK_LINE: &str = "build_network = \"default\"\n";

pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    /// A workspace whose `agent.toml` points at `base_url`, with `extra` appended
    /// inside `[model]` and `limits` as the `[limits]` table body. Its builds get the
    /// engine's default network ([`BUILD_NETWORK_LINE`]): the tests of the egress
    /// allow-list (`egress.rs`) replace that line.
    pub fn new(base_url: &str, model_extra: &str, limits: &str) -> Workspace {
        let dir = tempfile::tempdir().expect("a temp dir");
        let config = format!(
            "[model]\nbase_url = \"{base_url}\"\nname = \"scripted\"\nrequest_timeout_secs = 20\nmax_retries = 3\nmax_retry_after_secs = 1\n{model_extra}\n\n[docker]\nbase_image = \"{PYTHON_IMAGE}\"\n{BUILD_NETWORK_LINE}\n[limits]\nrun_timeout_secs = 30\nmemory_mb = 256\n{limits}\n"
        );
        std::fs::write(dir.path().join("agent.toml"), config).expect("agent.toml written");
        Workspace { dir }
    }

    /// [`Workspace::new`] whose `[docker] engines` is `engine` alone; the main engine
    /// is the one `agent` finds by default, so for it nothing is added.
    pub fn on(engine: &Engine, base_url: &str, model_extra: &str, limits: &str) -> Workspace {
        let workspace = Workspace::new(base_url, model_extra, limits);
        if engine.url == Engine::main().url {
            return workspace;
        }
        let config = workspace.path().join("agent.toml");
        let text = std::fs::read_to_string(&config)
            .expect("agent.toml")
            .replace(
                "[docker]\n",
                &format!("[docker]\nengines = [\"{}\"]\n", engine.url),
            );
        std::fs::write(&config, text).expect("agent.toml written");
        workspace
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn spec(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).expect("spec written");
        path
    }

    pub fn out(&self) -> PathBuf {
        self.path().join("runs")
    }

    /// The single run directory of `spec`.
    pub fn run_dir(&self, spec: &str) -> PathBuf {
        let dirs: Vec<PathBuf> = std::fs::read_dir(self.out().join(spec))
            .expect("the spec's run folder exists")
            .map(|entry| entry.expect("entry").path())
            .collect();
        assert_eq!(dirs.len(), 1, "one run of `{spec}`: {dirs:?}");
        dirs.into_iter().next().expect("one")
    }

    pub fn report(&self, spec: &str) -> Value {
        let path = self.run_dir(spec).join("report.json");
        serde_json::from_str(&std::fs::read_to_string(&path).expect("report.json"))
            .expect("report.json is JSON")
    }

    /// Asserts the API key appears in no file below the output folder.
    pub fn assert_key_nowhere(&self) {
        for path in files_below(&self.out()) {
            let bytes = std::fs::read(&path).expect("readable");
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains(API_KEY),
                "the API key leaked into {}",
                path.display()
            );
        }
    }
}

/// Runs `spec` with `--json` and `--junit junit.xml` and asserts that the scripted
/// model's expectations held and that every spec verified (exit 0).
pub async fn run_to_verified(
    workspace: &Workspace,
    server: &ScriptedServer,
    spec: &Path,
) -> Output {
    let output = agent(
        workspace,
        &[
            "run",
            spec.to_str().unwrap(),
            "--json",
            "--junit",
            "junit.xml",
        ],
    )
    .await;
    assert_eq!(
        server.panics(),
        Vec::<String>::new(),
        "the script's expectations"
    );
    output.assert_code(0);
    output
}

/// The checks of iteration `index` (from 0) in `report`: (group, name, passed).
pub fn checks_of(report: &Value, index: usize) -> Vec<(String, String, bool)> {
    report["history"][index]["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|check| {
            (
                check["group"].as_str().expect("group").to_owned(),
                check["name"].as_str().expect("name").to_owned(),
                check["passed"].as_bool().expect("passed"),
            )
        })
        .collect()
}

pub fn files_below(root: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|entry| !entry.file_type().is_dir())
        .map(walkdir::DirEntry::into_path)
        .collect()
}

pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn assert_code(&self, expected: i32) {
        assert_eq!(
            self.code,
            Some(expected),
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
    }

    /// Fails, showing the whole of stderr, unless stderr contains `text`.
    #[track_caller]
    pub fn assert_stderr_has(&self, text: &str) {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}\n--- stderr\n{}",
            self.stderr
        );
    }
}

/// `agent <args>` in the workspace, with none of the variables `agent` reads taken
/// from the machine the tests run on (a CI job's `DOCKER_HOST`, `DOCKER_CONFIG`,
/// `GITHUB_STEP_SUMMARY`… never leak in): `HOME` is a folder of the workspace, `PATH`
/// is kept for the helpers `agent` starts, the key is [`API_KEY`]. A test that needs
/// another variable sets it on the command.
pub fn agent_command(workspace: &Workspace, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_agent"));
    for name in agent_cli::env::ALL {
        command.env_remove(name);
    }
    let home = workspace.path().join("home");
    std::fs::create_dir_all(&home).expect("the workspace's home folder");
    command
        .args(args)
        .current_dir(workspace.path())
        .env("HOME", home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("OPENAI_API_KEY", API_KEY)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Runs `agent` to its end (bounded), and checks the key is not in its output.
pub async fn run_agent(command: &mut tokio::process::Command) -> Output {
    let child = command.spawn().expect("agent starts");
    let output = tokio::time::timeout(Duration::from_secs(600), child.wait_with_output())
        .await
        .expect("agent ends within 10 minutes")
        .expect("agent's output");
    let output = Output {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(
        !output.stdout.contains(API_KEY),
        "the API key leaked to stdout"
    );
    assert!(
        !output.stderr.contains(API_KEY),
        "the API key leaked to stderr"
    );
    output
}

pub async fn agent(workspace: &Workspace, args: &[&str]) -> Output {
    run_agent(&mut agent_command(workspace, args)).await
}

/// The program a set-up script installed, as the variable `variable` names it
/// (`scripts/test` sets it from `setup`'s output); `what` says what it must be.
pub fn installed(variable: &str, what: &str, setup: &str) -> PathBuf {
    let path = std::env::var_os(variable)
        .unwrap_or_else(|| panic!("{variable} must name {what}: `export {variable}=$({setup})`"));
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "{variable} `{}` is not a file",
        path.display()
    );
    path
}

/// `field` of each check in the verdict `verify --json` prints, in order ("" where a
/// check has none).
pub fn check_fields<'a>(verdict: &'a Value, field: &str) -> Vec<&'a str> {
    verdict["result"]["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|check| check[field].as_str().unwrap_or_default())
        .collect()
}

/// `agent verify --image <image> <spec>`, then `flags`.
pub async fn verify_image(
    workspace: &Workspace,
    image: &str,
    spec: &Path,
    flags: &[&str],
) -> Output {
    let mut args = vec!["verify", "--image", image, spec.to_str().expect("utf-8")];
    args.extend_from_slice(flags);
    agent(workspace, &args).await
}

/// Runs `agent run` on one spec against `server`, in a fresh workspace whose
/// `agent.toml` gets `model_extra` and `limits` (see [`Workspace::new`]), and asserts
/// that the script's own expectations on the requests held.
pub async fn run_scripted(
    server: &ScriptedServer,
    model_extra: &str,
    limits: &str,
    name: &str,
    spec: &str,
) -> (Workspace, Output) {
    let workspace = Workspace::new(&server.base_url(), model_extra, limits);
    run_scripted_in(workspace, server, name, spec).await
}

/// [`run_scripted`] with `engine` as the workspace's only engine.
pub async fn run_scripted_on(
    engine: &Engine,
    server: &ScriptedServer,
    limits: &str,
    name: &str,
    spec: &str,
) -> (Workspace, Output) {
    let workspace = Workspace::on(engine, &server.base_url(), "", limits);
    run_scripted_in(workspace, server, name, spec).await
}

async fn run_scripted_in(
    workspace: Workspace,
    server: &ScriptedServer,
    name: &str,
    spec: &str,
) -> (Workspace, Output) {
    let path = workspace.spec(name, spec);
    let output = agent(&workspace, &["run", path.to_str().expect("utf-8 path")]).await;
    assert_eq!(
        server.panics(),
        Vec::<String>::new(),
        "the script's expectations"
    );
    (workspace, output)
}

/// An engine the tests look at through the Docker CLI (`docker -H <url>`): the main
/// one, or another such as Podman's service. The free functions below look at the
/// main engine.
#[derive(Debug, Clone)]
pub struct Engine {
    pub url: String,
}

impl Engine {
    pub fn main() -> Engine {
        Engine {
            url: "unix:///var/run/docker.sock".to_owned(),
        }
    }

    /// Podman's Docker-compatible service that `scripts/test` starts
    /// (`scripts/podman-engine`), with the base images in it. Fails loudly without it.
    pub fn podman() -> Engine {
        let url = std::env::var("AGENT_TEST_PODMAN").unwrap_or_default();
        assert!(
            !url.is_empty(),
            "AGENT_TEST_PODMAN is not set: run the tests through scripts/test, or \
             `export AGENT_TEST_PODMAN=$(scripts/podman-engine start)`"
        );
        let engine = Engine { url };
        assert!(
            !engine
                .docker_lines(&["images", "-q", PYTHON_IMAGE])
                .is_empty(),
            "Podman at {} lacks `{PYTHON_IMAGE}`: run scripts/podman-engine start",
            engine.url
        );
        engine
    }

    /// Ids of containers carrying `label` (`key=value`).
    pub fn containers_with(&self, label: &str) -> Vec<String> {
        self.docker_lines(&["ps", "-aq", "--filter", &format!("label={label}")])
    }

    /// Ids of images carrying `label`, with their tags.
    pub fn images_with(&self, label: &str) -> Vec<String> {
        self.docker_lines(&[
            "images",
            "-a",
            "--filter",
            &format!("label={label}"),
            "--format",
            "{{.ID}} {{.Repository}}:{{.Tag}}",
        ])
    }

    pub fn docker_lines(&self, args: &[&str]) -> Vec<String> {
        let mut with_host = vec!["-H", self.url.as_str()];
        with_host.extend_from_slice(args);
        docker_lines(&with_host)
    }

    /// Asserts that the run left nothing on the engine but, at most, its verified
    /// image (with the layers it is made of); removes that image.
    pub fn assert_run_cleaned_up(&self, report: &Value) {
        let run_id = report["run_id"].as_str().expect("run_id");
        let label = format!("dev.agent.run={run_id}");
        assert_eq!(
            self.containers_with(&label),
            Vec::<String>::new(),
            "containers left by {run_id}"
        );
        let images = self.images_with(&label);
        let Some(tag) = report["image"].as_str() else {
            assert_eq!(images, Vec::<String>::new(), "images left by {run_id}");
            return;
        };
        assert!(
            images.iter().any(|line| line.ends_with(tag)),
            "the verified image {tag} ({}) of {run_id} carries the run's label: {images:?}",
            report["image_id"]
        );
        let chain = self.image_chain(tag);
        let stray: Vec<&String> = images
            .iter()
            .filter(|line| {
                let id = line.split(' ').next().unwrap_or_default();
                !chain
                    .iter()
                    .any(|member| member.trim_start_matches("sha256:").starts_with(id))
            })
            .collect();
        assert_eq!(
            stray,
            Vec::<&String>::new(),
            "images left by {run_id} besides {tag}"
        );
        let _ = std::process::Command::new("docker")
            .args(["-H", &self.url, "rmi", tag])
            .output();
    }

    /// The image and its parents, full ids.
    fn image_chain(&self, image: &str) -> Vec<String> {
        let mut chain = Vec::new();
        let mut next = image.to_string();
        while !next.is_empty() && chain.len() < 200 {
            let lines =
                self.docker_lines(&["image", "inspect", "--format", "{{.Id}} {{.Parent}}", &next]);
            let line = lines.first().cloned().unwrap_or_default();
            let mut parts = line.split(' ');
            chain.push(parts.next().unwrap_or_default().to_string());
            next = parts.next().unwrap_or_default().to_string();
        }
        chain
    }
}

/// Ids of containers carrying `label` (`key=value`) on the main engine.
pub fn containers_with(label: &str) -> Vec<String> {
    Engine::main().containers_with(label)
}

/// Ids of images carrying `label`, with their tags, on the main engine.
pub fn images_with(label: &str) -> Vec<String> {
    Engine::main().images_with(label)
}

/// The lines `docker <args>` prints (the main engine unless `args` name another with `-H`).
pub fn docker_lines(args: &[&str]) -> Vec<String> {
    let output = std::process::Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs");
    assert!(
        output.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .filter(|line| !line.is_empty())
        .collect()
}

/// [`Engine::assert_run_cleaned_up`] on the main engine.
pub fn assert_run_cleaned_up(report: &Value) {
    Engine::main().assert_run_cleaned_up(report);
}

/// A `code_bundle` reply.
pub fn bundle(dockerfile: Option<&str>, files: &[(&str, &str)]) -> String {
    serde_json::json!({
        "summary": "a version",
        "dockerfile": dockerfile,
        "files": files.iter().map(|(name, content)| serde_json::json!({"filename": name, "content": content})).collect::<Vec<_>>(),
        "delete": [],
    })
    .to_string()
}

/// A Dockerfile that runs `main.py` on the test base image.
pub fn python_dockerfile() -> String {
    format!("FROM {PYTHON_IMAGE}\nWORKDIR /app\nCOPY main.py .\nCMD [\"python3\", \"main.py\"]\n")
}

pub fn verdict(pass: bool, reason: &str) -> String {
    serde_json::json!({"pass": pass, "reason": reason}).to_string()
}
