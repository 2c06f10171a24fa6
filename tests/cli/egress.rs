//! The build egress allow-list (`[docker] build_network = "allowlist"`, the default):
//! a build's RUN steps reach a local package index the allow-list names and nothing
//! else, and every refusal is evidence in `report.json`, `build.log` and the repair
//! request. Every address here is on this machine: the engine's bridge, its host's
//! address on it, and a container on a network the test makes.

use std::path::Path;
use std::process::Stdio;

use agent_testkit::{BUSYBOX_IMAGE, PYTHON_IMAGE, ScriptedReply, ScriptedServer};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::*;

/// Ten wheels `pkg0`…`pkg9`, each with `VALUE = n`, and a PEP 503 index of them: the
/// script `scripts/bench-egress` also uses.
const MAKE_INDEX: &str = include_str!("../../scripts/egress/make-index.py");

/// The engine's default bridge's gateway: the engine's host, as builds see it (the
/// subnet's first address where the engine does not name it).
fn bridge_gateway() -> String {
    let line = docker_lines(&[
        "network",
        "inspect",
        "bridge",
        "--format",
        "{{range .IPAM.Config}}{{.Gateway}} {{.Subnet}}{{end}}",
    ])
    .remove(0);
    let (gateway, subnet) = line.trim().split_once(' ').unwrap_or(("", line.trim()));
    if !gateway.is_empty() {
        return gateway.to_owned();
    }
    let base: std::net::Ipv4Addr = subnet.split('/').next().unwrap().parse().unwrap();
    std::net::Ipv4Addr::from(u32::from(base) + 1).to_string()
}

/// `python3 -m http.server` on `address`, serving `folder`; what it logged is read
/// after the test.
struct LocalServer {
    child: tokio::process::Child,
    port: u16,
}

