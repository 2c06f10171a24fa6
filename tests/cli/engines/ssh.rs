//! An `ssh://` engine: the test starts its own `sshd` on 127.0.0.1 (its own config,
//! host key and authorized keys in a temp folder, run as root) and `agent` reaches the
//! main engine through it with `docker system dial-stdio`. The user's `~/.ssh` is never
//! read or written: `ssh` takes `~/.ssh` from the password database, not from `HOME`,
//! so the `agent` child finds an `ssh` first on its `PATH` that runs the real one with
//! `-F` and the test's config (port, known hosts, key); its control sockets go to the
//! temp folder through `XDG_STATE_HOME`.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agent_testkit::ScriptedServer;

use super::{MAIN_ENGINE, busybox_reply, busybox_workspace};
use crate::support::*;

const SSHD: &str = "/usr/sbin/sshd";
/// The `Host` of the test's ssh config: 127.0.0.1 and the port of its `sshd`.
const ALIAS: &str = "agent-test-engine";
const URL: &str = "ssh://root@agent-test-engine";

/// The `sshd` this test started, killed (by its own pid) when dropped.
struct Sshd {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Sshd {
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `agent <args>` that reaches this `sshd` with the test's ssh config.
    fn agent(&self, workspace: &Workspace, args: &[&str]) -> tokio::process::Command {
        let path = format!(
            "{}:{}",
            self.file("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = agent_command(workspace, args);
        command
            .env("PATH", path)
            .env("XDG_STATE_HOME", self.file("state"))
            .env_remove("SSH_AUTH_SOCK");
        command
    }

    /// Processes whose command line names this test's folder: the `ssh` masters
    /// `agent` started.
    fn ssh_left(&self) -> Vec<String> {
        let folder = self.dir.path().to_string_lossy().into_owned();
        let mut left = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.starts_with("/usr/bin/ssh ") && cmdline.contains(&folder) {
                left.push(cmdline);
            }
        }
        left
    }
}

fn run(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("{program} runs: {error}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn keygen(path: &Path) {
    run(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-f",
            path.to_str().unwrap(),
        ],
    );
}

fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

/// Host key, two client keys (`client` in the ssh config, `other` for an engine's
/// `identity`), both authorized; the server and client configs; the `ssh` on `PATH`.
fn write_files(dir: &Path, port: u16) {
    for key in ["host", "client", "other"] {
        keygen(&dir.join(key));
    }
    let public = |key: &str| std::fs::read_to_string(dir.join(format!("{key}.pub"))).unwrap();
    let authorized = format!("{}{}", public("client"), public("other"));
    std::fs::write(dir.join("authorized_keys"), authorized).unwrap();
    let d = dir.display();
    let sshd_config = format!(
        "ListenAddress 127.0.0.1\nPort {port}\nHostKey {d}/host\nPidFile {d}/sshd.pid\n\
         AuthorizedKeysFile {d}/authorized_keys\nUsePAM no\nStrictModes no\n\
         PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
         KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
    );
    std::fs::write(dir.join("sshd_config"), sshd_config).unwrap();
    let host_public = public("host");
    let host_key: Vec<&str> = host_public.split_whitespace().take(2).collect();
    let known = format!("[127.0.0.1]:{port} {}\n", host_key.join(" "));
    std::fs::write(dir.join("known_hosts"), known).unwrap();
    let ssh_config = format!(
        "Host {ALIAS}\n  HostName 127.0.0.1\n  Port {port}\n\nHost *\n  BatchMode yes\n  \
         UserKnownHostsFile {d}/known_hosts\n  \
         GlobalKnownHostsFile /dev/null\n  IdentitiesOnly yes\n  IdentityFile {d}/client\n"
    );
    std::fs::write(dir.join("ssh_config"), ssh_config).unwrap();
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::create_dir_all(dir.join("state")).unwrap();
    let wrapper = dir.join("bin/ssh");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nexec /usr/bin/ssh -F {d}/ssh_config \"$@\"\n"),
    )
    .unwrap();
    run("chmod", &["+x", wrapper.to_str().unwrap()]);
}

