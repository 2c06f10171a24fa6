//! The model client: chat-completion requests through async-openai with the strict
//! `code_bundle` and `verdict` schemas, retries with capped backoff, lenient parsing
//! for servers without schema support, one transcript line per call, and replay of a
//! recorded transcript in place of the endpoint.

mod errors;
mod live;
mod model;
mod reply;
mod schema;
#[cfg(test)]
mod tests;
mod transcript;

pub use errors::ModelError;
pub use model::{Answer, ChatMessage, Model, ModelSession, Purpose, Reply, Role, Usage};
pub use schema::{BundleFile, CodeBundle, Verdict};
