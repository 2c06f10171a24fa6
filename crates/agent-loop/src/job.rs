//! One spec to run, with everything resolved, and what the engine is asked for on its
//! behalf: run limits, the build network, labels, and the verified image's tag.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_run_dir::RunDir;
use agent_sandbox::{CredentialSource, EgressPolicy, RunLimits, RunNetwork};
use agent_spec::{BuildNetwork, Limits, NetworkMode, Settings, Spec};

use crate::lock::LockMode;
use crate::templates::Prompts;

/// One spec to run, with everything resolved.
pub struct Job {
    pub spec: Spec,
    pub limits: Limits,
    pub settings: Arc<Settings>,
    pub prompts: Arc<Prompts>,
    pub run_id: String,
    pub run_dir: RunDir,
    /// `dev.agent.owner` label value of this process.
    pub owner: String,
    pub lock: LockMode,
    pub provenance: Provenance,
    /// Where registry credentials are found for pulling a lock's published image;
    /// `None`: pulls are anonymous.
    pub credentials: Option<CredentialSource>,
}

impl Job {
    /// Labels for everything this run creates on the engine.
    pub(crate) fn labels(&self) -> BTreeMap<String, String> {
        run_labels(&self.run_id, &self.spec.name, &self.owner)
    }

    /// The network of a build that has no egress policy (under `allowlist` the steps
    /// join the policy's gate instead).
    pub(crate) fn build_network(&self) -> &'static str {
        match self.settings.docker.build_network {
            BuildNetwork::Allowlist => "none",
            other => other.as_str(),
        }
    }

    /// What the build's RUN steps may reach under `build_network = "allowlist"`.
    pub(crate) fn egress_policy(&self) -> Option<EgressPolicy> {
        let docker = &self.settings.docker;
        (docker.build_network == BuildNetwork::Allowlist).then(|| EgressPolicy {
            image: docker.egress_image.clone(),
            allow: docker.build_allowed(),
            labels: self.labels(),
        })
    }

    /// What the builds could reach, for the report: under `allowlist` the classic
    /// builder is the one that can enforce it (`auto` picks it; the engine connection
    /// refuses the others).
    pub(crate) fn build_policy(&self) -> crate::report::BuildPolicyRecord {
        let docker = &self.settings.docker;
        let allowlist = docker.build_network == BuildNetwork::Allowlist;
        crate::report::BuildPolicyRecord {
            network: docker.build_network.as_str().to_owned(),
            builder: docker.builder_for_network().as_str().to_owned(),
            allow: if allowlist {
                docker.build_allowed_hosts()
            } else {
                Vec::new()
            },
        }
    }

    /// Where the spec's build results are kept: `agent-cache/<spec>`.
    pub(crate) fn cache_repository(&self) -> String {
        format!(
            "{}{}",
            agent_sandbox::CACHE_REPOSITORY_PREFIX,
            repository_name(&self.spec.name)
        )
    }

    /// Where the previous verified image of the spec is in the registry when runs push:
    /// `<repository>/<spec>:<tag>` for each moving tag (`[publish] tags`); empty when
    /// nothing is pushed.
    pub(crate) fn moving_references(&self) -> Vec<String> {
        let publish = &self.settings.publish;
        let Some(repository) = &publish.repository else {
            return Vec::new();
        };
        let name = repository_name(&self.spec.name);
        publish
            .tags
            .iter()
            .map(|tag| format!("{repository}/{name}:{tag}"))
            .collect()
    }

    /// The tag of a verified image: `agent/<spec>:<12 hex of the context digest>`.
    pub(crate) fn verified_tag(&self, context_digest: &str) -> String {
        let short = &context_digest[..12.min(context_digest.len())];
        format!(
            "{}{}:{short}",
            agent_sandbox::VERIFIED_REPOSITORY_PREFIX,
            repository_name(&self.spec.name)
        )
    }

    /// The images the model may build FROM: the configured one first, then the
    /// allowed ones.
    pub(crate) fn base_images(&self) -> Vec<String> {
        let docker = &self.settings.docker;
        let mut images = vec![docker.base_image.clone()];
        images.extend(
            docker
                .allowed_base_images
                .iter()
                .filter(|image| **image != docker.base_image)
                .cloned(),
        );
        images
    }

    /// What is left of the wall-clock budget, when there is one.
    pub(crate) fn wall_left(&self, started: Instant) -> Option<Duration> {
        (self.limits.max_wall_secs > 0).then(|| {
            Duration::from_secs(self.limits.max_wall_secs).saturating_sub(started.elapsed())
        })
    }

    /// A phase's timeout, cut to what is left of the wall-clock budget (at least 1 s,
    /// so an engine call always gets a chance to answer).
    pub(crate) fn timeout(&self, secs: u64, started: Instant) -> Duration {
        let duration = Duration::from_secs(secs);
        match self.wall_left(started) {
            Some(left) => duration.min(left.max(Duration::from_secs(1))),
            None => duration,
        }
    }
}

/// Where the verified bundle came from, as the CI or the spec's git checkout says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provenance {
    /// `org.opencontainers.image.revision`: the commit.
    pub revision: Option<String>,
    /// `org.opencontainers.image.source`: the repository's URL.
    pub source: Option<String>,
}

/// Labels for everything one spec run creates.
pub fn run_labels(run_id: &str, spec: &str, owner: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (agent_sandbox::LABEL_RUN.to_string(), run_id.to_string()),
        (agent_sandbox::LABEL_SPEC.to_string(), spec.to_string()),
        (agent_sandbox::LABEL_OWNER.to_string(), owner.to_string()),
    ])
}

pub fn run_limits(limits: &Limits, timeout: Duration) -> RunLimits {
    RunLimits {
        memory_mb: limits.memory_mb,
        cpus: limits.cpus,
        pids: limits.pids,
        network: match limits.network {
            NetworkMode::None => RunNetwork::None,
            NetworkMode::Bridge => RunNetwork::Bridge,
        },
        timeout,
        output_limit_bytes: usize::try_from(limits.output_limit_kb.saturating_mul(1024))
            .unwrap_or(usize::MAX),
        access: agent_sandbox::RunAccess::default(),
    }
}

/// A spec name as a Docker repository component: spec names allow runs of separators
/// and separators at the end (`a..b`, `fizz-`), which the engine refuses in a tag.
fn repository_name(spec: &str) -> String {
    let mut name = String::with_capacity(spec.len());
    for c in spec.chars() {
        let separator = !c.is_ascii_alphanumeric();
        if separator && (name.is_empty() || name.ends_with(['.', '_', '-'])) {
            continue;
        }
        name.push(c);
    }
    name.trim_end_matches(['.', '_', '-']).to_string()
}

#[cfg(test)]
mod tests {
    use super::repository_name;

    #[test]
    fn spec_names_become_valid_repository_names() {
        assert_eq!(repository_name("fizzbuzz"), "fizzbuzz");
        assert_eq!(repository_name("sales-report.v2"), "sales-report.v2");
        assert_eq!(repository_name("a..b__c--d"), "a.b_c-d");
        assert_eq!(repository_name("fizz-"), "fizz");
    }
}
