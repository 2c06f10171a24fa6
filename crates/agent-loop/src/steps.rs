//! The model's side of an iteration: ask for a bundle (once more when the reply
//! cannot be used), validate it against the rules, and ask the judge.

use agent_model::{Answer, ChatMessage, CodeBundle, Purpose, Reply, Role};
use agent_spec::{CheckResult, DEFAULT_CASE, excerpt};

use crate::bundle::{Bundle, Rules};
use crate::feedback;
use crate::iteration::{Halt, Iteration, end};
use crate::ports::ModelPort;
use crate::prompts::{self, message};
use crate::report::{Outcome, UsageTotals};
use crate::trial::Checked;

/// The longest model reply quoted back as the assistant turn of a reformat request.
const ASSISTANT_ECHO_BYTES: usize = 64 * 1024;

/// Adds a call's tokens to the run's totals, and its tokens and latency to the
/// iteration's own.
fn account<T>(usage: &mut UsageTotals, iteration: &mut Iteration, reply: &Reply<T>) {
    for totals in [&mut *usage, &mut iteration.usage] {
        totals.prompt_tokens += reply.usage.prompt_tokens;
        totals.completion_tokens += reply.usage.completion_tokens;
        totals.calls += 1;
    }
    iteration.waited.model += reply.latency;
    iteration.waited.queued += reply.queued;
}

/// Asks for a bundle; a reply that cannot be used is sent back once, with why,
/// before it counts.
pub(crate) async fn generate<M: ModelPort>(
    model: &mut M,
    purpose: Purpose,
    messages: Vec<ChatMessage>,
    usage: &mut UsageTotals,
    iteration: &mut Iteration,
) -> Result<Reply<CodeBundle>, Halt> {
    let number = iteration.record.iteration;
    let reply = model.code_bundle(purpose, number, &messages).await?;
    account(usage, iteration, &reply);
    reformat_unusable(model, messages, reply, usage, iteration).await
}

/// `count` bundles for the same request, asked for side by side; each candidate's
/// tokens and wait go to its own iteration, and to the run's totals.
pub(crate) async fn generate_candidates<M: ModelPort>(
    model: &mut M,
    messages: &[ChatMessage],
    usage: &mut UsageTotals,
    iterations: &mut [Iteration],
) -> Result<Vec<Reply<CodeBundle>>, Halt> {
    let count = u32::try_from(iterations.len()).unwrap_or(u32::MAX);
    let number = iterations.first().map_or(1, |first| first.record.iteration);
    let answers = model
        .code_bundles(Purpose::Generate, number, messages, count)
        .await;
    let mut replies = Vec::new();
    for (answer, iteration) in answers.into_iter().zip(iterations.iter_mut()) {
        let reply = answer?;
        account(usage, iteration, &reply);
        replies.push(reply);
    }
    Ok(replies)
}

/// A reply that cannot be used is sent back once, with why; the second reply counts
/// whatever it is.
pub(crate) async fn reformat_unusable<M: ModelPort>(
    model: &mut M,
    mut messages: Vec<ChatMessage>,
    reply: Reply<CodeBundle>,
    usage: &mut UsageTotals,
    iteration: &mut Iteration,
) -> Result<Reply<CodeBundle>, Halt> {
    let Answer::Invalid(why) = &reply.answer else {
        return Ok(reply);
    };
    messages.push(message(
        Role::Assistant,
        excerpt(&reply.content, ASSISTANT_ECHO_BYTES),
    ));
    messages.push(message(Role::User, prompts::reformat(why)));
    let number = iteration.record.iteration;
    let reply = model
        .code_bundle(Purpose::Reformat, number, &messages)
        .await?;
    account(usage, iteration, &reply);
    Ok(reply)
}

/// The lock's bundle in place of a model's reply: no call, no tokens.
pub(crate) fn locked(bundle: &CodeBundle) -> Reply<CodeBundle> {
    Reply {
        answer: Answer::Parsed(bundle.clone()),
        usage: Default::default(),
        latency: std::time::Duration::ZERO,
        queued: std::time::Duration::ZERO,
        content: String::new(),
    }
}

/// The reply applied to the current bundle, or why it cannot be built.
pub(crate) fn validate(
    reply: &Reply<CodeBundle>,
    current: Option<&Bundle>,
    rules: &Rules<'_>,
    iteration: &mut Iteration,
) -> Result<Bundle, Halt> {
    match &reply.answer {
        Answer::Parsed(bundle) => {
            iteration.record.summary = bundle.summary.clone();
            Bundle::apply(current, bundle, rules).or_else(|problems| {
                end(
                    Outcome::InvalidBundle,
                    format!("invalid bundle: {}", problems.join("; ")),
                    feedback::invalid_bundle(&problems),
                )
            })
        }
        Answer::Refused(text) => end(
            Outcome::InvalidBundle,
            format!("the model refused: {}", excerpt(text, 300)),
            feedback::refused(text),
        ),
        Answer::Invalid(why) => end(
            Outcome::InvalidBundle,
            format!("unusable reply: {why}"),
            feedback::invalid_bundle(std::slice::from_ref(why)),
        ),
    }
}

/// Asks the model to judge the output against the conditions; a verdict that cannot
/// be used is asked for once more before it counts as a failed judgement. The verdict
/// joins the iteration's checks.
pub(crate) async fn judge<M: ModelPort>(
    job: &crate::job::Job,
    model: &mut M,
    checked: &Checked,
    usage: &mut UsageTotals,
    iteration: &mut Iteration,
) -> Result<(), Halt> {
    let question = prompts::judge(job, &checked.ran, &checked.stdout, &checked.stderr);
    let mut messages = vec![message(Role::User, question)];
    let mut verdict = CheckResult {
        group: DEFAULT_CASE.to_string(),
        name: "judge".to_string(),
        passed: false,
        detail: String::new(),
    };
    for attempt in 0..2 {
        let reply = model.verdict(iteration.record.iteration, &messages).await?;
        account(usage, iteration, &reply);
        verdict.detail = match reply.answer {
            Answer::Parsed(answer) => {
                verdict.passed = answer.pass;
                verdict.detail = answer.reason;
                break;
            }
            Answer::Refused(text) => format!("the judge refused: {text}"),
            Answer::Invalid(why) => format!("the judge's reply could not be used: {why}"),
        };
        if attempt == 0 {
            messages.push(message(Role::Assistant, excerpt(&reply.content, 8 * 1024)));
            messages.push(message(Role::User, prompts::rejudge(&verdict.detail)));
        }
    }
    let (passed, reason) = (verdict.passed, verdict.detail.clone());
    iteration.record.checks.push(verdict);
    if passed {
        return Ok(());
    }
    let headline =
        format!("The judge found that the output does not meet the conditions: {reason}");
    let failed: Vec<&CheckResult> = iteration
        .record
        .checks
        .iter()
        .filter(|check| !check.passed)
        .collect();
    let detail = format!("check `judge` failed: {}", crate::text::gist(&reason));
    let text = feedback::run(
        &checked.ran,
        &checked.stdout,
        &checked.stderr,
        &headline,
        &failed,
    );
    end(Outcome::ChecksFailed, detail, text)
}
