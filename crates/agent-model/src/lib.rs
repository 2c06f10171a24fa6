//! The model client: chat-completion requests through async-openai with the strict
//! `code_bundle` and `verdict` schemas, retries with capped backoff, lenient parsing
//! for servers without schema support, one transcript line per call, and replay of a
//! recorded transcript in place of the endpoint.
//!
//! Modules, leaves first: `errors`, `message`, `schema` and `record` hold data types;
//! `answer` reads a recorded response; `backend` is the one model interface, answered
//! by `live` and `replay`; `session` records the transcript around either; `model` is
//! the facade the CLI holds.

mod answer;
mod backend;
mod errors;
mod live;
mod message;
mod model;
mod record;
mod replay;
mod schema;
mod session;
#[cfg(test)]
mod tests;
mod transcript;

pub use answer::{Answer, Reply};
pub use errors::{ModelError, error_chain};
pub use message::{ChatMessage, Purpose, Role, Usage};
pub use model::Model;
pub use schema::{BundleFile, CodeBundle, Verdict};
pub use session::ModelSession;