/// Starts `sshd` and waits until it accepts connections; fails loudly when it cannot.
fn start_sshd() -> Sshd {
    assert!(
        Path::new(SSHD).exists(),
        "{SSHD} is missing: install Debian's openssh-server (.ci/run does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    write_files(dir.path(), port);
    // sshd's privilege separation folder; Debian's service creates it at boot.
    std::fs::create_dir_all("/run/sshd").unwrap();
    let log = std::fs::File::create(dir.path().join("sshd.log")).unwrap();
    let child = Command::new(SSHD)
        .args(["-D", "-e", "-f"])
        .arg(dir.path().join("sshd_config"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("sshd starts");
    let mut sshd = Sshd { child, dir };
    let started = Instant::now();
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        let log = std::fs::read_to_string(sshd.file("sshd.log")).unwrap_or_default();
        assert!(
            sshd.child.try_wait().unwrap().is_none(),
            "sshd exited: {log}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "sshd does not listen on {port}: {log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    sshd
}

/// `ssh -O exit` runs when a connection closes: once `agent` has ended, none of its
/// `ssh` masters is left.
async fn assert_no_ssh_left(sshd: &Sshd) {
    let started = Instant::now();
    while !sshd.ssh_left().is_empty() && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sshd.ssh_left(), Vec::<String>::new(), "ssh processes left");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_engine_over_ssh_is_reached_as_the_docker_cli_reaches_it() {
    let sshd = start_sshd();
    // `doctor` asks the model once itself: its own server.
    let silent = ScriptedServer::start(vec![]).await;
    let doctor_workspace = busybox_workspace(&silent, "[]");
    let doctor = run_agent(&mut sshd.agent(&doctor_workspace, &["doctor", "--engine", URL])).await;
    doctor.assert_code(0);
    let line = doctor
        .stdout
        .lines()
        .find(|line| line.starts_with("ok    engine ") && line.contains(URL))
        .unwrap_or_else(|| panic!("a line for {URL}:\n{}", doctor.stdout));
    assert!(line.contains("(API 1."), "{line}");
    assert_no_ssh_left(&sshd).await;

    let server = ScriptedServer::start(vec![busybox_reply("echo hello")]).await;
    let workspace = busybox_workspace(&server, "[]");
    let spec = workspace.spec("ssh-1", HELLO_SPEC);
    let args = ["run", "--engine", URL, spec.to_str().unwrap()];
    let run = run_agent(&mut sshd.agent(&workspace, &args)).await;
    run.assert_code(0);
    let report = workspace.report("ssh-1");
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(report["history"][0]["engine"], URL);
    assert_no_ssh_left(&sshd).await;
    docker_lines(&["rmi", report["image"].as_str().unwrap()]);

    // Only `other` may log in now: the engine's `identity` names it.
    let other = std::fs::read_to_string(sshd.file("other.pub")).unwrap();
    std::fs::write(sshd.file("authorized_keys"), other).unwrap();
    let key = sshd.file("other");
    let engines = format!("[{{ url = \"{URL}\", identity = \"{}\" }}]", key.display());
    let keyed = busybox_workspace(&silent, &engines);
    let doctor = run_agent(&mut sshd.agent(&keyed, &["doctor"])).await;
    doctor.assert_code(0);
    assert!(
        doctor
            .stdout
            .lines()
            .any(|line| line.starts_with("ok    engine ") && line.contains(URL)),
        "{}",
        doctor.stdout
    );
    let refused = run_agent(&mut sshd.agent(&doctor_workspace, &["doctor", "--engine", URL])).await;
    refused.assert_code(3);
    assert!(
        refused.stdout.contains(&format!("fail  engine {URL}:")),
        "{}",
        refused.stdout
    );
    assert!(
        refused.stdout.contains(&format!("`ssh {URL} docker info`")),
        "{}",
        refused.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ssh_engine_that_does_not_answer_is_left_out_like_any_other() {
    let mut sshd = start_sshd();
    let server = ScriptedServer::start(vec![busybox_reply("echo hello")]).await;
    let workspace = busybox_workspace(&server, "[]");
    // The test's ssh config still names the port, where nothing listens any more.
    sshd.stop();
    let spec = workspace.spec("ssh-down-1", HELLO_SPEC);
    let args = [
        "run",
        "--engine",
        URL,
        "--engine",
        MAIN_ENGINE,
        spec.to_str().unwrap(),
    ];
    let output = run_agent(&mut sshd.agent(&workspace, &args)).await;
    output.assert_code(0);
    output.assert_stderr_has(&format!(
        "agent: engine `{URL}` does not answer; it is left out"
    ));
    let report = workspace.report("ssh-down-1");
    assert_eq!(report["history"][0]["engine"], MAIN_ENGINE);
    docker_lines(&["rmi", report["image"].as_str().unwrap()]);
}
