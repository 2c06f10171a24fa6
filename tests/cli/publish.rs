//! Publishing verified images end to end: a real registry (Debian's `docker-registry`,
//! the distribution registry) started by each test on a free 127.0.0.1 port, open or
//! behind htpasswd; pushes pulled back and run, a refused password that leaks nowhere,
//! and an image file that `docker load` reads.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use agent_testkit::{ScriptedReply, ScriptedServer};

use crate::support::*;

mod reuse;

/// A real registry, killed when dropped.
pub(crate) struct Registry {
    child: std::process::Child,
    port: u16,
    credentials: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts `docker-registry serve` on a free port; with `credentials`, behind
    /// htpasswd (bcrypt) basic auth.
    pub(crate) async fn start(credentials: Option<(&str, &str)>) -> Registry {
        let dir = tempfile::tempdir().expect("a temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: test-secret\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = credentials {
            let output = std::process::Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("`htpasswd` runs: install apache2-utils (scripts/registry-setup)");
            assert!(output.status.success(), "htpasswd -Bbn");
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, &output.stdout).expect("htpasswd written");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("config written");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
        let child = std::process::Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("`docker-registry` runs: install it with scripts/registry-setup");
        let mut registry = Registry {
            child,
            port,
            credentials: credentials.map(|(user, password)| (user.into(), password.into())),
            _dir: dir,
        };
        registry.wait_until_it_answers().await;
        registry
    }

