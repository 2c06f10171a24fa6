//! `[image]`: the built image's config (user, workdir, ports, env, labels, entrypoint,
//! cmd, size) from its inspect; no container started.

use agent_spec::ImageChecks;

use crate::job::Job;
use crate::verification::{Evidence, Facts, Kind};

pub(crate) struct Image<'a>(pub &'a ImageChecks);

impl Kind for Image<'_> {
    fn judge(&self, _job: &Job, facts: &Facts) -> Evidence {
        let results = self.0.judge(&facts.image);
        Evidence::of_results(
            results,
            "The image's configuration does not meet the spec's [image] requirements (set them in the Dockerfile: USER, WORKDIR, EXPOSE, ENV, LABEL, ENTRYPOINT, CMD; keep the image small):",
        )
    }

    /// The `[image]` requirements in words, for the task prompt.
    fn describe(&self, _job: &Job) -> String {
        let checks = self.0;
        let json = |value: &[String]| serde_json::to_string(value).unwrap_or_default();
        let mut lines = Vec::new();
        if checks.non_root {
            lines.push("USER is set to a user that is not root (nor uid 0)".to_owned());
        }
        if let Some(user) = &checks.user {
            lines.push(format!("USER is exactly `{user}`"));
        }
        if let Some(workdir) = &checks.workdir {
            lines.push(format!("WORKDIR is `{workdir}`"));
        }
        for port in &checks.exposed_ports {
            lines.push(format!("port {port} is EXPOSEd"));
        }
        for (key, value) in &checks.env {
            lines.push(format!("ENV {key} is `{value}`"));
        }
        for (key, value) in &checks.labels {
            lines.push(format!("LABEL {key} is `{value}`"));
        }
        if let Some(entrypoint) = &checks.entrypoint {
            lines.push(format!("ENTRYPOINT is exactly {}", json(entrypoint)));
        }
        if let Some(cmd) = &checks.cmd {
            lines.push(format!("CMD is exactly {}", json(cmd)));
        }
        if let Some(size) = checks.max_size_mb {
            lines.push(format!(
                "the image is at most {size} MB (no compilers or build caches left in it)"
            ));
        }
        let mut text = String::from(
            "\nThe image itself must meet these requirements (read from its configuration):\n",
        );
        for line in lines {
            text.push_str(&format!("- {line}\n"));
        }
        text
    }
}
