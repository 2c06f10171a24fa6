//! The build egress policy (`build_network = "allowlist"`): a build's `RUN` steps join
//! the network namespace of a *gate*, a container on no network, where the only way
//! out is an HTTP proxy on 127.0.0.1 that passes what the allow-list names to a
//! *relay* on the engine's default network, over a Unix socket in a volume both
//! mount. The gate makes every IPv4 address local to its namespace, so a step that
//! ignores the proxy, resolves a name itself or dials an address is seen and refused
//! there rather than failing unseen. Both halves are `egress.py`, run by the
//! `python3` of `[docker] egress_image`, so they work on remote engines too.
//!
//! Each refusal is a line of the gate's output; a task follows it while the build
//! runs and names the step that was running, which the build's progress tells.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, VolumeCreateRequest};
use bollard::query_parameters::{LogsOptionsBuilder, RemoveVolumeOptionsBuilder};
use futures_util::StreamExt;

use crate::deadline::bounded;
use crate::errors::SandboxError;
use crate::outcome::{EgressRefusal, EgressRefusals};
use crate::request::EgressPolicy;
use crate::run::ContainerGuard;

/// The gate and relay, as one script.
const SCRIPT: &str = include_str!("egress.py");
/// Where the gate's proxy listens, in the namespace the steps share.
const PROXY: &str = "http://127.0.0.1:3128";
/// Where the volume is mounted in both, and the relay's socket in it.
const SOCKET_FOLDER: &str = "/egress";
const SOCKET: &str = "/egress/relay.sock";
/// How long both halves may take to say they are ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// What each half may use.
const MEMORY_MB: i64 = 256;
const PIDS: i64 = 512;
/// The gate's last lines reach its log a moment after the step that caused them.
const SETTLE: Duration = Duration::from_millis(100);
/// Distinct refusals kept per build; past them a hostile step's flood is only counted.
const KEPT_REFUSALS: usize = 100;
/// What the engine keeps of the gate's output.
const LOG_MAX_SIZE: &str = "10m";

/// The build step running now, as the build's progress names it.
#[derive(Debug, Clone, Default)]
pub(crate) struct StepNow(Arc<Mutex<Option<(u32, String)>>>);

impl StepNow {
    pub(crate) fn set(&self, index: u32, instruction: &str) {
        *lock(&self.0) = Some((index, instruction.to_owned()));
    }