impl LocalServer {
    async fn serve(address: &str, folder: &Path) -> LocalServer {
        let mut child = tokio::process::Command::new("python3")
            .args([
                "-u",
                "-m",
                "http.server",
                "0",
                "--bind",
                address,
                "--directory",
            ])
            .arg(folder)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = lines
            .next_line()
            .await
            .expect("the server speaks")
            .expect("a line");
        // `Serving HTTP on 172.17.0.1 port 41234 (http://172.17.0.1:41234/) ...`
        let port = line
            .split(" port ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("a port in {line:?}"));
        LocalServer { child, port }
    }

    /// What it logged (one line per request), once it is stopped.
    async fn requests(mut self) -> String {
        self.child.start_kill().expect("the server stops");
        let output = self.child.wait_with_output().await.expect("its output");
        String::from_utf8_lossy(&output.stderr).into_owned()
    }
}

/// A container on a network of its own, which builds must not reach; removed with
/// its network when dropped.
struct Neighbour {
    name: String,
    address: String,
}

impl Neighbour {
    fn start() -> Neighbour {
        let name = format!("agent-egress-neighbour-{}", std::process::id());
        docker_lines(&["network", "create", &name]);
        docker_lines(&[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            &name,
            BUSYBOX_IMAGE,
            "sleep",
            "300",
        ]);
        let address = docker_lines(&[
            "inspect",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            &name,
        ])
        .remove(0);
        Neighbour { name, address }
    }
}

impl Drop for Neighbour {
    fn drop(&mut self) {
        for args in [
            vec!["rm", "-f", &self.name],
            vec!["network", "rm", &self.name],
        ] {
            let _ = std::process::Command::new("docker").args(args).output();
        }
    }
}

/// Replaces `from` with `to` in the workspace's `agent.toml`.
fn edit_config(workspace: &Workspace, from: &str, to: &str) {
    let config = workspace.path().join("agent.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains(from), "{from} in {text}");
    std::fs::write(&config, text.replace(from, to)).unwrap();
}

/// A workspace under the default build network, the allow-list, naming `allow`.
fn allowlist_workspace(server: &ScriptedServer, allow: &str) -> Workspace {
    let workspace = Workspace::new(&server.base_url(), "", "max_iterations = 3");
    edit_config(
        &workspace,
        BUILD_NETWORK_LINE,
        &format!("egress_image = \"{PYTHON_IMAGE}\"\nbuild_allow = [\"{allow}\"]\n"),
    );
    workspace
}

fn refused_of(report: &Value, iteration: usize) -> Vec<(String, u64, String)> {
    report["history"][iteration]["egress"]["refused"]
        .as_array()
        .map(|refused| {
            refused
                .iter()
                .map(|entry| {
                    (
                        entry["host"].as_str().unwrap_or_default().to_owned(),
                        entry["port"].as_u64().unwrap_or_default(),
                        entry["via"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn volumes_with(label: &str) -> Vec<String> {
    docker_lines(&["volume", "ls", "-q", "--filter", &format!("label={label}")])
}

const SUM_OF_PACKAGES: &str =
    "import importlib\nprint(sum(importlib.import_module('pkg%d' % n).VALUE for n in range(10)))\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_build_reaches_the_allowed_index_and_nothing_else_and_each_refusal_is_evidence() {
    require_engine();
    let gateway = bridge_gateway();
    let index_folder = tempfile::tempdir().unwrap();
    let made = std::process::Command::new("python3")
        .args(["-c", MAKE_INDEX])
        .arg(index_folder.path())
        .status()
        .unwrap();
    assert!(made.success(), "the index is made");
    let secret_folder = tempfile::tempdir().unwrap();
    std::fs::write(secret_folder.path().join("token.txt"), "secret-token\n").unwrap();
    let index = LocalServer::serve(&gateway, index_folder.path()).await;
    let secret = LocalServer::serve(&gateway, secret_folder.path()).await;
    let neighbour = Neighbour::start();
    let packages: Vec<String> = (0..10).map(|n| format!("pkg{n}")).collect();
    let steps = format!(
        "FROM {PYTHON_IMAGE}\nWORKDIR /app\n\
         RUN pip install --no-cache-dir --index-url http://{gateway}:{index}/simple/ --trusted-host {gateway} {packages}\n\
         RUN python3 -c \"import socket; socket.create_connection(('{gateway}', {secret}), 3)\" || true\n\
         RUN python3 -c \"import socket; socket.getaddrinfo('files.internal.example', 443)\" || true\n\
         RUN python3 -c \"import urllib.request; urllib.request.urlopen('http://{neighbour}:8080/', timeout=5)\" || true\n",
        index = index.port,
        secret = secret.port,
        neighbour = neighbour.address,
        packages = packages.join(" "),
    );
    let reads_the_token = format!(
        "{steps}RUN python3 -c \"import urllib.request; print(urllib.request.urlopen('http://{gateway}:{secret}/token.txt', timeout=5).read())\"\n\
         COPY main.py .\nCMD [\"python3\", \"main.py\"]\n",
        secret = secret.port,
    );
    // The repair keeps the steps (taken from the cache) and tries once more, without
    // failing: a passing iteration's refusals are recorded too.
    let without = format!(
        "{steps}RUN python3 -c \"import urllib.request; urllib.request.urlopen('http://{gateway}:{secret}/again', timeout=5)\" || true\n\
         COPY main.py .\nCMD [\"python3\", \"main.py\"]\n",
        secret = secret.port,
    );
    let server = ScriptedServer::start(vec![
        ScriptedReply::Content(bundle(
            Some(&reads_the_token),
            &[("main.py", SUM_OF_PACKAGES)],
        )),
        ScriptedReply::Content(bundle(Some(&without), &[("main.py", SUM_OF_PACKAGES)])),
    ])
    .await;
    let workspace = allowlist_workspace(&server, &format!("{gateway}:{}", index.port));
    let spec = workspace.spec(
        "packages",
        "prompt = \"p\"\nconditions = \"c\"\n[[check]]\nstdout_equals = \"45\"\n",
    );
    let output = agent(&workspace, &["run", spec.to_str().unwrap()]).await;
    output.assert_code(0);
    assert!(
        !output.stderr.contains("warning: `[docker] build_network"),
        "{}",
        output.stderr
    );
    let report = workspace.report("packages");
    assert_eq!(report["build"]["network"], "allowlist");
    assert_eq!(report["build"]["builder"], "classic");
    assert_eq!(report["history"][0]["outcome"], "build_failed");

    // Each way out refused, with its step: the host's other port through the proxy and
    // directly, a name looked up in the step, a container on another network.
    let first = refused_of(&report, 0);
    for wanted in [
        (gateway.clone(), u64::from(secret.port), "direct"),
        ("files.internal.example".to_owned(), 53, "dns"),
        (neighbour.address.clone(), 8080, "proxy"),
        (gateway.clone(), u64::from(secret.port), "proxy"),
    ] {
        assert!(
            first
                .iter()
                .any(|(host, port, via)| (host, *port, via.as_str())
                    == (&wanted.0, wanted.1, wanted.2)),
            "{wanted:?} refused in {first:?}"
        );
    }
    assert!(
        report["history"][0]["egress"]["refused"]
            .as_array()
            .unwrap()
            .iter()
            .all(|entry| entry["step"].as_u64().is_some_and(|step| step >= 3)),
        "every refusal names its RUN step: {}",
        report["history"][0]["egress"]
    );
    // The passing iteration's refusal is recorded too.
    assert_eq!(
        refused_of(&report, 1),
        [(gateway.clone(), u64::from(secret.port), "proxy".to_owned())],
        "{}",
        report["history"][1]
    );

    // The repair request names every refusal and what the build may reach.
    let repair = server.requests()[1].last_user_message();
    for wanted in [
        format!("`{gateway}:{}`", secret.port),
        "`files.internal.example`".to_owned(),
        format!("`{}:8080`", neighbour.address),
        format!("only these hosts: {gateway}:{}", index.port),
    ] {
        assert!(
            repair.contains(&wanted),
            "{wanted} in the repair request: {repair}"
        );
    }
    let build_log =
        std::fs::read_to_string(workspace.run_dir("packages").join("iterations/1/build.log"))
            .unwrap();
    assert!(
        build_log.contains(&format!(
            "[egress] refused {gateway}:{} (proxy)",
            secret.port
        )),
        "{build_log}"
    );

    let page = std::fs::read_to_string(workspace.run_dir("packages").join("report.html")).unwrap();
    assert!(
        page.contains("Refused by the build egress allow-list"),
        "the report page shows the refusals"
    );
    assert!(
        page.contains(&format!("{gateway}:{} (proxy) at step", secret.port)),
        "the report page names each refusal"
    );
    assert!(
        page.contains("allowlist (builder classic)"),
        "the report page names the build network"
    );

    // The secret was never served; the index served all ten packages.
    let secret_log = secret.requests().await;
    assert!(!secret_log.contains("token.txt"), "{secret_log}");
    let index_log = index.requests().await;
    for package in &packages {
        assert!(
            index_log.contains(&format!("/simple/{package}/")),
            "{index_log}"
        );
    }

    // The proxy stays out of the image, and the policy's parts are gone.
    let image = report["image"].as_str().unwrap();
    let history = docker_lines(&["history", "--no-trunc", "--format", "{{.CreatedBy}}", image]);
    assert!(
        !history.iter().any(|line| line.contains("3128")),
        "{history:?}"
    );
    let env = docker_lines(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Env}}",
        image,
    ]);
    assert!(!env[0].contains("PROXY"), "{env:?}");
    let label = format!("dev.agent.run={}", report["run_id"].as_str().unwrap());
    assert_eq!(volumes_with(&label), Vec::<String>::new());
    assert_run_cleaned_up(&report);
}

/// A build step that writes what it read from `url` (or `unreachable`) for the
/// program to print.
fn reads_at_build(url: &str) -> String {
    let fetch = format!(
        "import urllib.request\ntry:\n    print(urllib.request.urlopen('{url}', timeout=5).read().decode().strip())\nexcept Exception:\n    print('unreachable')\n"
    );
    bundle(
        Some(&format!(
            "FROM {PYTHON_IMAGE}\nWORKDIR /app\nCOPY fetch.py .\nRUN python3 fetch.py > out.txt\nCMD [\"cat\", \"out.txt\"]\n"
        )),
        &[("fetch.py", &fetch)],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_default_network_reaches_the_host_and_none_reaches_nothing() {
    require_engine();
    let gateway = bridge_gateway();
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("token.txt"), "secret-token\n").unwrap();
    let secret = LocalServer::serve(&gateway, folder.path()).await;
    let url = format!("http://{gateway}:{}/token.txt", secret.port);
    for (network, expected) in [("default", "secret-token"), ("none", "unreachable")] {
        let server =
            ScriptedServer::start(vec![ScriptedReply::Content(reads_at_build(&url))]).await;
        let workspace = Workspace::new(&server.base_url(), "", "max_iterations = 1");
        edit_config(
            &workspace,
            BUILD_NETWORK_LINE,
            &format!("build_network = \"{network}\"\n"),
        );
        let spec = workspace.spec(
            "reach",
            &format!(
                "prompt = \"p\"\nconditions = \"c\"\n[[check]]\nstdout_equals = \"{expected}\"\n"
            ),
        );
        let output = agent(&workspace, &["run", spec.to_str().unwrap()]).await;
        output.assert_code(0);
        assert_eq!(
            output
                .stderr
                .contains("warning: `[docker] build_network = \"default\"`"),
            network == "default",
            "{}",
            output.stderr
        );
        assert_run_cleaned_up(&workspace.report("reach"));
    }
    assert!(
        secret.requests().await.contains("token.txt"),
        "default reached it"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_egress_image_without_python_is_named_and_leaves_nothing() {
    require_engine();
    let server = ScriptedServer::start(vec![ScriptedReply::Content(bundle(
        Some(&python_dockerfile()),
        &[("main.py", "print('hello')")],
    ))])
    .await;
    let workspace = allowlist_workspace(&server, "python");
    edit_config(
        &workspace,
        &format!("egress_image = \"{PYTHON_IMAGE}\""),
        &format!("egress_image = \"{BUSYBOX_IMAGE}\""),
    );
    let spec = workspace.spec("hello", HELLO_SPEC);
    let output = agent(&workspace, &["run", spec.to_str().unwrap()]).await;
    output.assert_code(3);
    output.assert_stderr_has("the build egress gate could not start");
    output.assert_stderr_has("hint: `[docker] egress_image` must have `python3`");
    let report = workspace.report("hello");
    let label = format!("dev.agent.run={}", report["run_id"].as_str().unwrap());
    assert_eq!(containers_with(&label), Vec::<String>::new());
    assert_eq!(volumes_with(&label), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn podman_which_cannot_enforce_the_allow_list_is_refused_before_any_model_call() {
    let engine = Engine::podman();
    let server = ScriptedServer::start(Vec::new()).await;
    let workspace = Workspace::on(&engine, &server.base_url(), "", "");
    edit_config(
        &workspace,
        BUILD_NETWORK_LINE,
        &format!("egress_image = \"{PYTHON_IMAGE}\"\n"),
    );
    let spec = workspace.spec("hello", HELLO_SPEC);
    let output = agent(&workspace, &["run", spec.to_str().unwrap()]).await;
    output.assert_code(3);
    output.assert_stderr_has("cannot enforce `build_network = \"allowlist\"`");
    output.assert_stderr_has(
        "hint: use a Docker engine, or set `[docker] build_network = \"default\"`",
    );
    assert_eq!(server.requests().len(), 0, "no model call was made");
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_names_the_builder_and_hosts_of_the_allow_list_and_warns_of_an_open_network() {
    require_engine();
    let server = ScriptedServer::start(vec![]).await;
    let workspace = allowlist_workspace(&server, "python");
    let output = agent(&workspace, &["doctor"]).await;
    output.assert_code(0);
    assert!(
        output.stdout.contains(
            "ok    build egress: allow-list, enforced through the classic builder (auto picks it"
        ),
        "{}",
        output.stdout
    );
    assert!(
        output
            .stdout
            .contains("RUN steps reach only pypi.org, files.pythonhosted.org"),
        "{}",
        output.stdout
    );
    assert!(
        output
            .stdout
            .contains(&format!("ok    egress image `{PYTHON_IMAGE}` is present")),
        "{}",
        output.stdout
    );
    assert!(
        output.stdout.contains("builder classic"),
        "{}",
        output.stdout
    );

    let open = Workspace::new(&server.base_url(), "", "");
    let output = agent(&open, &["doctor"]).await;
    output.assert_code(0);
    assert!(
        output
            .stdout
            .contains("warn  build egress: `[docker] build_network = \"default\"`: the model's RUN steps reach whatever the engine reaches"),
        "{}",
        output.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_refused_connections_is_capped_and_counted() {
    require_engine();
    let gateway = bridge_gateway();
    // Three hundred ports of the engine's host, each tried once past the proxy: every
    // one lands in the gate's namespace and is refused there.
    // A line of its own each time, so the step runs rather than coming from the cache.
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let flood = format!(
        "# {nonce}\nimport socket\nfor port in range(20000, 20300):\n    try:\n        socket.create_connection(('{gateway}', port), 1)\n    except OSError:\n        pass\n"
    );
    let dockerfile = format!(
        "FROM {PYTHON_IMAGE}\nWORKDIR /app\nCOPY flood.py .\nRUN python3 flood.py\nCOPY main.py .\nCMD [\"python3\", \"main.py\"]\n"
    );
    let server = ScriptedServer::start(vec![ScriptedReply::Content(bundle(
        Some(&dockerfile),
        &[("main.py", "print('hello')"), ("flood.py", &flood)],
    ))])
    .await;
    let workspace = allowlist_workspace(&server, "python");
    let spec = workspace.spec("flood", HELLO_SPEC);
    let output = agent(&workspace, &["run", spec.to_str().unwrap()]).await;
    output.assert_code(0);
    let report = workspace.report("flood");
    let egress = &report["history"][0]["egress"];
    assert_eq!(refused_of(&report, 0).len(), 100, "{egress}");
    let unlisted = egress["unlisted"].as_u64().unwrap_or_default();
    // Each connection is seen on loopback; a burst this fast may lose a few frames
    // there (the connections are refused all the same).
    assert!((50..=200).contains(&unlisted), "{egress}");
    let build_log =
        std::fs::read_to_string(workspace.run_dir("flood").join("iterations/1/build.log")).unwrap();
    assert!(
        build_log.contains(&format!(
            "[egress] and {unlisted} more refused connections, not listed"
        )),
        "{build_log}"
    );
    assert_run_cleaned_up(&report);
}