    async fn wait_until_it_answers(&mut self) {
        let url = format!("http://{}/v2/", self.address());
        let started = Instant::now();
        loop {
            if reqwest::get(&url).await.is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(self._dir.path().join("registry.log"));
                panic!("the registry exited with {status}: {log:?}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the registry does not answer on {url}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The repository the tests push to: `team` on this registry.
    pub(crate) fn repository(&self) -> String {
        format!("{}/team", self.address())
    }

    /// A Docker CLI config folder whose `auths` give this registry `entry`.
    pub(crate) fn docker_config(&self, entry: &str) -> tempfile::TempDir {
        docker_config(&format!(
            r#"{{"auths": {{"{}": {entry}}}}}"#,
            self.address()
        ))
    }

    /// The digest the registry's HTTP API gives for `name:tag`'s manifest.
    pub(crate) async fn manifest_digest(&self, name: &str, tag: &str) -> String {
        let url = format!("http://{}/v2/{name}/manifests/{tag}", self.address());
        let mut request = reqwest::Client::new().head(&url).header(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json",
        );
        if let Some((user, password)) = &self.credentials {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().await.expect("the registry answers");
        assert!(
            response.status().is_success(),
            "{url}: {}",
            response.status()
        );
        response
            .headers()
            .get("Docker-Content-Digest")
            .expect("a Docker-Content-Digest header")
            .to_str()
            .expect("ASCII")
            .to_owned()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Docker CLI config folder holding `config` as `config.json`.
pub(crate) fn docker_config(config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::write(dir.path().join("config.json"), config).expect("config.json written");
    dir
}

/// A scripted model that answers with a program printing `word`.
pub(crate) async fn model_printing(word: &str) -> ScriptedServer {
    let reply = bundle(
        Some(&python_dockerfile()),
        &[("main.py", &format!("print('{word}')\n"))],
    );
    ScriptedServer::start(vec![ScriptedReply::Content(reply)]).await
}

pub(crate) fn spec_printing(word: &str) -> String {
    format!(
        "prompt = \"Write a Python program that prints {word}.\"\nconditions = \"It prints {word}.\"\n[[check]]\nstdout_equals = \"{word}\"\n"
    )
}

/// Runs `agent run <spec> <extra>` with `DOCKER_CONFIG` pointing at `config`.
pub(crate) async fn run_with(
    workspace: &Workspace,
    spec: &Path,
    config: &Path,
    extra: &[&str],
) -> Output {
    run_agent(&mut run_command_with(workspace, spec, config, extra)).await
}

/// `agent run <spec> <extra…>` with the Docker CLI config folder `config`.
pub(crate) fn run_command_with(
    workspace: &Workspace,
    spec: &Path,
    config: &Path,
    extra: &[&str],
) -> tokio::process::Command {
    let mut args = vec!["run", spec.to_str().expect("utf-8")];
    args.extend_from_slice(extra);
    let mut command = agent_command(workspace, &args);
    command.env("DOCKER_CONFIG", config);
    command
}

pub(crate) fn docker(args: &[&str]) -> std::process::Output {
    std::process::Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs")
}

pub(crate) fn docker_ok(args: &[&str]) -> String {
    let output = docker(args);
    assert!(
        output.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The run's `report.html`, written once with `report.json`, after publishing.
fn page(workspace: &Workspace, spec: &str) -> String {
    std::fs::read_to_string(workspace.run_dir(spec).join("report.html")).expect("report.html")
}

/// The 12 hex of the passed iteration's bundle digest.
pub(crate) fn short_digest(report: &serde_json::Value) -> String {
    let history = report["history"].as_array().expect("history");
    let passed = history.last().expect("an iteration");
    passed["context_digest"].as_str().expect("a digest")[..12].to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pushed_image_pulls_back_runs_and_has_the_registrys_digest() {
    require_engine();
    let registry = Registry::start(None).await;
    let server = model_printing("pushed").await;
    let workspace = Workspace::new(&server.base_url(), "", "");
    let spec = workspace.spec("pushed", &spec_printing("pushed"));
    let config = docker_config("{}");
    let repository = registry.repository();
    let output = run_with(&workspace, &spec, config.path(), &["--push", &repository]).await;
    output.assert_code(0);

    let report = workspace.report("pushed");
    let reference = format!("{repository}/pushed:{}", short_digest(&report));
    assert_eq!(report["published"]["reference"], reference.as_str());
    assert_eq!(
        report["image"].as_str().unwrap(),
        format!("agent/pushed:{}", short_digest(&report)),
        "the loop's tag and the pushed tag share the digest"
    );
    let digest = registry
        .manifest_digest("team/pushed", &short_digest(&report))
        .await;
    assert_eq!(report["published"]["digest"], digest.as_str());
    output.assert_stderr_has(&format!("pushed {reference}"));
    assert!(report.get("publish_error").is_none(), "{report}");
    let page = page(&workspace, "pushed");
    assert!(
        page.contains(&format!(
            "<dt>pushed</dt><dd><code>{reference}</code> <code>{digest}</code>"
        )),
        "report.html names where the image went"
    );
    assert!(!page.contains("publishing failed"));

    // Gone from the engine, back from the registry, and it still does what was checked.
    assert_run_cleaned_up(&report);
    docker_ok(&["rmi", &reference]);
    assert!(!docker(&["image", "inspect", &reference]).status.success());
    docker_ok(&["pull", &reference]);
    let printed = docker_ok(&["run", "--rm", "--network", "none", &reference]);
    docker_ok(&["rmi", &reference]);
    assert_eq!(printed, "pushed\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_behind_htpasswd_uses_the_docker_config_credentials_and_moving_tags() {
    require_engine();
    let registry = Registry::start(Some(("user", "right-password-5150"))).await;
    let server = model_printing("authed").await;
    let workspace = Workspace::new(&server.base_url(), "", "");
    let repository = registry.repository();
    let config_text = std::fs::read_to_string(workspace.path().join("agent.toml")).unwrap();
    std::fs::write(
        workspace.path().join("agent.toml"),
        format!("{config_text}\n[publish]\nrepository = \"{repository}\"\ntags = [\"latest\"]\n"),
    )
    .unwrap();
    let spec = workspace.spec("authed", &spec_printing("authed"));
    let auth = base64_of("user:right-password-5150");
    let config = registry.docker_config(&format!(r#"{{"auth": "{auth}"}}"#));
    let output = run_with(&workspace, &spec, config.path(), &[]).await;
    output.assert_code(0);

    let report = workspace.report("authed");
    let short = short_digest(&report);
    let reference = format!("{repository}/authed:{short}");
    assert_eq!(report["published"]["reference"], reference.as_str());
    let digest = registry.manifest_digest("team/authed", &short).await;
    assert_eq!(report["published"]["digest"], digest.as_str());
    assert_eq!(
        registry.manifest_digest("team/authed", "latest").await,
        digest,
        "the moving tag names the same manifest"
    );
    assert_run_cleaned_up(&report);
    docker_ok(&["rmi", &reference, &format!("{repository}/authed:latest")]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_password_keeps_the_spec_verified_exits_3_and_leaks_nowhere() {
    require_engine();
    let password = "wrong-password-sentinel-8086";
    let registry = Registry::start(Some(("user", "the-right-one"))).await;
    let server = model_printing("refused").await;
    let workspace = Workspace::new(&server.base_url(), "", "");
    let spec = workspace.spec("refused", &spec_printing("refused"));
    let config = registry.docker_config(&format!(
        r#"{{"username": "user", "password": "{password}"}}"#
    ));
    let repository = registry.repository();
    let mut command = run_command_with(
        &workspace,
        &spec,
        config.path(),
        &["--push", &repository, "--json"],
    );
    // Every diagnostic on: none of them may carry the credentials.
    command.env("RUST_LOG", "trace");
    let output = run_agent(&mut command).await;
    output.assert_code(3);

    let report = workspace.report("refused");
    assert_eq!(report["verified"], true);
    assert!(report.get("published").is_none(), "{report}");
    let error = report["publish_error"].as_str().expect("publish_error");
    assert!(error.contains("unauthorized"), "{error}");
    output.assert_stderr_has("hint:");
    output.assert_stderr_has(&format!("docker login {}", registry.address()));
    let summary: serde_json::Value = serde_json::from_str(&output.stdout).expect("--json");
    assert_eq!(summary["exit_code"], 3);

    assert!(
        !output.stdout.contains(password),
        "the password leaked to stdout"
    );
    assert!(
        !output.stderr.contains(password),
        "the password leaked to stderr"
    );
    assert!(
        !output
            .stderr
            .to_ascii_lowercase()
            .contains("x-registry-auth"),
        "the credentials header is never logged"
    );
    for path in files_below(workspace.path()) {
        let bytes = std::fs::read(&path).expect("readable");
        assert!(
            !String::from_utf8_lossy(&bytes).contains(password),
            "the password leaked into {}",
            path.display()
        );
    }
    let reference = format!("{repository}/refused:{}", short_digest(&report));
    assert_run_cleaned_up(&report);
    let _ = docker(&["rmi", &reference]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_saved_image_loads_with_docker_load_even_when_the_push_beside_it_finds_no_registry() {
    require_engine();
    let server = model_printing("saved").await;
    let workspace = Workspace::new(&server.base_url(), "", "");
    let spec = workspace.spec("saved", &spec_printing("saved"));
    let config = docker_config("{}");
    let nowhere = "127.0.0.1:9/team";
    let output = run_with(
        &workspace,
        &spec,
        config.path(),
        &["--save", "images", "--push", nowhere],
    )
    .await;
    output.assert_code(3);
    output.assert_stderr_has("hint: is the registry `127.0.0.1:9` running");

    let report = workspace.report("saved");
    assert_eq!(report["verified"], true);
    let error = report["publish_error"].as_str().expect("publish_error");
    assert!(error.contains("connection refused"), "{error}");
    let path = PathBuf::from(report["saved"]["path"].as_str().expect("saved.path"));
    assert_eq!(
        path,
        workspace
            .path()
            .canonicalize()
            .unwrap()
            .join("images/saved.tar")
    );
    let sha256 = docker_free_sha256(&path);
    assert_eq!(report["saved"]["sha256"], sha256.as_str());
    let page = page(&workspace, "saved");
    assert!(
        page.contains(&format!(
            "<code>{}</code> <code>sha256:{sha256}</code>",
            path.display()
        )),
        "report.html names the image file"
    );
    assert!(
        page.contains("publishing failed: ") && page.contains("connection refused"),
        "report.html says why the push failed"
    );
    assert!(!page.contains("<dt>pushed</dt>"));
    assert!(!path.with_extension("tar.partial").exists());

    let image = report["image"].as_str().expect("image").to_owned();
    assert_run_cleaned_up(&report);
    let _ = docker(&["rmi", &format!("{nowhere}/saved:{}", short_digest(&report))]);
    assert!(!docker(&["image", "inspect", &image]).status.success());
    let loaded = docker_ok(&["load", "-i", path.to_str().unwrap()]);
    assert!(loaded.contains(&image), "{loaded}");
    let printed = docker_ok(&["run", "--rm", "--network", "none", &image]);
    docker_ok(&["rmi", &image]);
    assert_eq!(printed, "saved\n");
}

/// `sha256sum` of a file, lowercase hex.
fn docker_free_sha256(path: &Path) -> String {
    let output = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum runs");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .expect("a digest")
        .to_owned()
}

pub(crate) fn base64_of(text: &str) -> String {
    let output = std::process::Command::new("base64")
        .args(["-w", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(text.as_bytes())?;
            child.wait_with_output()
        })
        .expect("base64 runs");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}
