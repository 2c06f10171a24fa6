//! Every message the model is sent, composed from the templates: the system prompt,
//! the task, a repair after a failed iteration, a request to reformat an unusable
//! reply, and the judge's question.

use std::collections::BTreeMap;

use agent_model::{ChatMessage, Role};
use agent_sandbox::RunOutcome;
use agent_spec::{BuildNetwork, NetworkMode, excerpt};

use crate::bundle::Bundle;
use crate::feedback;
use crate::job::Job;
use crate::report::IterationRecord;
use crate::templates::render;
use crate::text::describe_matcher;

/// A chat message.
pub(crate) fn message(role: Role, content: impl Into<String>) -> ChatMessage {
    ChatMessage {
        role,
        content: content.into(),
    }
}

/// Asks again after a reply that could not be used, saying why.
pub(crate) fn reformat(why: &str) -> String {
    format!(
        "Your reply could not be used: {why}\nAnswer again with only the JSON object of the code bundle (`summary`, `dockerfile`, `files`, `delete`), nothing else."
    )
}

/// Asks the judge again after a verdict that could not be used.
pub(crate) fn rejudge(problem: &str) -> String {
    format!(
        "{problem}\nAnswer with only the JSON object {{\"pass\": true|false, \"reason\": \"…\"}}."
    )
}

/// The judge's question: the task, its conditions and what the program did.
pub(crate) fn judge(job: &Job, ran: &RunOutcome, stdout: &str, stderr: &str) -> String {
    let exit_code = ran
        .exit_code
        .map_or("none".to_string(), |code| code.to_string());
    let stdout_shown = excerpt(stdout, 24 * 1024);
    let stderr_shown = excerpt(stderr, 4 * 1024);
    render(
        &job.prompts.judge,
        &[
            ("prompt", &job.spec.prompt),
            ("conditions", &job.spec.conditions),
            ("exit_code", &exit_code),
            ("stdout", &stdout_shown),
            ("stderr", &stderr_shown),
        ],
    )
}

pub(crate) fn system(job: &Job) -> String {
    let docker = &job.settings.docker;
    let limits = &job.limits;
    let spec = &job.spec;
    let allowed = if docker.allowed_base_images.is_empty() {
        String::new()
    } else {
        format!(
            " Only these base images are allowed: {}.",
            docker
                .allowed_base_images
                .iter()
                .map(|image| format!("`{image}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let build_network = match docker.build_network {
        BuildNetwork::None => "no: RUN steps have no network, so vendor what you need".to_owned(),
        BuildNetwork::Allowlist => format!(
            "only these hosts, through the HTTP proxy the build already sets in HTTP_PROXY and HTTPS_PROXY (pip, apt-get and the like use it): {}; nothing else is reachable, so install from these",
            docker.build_allowed_hosts().join(", ")
        ),
        BuildNetwork::Default | BuildNetwork::Host => "pip, apt-get and the like work".to_owned(),
    };
    let run_args = if spec.run.args.is_empty() {
        String::new()
    } else {
        format!(
            ", with these arguments appended to the command: {}",
            serde_json::to_string(&spec.run.args).unwrap_or_default()
        )
    };
    let run_network = match limits.network {
        NetworkMode::None => "The container has no network at run time (only loopback).",
        NetworkMode::Bridge => "The container has network access at run time.",
    };
    let run_env = if spec.run.env.is_empty() {
        String::new()
    } else {
        format!(
            " ({})",
            spec.run
                .env
                .iter()
                .map(|(key, value)| format!("{key}={value}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    render(
        &job.prompts.system,
        &[
            ("base_image", &docker.base_image),
            ("allowed_base_images", &allowed),
            ("build_network", &build_network),
            ("run_args", &run_args),
            ("run_network", run_network),
            ("memory_mb", &limits.memory_mb.to_string()),
            ("cpus", &limits.cpus.to_string()),
            ("pids", &limits.pids.to_string()),
            ("run_timeout_secs", &limits.run_timeout_secs.to_string()),
            ("run_env", &run_env),
        ],
    )
}

/// Inputs shown to the model in full when they are text and small.
const INPUT_SHOWN_BYTES: usize = 8 * 1024;

pub(crate) fn task(job: &Job, inputs: &BTreeMap<String, Vec<u8>>) -> String {
    let spec = &job.spec;
    let mut checks = if spec.checks.is_empty() {
        String::new()
    } else if spec.cases.is_empty() {
        let mut text = String::from("\nThe output is checked exactly like this:\n");
        for check in &spec.checks {
            text.push_str(&format!("- {}\n", describe_matcher(&check.matcher)));
        }
        text
    } else {
        String::new()
    };
    checks.push_str(&crate::verification::describe(job));
    let stdin = match &spec.run.stdin {
        _ if !spec.cases.is_empty() => String::new(),
        Some(stdin) => format!(
            "\nThe program receives this on stdin (then end of file):\n```\n{}\n```\n",
            excerpt(stdin, INPUT_SHOWN_BYTES)
        ),
        None => "\nThe program's stdin is empty.\n".to_string(),
    };
    let mut input_text = String::new();
    if !inputs.is_empty() {
        input_text.push_str("\nThese input files are in the build context at these paths (COPY them into the image; you may not change them):\n");
        for (name, bytes) in inputs {
            match std::str::from_utf8(bytes) {
                Ok(text) => {
                    let size = if bytes.len() > INPUT_SHOWN_BYTES {
                        format!(" ({} bytes; its start and its end)", bytes.len())
                    } else {
                        String::new()
                    };
                    input_text.push_str(&format!(
                        "\n{name}{size}:\n```\n{}\n```\n",
                        excerpt(text, INPUT_SHOWN_BYTES).trim_end()
                    ));
                }
                Err(_) => {
                    input_text.push_str(&format!("\n{name}: binary, {} bytes\n", bytes.len()))
                }
            }
        }
    }
    render(
        &job.prompts.task,
        &[
            ("prompt", &spec.prompt),
            ("conditions", &spec.conditions),
            ("checks", &checks),
            ("stdin", &stdin),
            ("inputs", &input_text),
        ],
    )
}

pub(crate) fn repair(
    job: &Job,
    failed_iteration: u32,
    feedback_text: &str,
    history: &[IterationRecord],
    current: Option<&Bundle>,
) -> String {
    let history_text = if history.len() <= 1 {
        "(none before this one)".to_string()
    } else {
        history[..history.len() - 1]
            .iter()
            .map(|record| {
                format!(
                    "- attempt {}: {} — {}{}",
                    record.iteration,
                    record.outcome.as_str(),
                    if record.summary.is_empty() {
                        "(no summary)"
                    } else {
                        &record.summary
                    },
                    if record.detail.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", record.detail)
                    }
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let bundle_text = current.map_or_else(
        || "(nothing was built yet: send the full bundle, with the Dockerfile)".to_string(),
        feedback::bundle_listing,
    );
    render(
        &job.prompts.repair,
        &[
            ("iteration", &failed_iteration.to_string()),
            ("feedback", feedback_text),
            ("history", &history_text),
            ("bundle", &bundle_text),
        ],
    )
}