    fn get(&self) -> Option<(u32, String)> {
        lock(&self.0).clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A gate and relay for one build; [`Gate::close`] removes both and the volume (a
/// dropped gate's containers go with their guards, the volume with `gc`).
pub(crate) struct Gate {
    docker: Docker,
    gate_id: String,
    containers: Vec<ContainerGuard>,
    volume: String,
    refused: Arc<Mutex<EgressRefusals>>,
    follower: tokio::task::JoinHandle<()>,
    step: StepNow,
}

impl Gate {
    /// Starts the relay and the gate and waits until both serve.
    pub(crate) async fn open(docker: &Docker, policy: &EgressPolicy) -> Result<Gate, SandboxError> {
        let labels: HashMap<String, String> = policy.labels.clone().into_iter().collect();
        let volume = bounded(docker.create_volume(VolumeCreateRequest {
            labels: Some(labels.clone()),
            ..Default::default()
        }))
        .await
        .map_err(|source| unavailable("create its volume", source))?
        .name;
        let config = serde_json::json!({ "allow": policy.allow, "socket": SOCKET }).to_string();
        let mut containers = Vec::new();
        let opened = async {
            let relay = create(docker, policy, &labels, &volume, "relay", &config).await?;
            containers.push(ContainerGuard::new(docker.clone(), relay.clone()));
            let gate = create(docker, policy, &labels, &volume, "gate", &config).await?;
            containers.push(ContainerGuard::new(docker.clone(), gate.clone()));
            let (relay_ready, gate_ready) = tokio::join!(
                start_and_wait(docker, &relay, "relay"),
                start_and_wait(docker, &gate, "gate")
            );
            relay_ready?;
            gate_ready?;
            Ok::<_, SandboxError>(gate)
        }
        .await;
        let gate_id = match opened {
            Ok(gate) => gate,
            Err(error) => {
                for container in containers {
                    container.remove().await;
                }
                remove_volume(docker, &volume).await;
                return Err(error);
            }
        };
        let step = StepNow::default();
        let refused = Arc::default();
        let follower = tokio::spawn(follow(
            docker.clone(),
            gate_id.clone(),
            Arc::clone(&refused),
            step.clone(),
        ));
        Ok(Gate {
            docker: docker.clone(),
            gate_id,
            containers,
            volume,
            refused,
            follower,
            step,
        })
    }

    /// The build's network: the gate's namespace.
    pub(crate) fn network_mode(&self) -> String {
        format!("container:{}", self.gate_id)
    }

    /// The proxy for the steps, as Docker's predefined build args (which reach `RUN`
    /// steps and stay out of the image's history).
    pub(crate) fn build_args() -> BTreeMap<String, String> {
        let mut args = BTreeMap::new();
        for name in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
            args.insert(name.to_owned(), PROXY.to_owned());
        }
        for name in ["NO_PROXY", "no_proxy"] {
            args.insert(name.to_owned(), "localhost,127.0.0.1".to_owned());
        }
        args
    }

    /// Where the build tells the step it is on.
    pub(crate) fn step(&self) -> StepNow {
        self.step.clone()
    }

    /// Removes the gate, the relay and the volume; what was refused, once per host,
    /// port, step and way.
    pub(crate) async fn close(self) -> EgressRefusals {
        tokio::time::sleep(SETTLE).await;
        self.follower.abort();
        for container in self.containers.into_iter().rev() {
            container.remove().await;
        }
        remove_volume(&self.docker, &self.volume).await;
        std::mem::take(&mut *lock(&self.refused))
    }
}

impl EgressRefusals {
    /// Takes one refusal: counted with its twin, kept while there is room, else counted.
    fn add(&mut self, refusal: EgressRefusal) {
        let seen = self.kept.iter_mut().find(|seen| {
            seen.host == refusal.host
                && seen.port == refusal.port
                && seen.step == refusal.step
                && seen.via == refusal.via
        });
        if let Some(seen) = seen {
            seen.count += 1;
        } else if self.kept.len() < KEPT_REFUSALS {
            self.kept.push(refusal);
        } else {
            self.unlisted += 1;
        }
    }
}

async fn create(
    docker: &Docker,
    policy: &EgressPolicy,
    labels: &HashMap<String, String>,
    volume: &str,
    role: &str,
    config: &str,
) -> Result<String, SandboxError> {
    let gate = role == "gate";
    let body = ContainerCreateBody {
        image: Some(policy.image.clone()),
        cmd: Some(
            ["python3", "-c", SCRIPT, role, config]
                .map(str::to_owned)
                .to_vec(),
        ),
        labels: Some(labels.clone()),
        host_config: Some(HostConfig {
            binds: Some(vec![format!("{volume}:{SOCKET_FOLDER}")]),
            // The gate has no network: the steps that join it see loopback only.
            network_mode: gate.then(|| "none".to_owned()),
            cap_drop: Some(vec!["ALL".to_owned()]),
            // Its own routes, the loopback watch and the DNS port; the steps that
            // share its namespace get none of these.
            cap_add: gate.then(|| {
                ["NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE"]
                    .map(str::to_owned)
                    .to_vec()
            }),
            security_opt: Some(vec!["no-new-privileges".to_owned()]),
            memory: Some(MEMORY_MB * 1024 * 1024),
            pids_limit: Some(PIDS),
            log_config: Some(HostConfigLogConfig {
                typ: Some("json-file".to_owned()),
                config: Some(HashMap::from([
                    ("max-size".to_owned(), LOG_MAX_SIZE.to_owned()),
                    ("max-file".to_owned(), "1".to_owned()),
                ])),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let created = bounded(docker.create_container(None, body))
        .await
        .map_err(|source| SandboxError::CreateContainer {
            image: policy.image.clone(),
            source,
        })?;
    Ok(created.id)
}

/// Starts `id` and reads its output until it says it is ready.
async fn start_and_wait(docker: &Docker, id: &str, role: &str) -> Result<(), SandboxError> {
    bounded(docker.start_container(id, None))
        .await
        .map_err(|source| unavailable(&format!("start its {role}"), source))?;
    let options = LogsOptionsBuilder::default()
        .follow(true)
        .stdout(true)
        .stderr(true)
        .build();
    let mut logs = docker.logs(id, Some(options));
    let mut said = String::new();
    let ready = tokio::time::timeout(READY_TIMEOUT, async {
        while let Some(Ok(output)) = logs.next().await {
            let text = String::from_utf8_lossy(&output_bytes(&output)).into_owned();
            if text.contains("\"ready\"") {
                return true;
            }
            said.push_str(&text);
        }
        false
    })
    .await;
    match ready {
        Ok(true) => Ok(()),
        Ok(false) => Err(SandboxError::Egress(format!(
            "its {role} stopped before it was ready: {}",
            said.trim()
        ))),
        Err(_) => Err(SandboxError::Egress(format!(
            "its {role} was not ready within {} s: {}",
            READY_TIMEOUT.as_secs(),
            said.trim()
        ))),
    }
}

fn output_bytes(output: &LogOutput) -> bytes::Bytes {
    match output {
        LogOutput::StdOut { message }
        | LogOutput::StdErr { message }
        | LogOutput::Console { message }
        | LogOutput::StdIn { message } => message.clone(),
    }
}

/// Reads the gate's refusals as they come, each with the step running then.
async fn follow(docker: Docker, gate: String, refused: Arc<Mutex<EgressRefusals>>, step: StepNow) {
    let options = LogsOptionsBuilder::default()
        .follow(true)
        .stdout(true)
        .build();
    let mut logs = docker.logs(&gate, Some(options));
    let mut pending = String::new();
    while let Some(Ok(output)) = logs.next().await {
        pending.push_str(&String::from_utf8_lossy(&output_bytes(&output)));
        while let Some(end) = pending.find('\n') {
            let line: String = pending.drain(..=end).collect();
            if let Some(refusal) = parse_refusal(&line, step.get()) {
                tracing::debug!(host = %refusal.host, port = refusal.port, "build egress refused");
                lock(&refused).add(refusal);
            }
        }
    }
}

/// A refusal line of the gate: `{"refused": {"host", "port", "via", "reason"}}`.
fn parse_refusal(line: &str, step: Option<(u32, String)>) -> Option<EgressRefusal> {
    #[derive(serde::Deserialize)]
    struct Line {
        refused: Refused,
    }
    #[derive(serde::Deserialize)]
    struct Refused {
        host: String,
        port: u16,
        via: String,
        reason: String,
    }
    let Line { refused } = serde_json::from_str(line.trim()).ok()?;
    let (step, instruction) = step.map_or((None, None), |(index, text)| (Some(index), Some(text)));
    Some(EgressRefusal {
        host: refused.host,
        port: refused.port,
        via: refused.via,
        reason: refused.reason,
        step,
        instruction,
        count: 1,
    })
}

async fn remove_volume(docker: &Docker, volume: &str) {
    let options = RemoveVolumeOptionsBuilder::default().force(true).build();
    if let Err(error) = bounded(docker.remove_volume(volume, Some(options))).await {
        if !crate::cleanup::is_status(&error, 404) {
            tracing::warn!(%volume, "cannot remove the egress volume: {error}");
        }
    }
}

/// The build log's account of what was refused.
pub(crate) fn log_lines(refused: &EgressRefusals) -> String {
    let mut lines = String::new();
    for refusal in &refused.kept {
        let step = match (refusal.step, &refusal.instruction) {
            (Some(index), Some(instruction)) => format!(" at step {index} ({instruction})"),
            _ => String::new(),
        };
        lines.push_str(&format!(
            "[egress] refused {}:{} ({}){step}: {}\n",
            refusal.host, refusal.port, refusal.via, refusal.reason
        ));
    }
    if refused.unlisted > 0 {
        lines.push_str(&format!(
            "[egress] and {} more refused connections, not listed\n",
            refused.unlisted
        ));
    }
    lines
}

fn unavailable(what: &str, source: bollard::errors::Error) -> SandboxError {
    SandboxError::Egress(format!("cannot {what}: {source}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_lines_are_read_with_their_step_and_counted_once() {
        let line = r#"{"refused": {"host": "github.com", "port": 443, "via": "proxy", "reason": "not on the build's allow-list"}}"#;
        let step = Some((3, "RUN pip install x".to_owned()));
        let refusal = parse_refusal(line, step.clone()).expect("a refusal");
        assert_eq!((refusal.host.as_str(), refusal.port), ("github.com", 443));
        assert_eq!(refusal.step, Some(3));
        assert!(parse_refusal(r#"{"ready": "gate"}"#, step.clone()).is_none());
        assert!(parse_refusal("not json", step).is_none());
        let mut refused = EgressRefusals::default();
        refused.add(refusal.clone());
        refused.add(refusal.clone());
        assert_eq!(refused.kept.len(), 1);
        assert_eq!(refused.kept[0].count, 2);
        for port in 0..(KEPT_REFUSALS as u16 + 50) {
            refused.add(EgressRefusal {
                port,
                ..refusal.clone()
            });
        }
        assert_eq!(refused.kept.len(), KEPT_REFUSALS, "a flood is capped");
        assert_eq!(refused.unlisted, 51, "and counted");
    }

    #[test]
    fn the_proxy_reaches_steps_as_predefined_build_args() {
        let args = Gate::build_args();
        assert_eq!(args["HTTPS_PROXY"], PROXY);
        assert_eq!(args["no_proxy"], "localhost,127.0.0.1");
    }
}
