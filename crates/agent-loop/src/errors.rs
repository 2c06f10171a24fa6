//! Errors that stop a spec's run: the engine or the model endpoint failed, or the run
//! directory could not be written. A program that never passes is not an error.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    #[error(transparent)]
    Model(#[from] agent_model::ModelError),
    #[error(transparent)]
    Engine(#[from] agent_sandbox::SandboxError),
    #[error("cannot write `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read input `{path}`")]
    Input {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read hidden test file `{path}` of suite `{suite}`")]
    SuiteFile {
        suite: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read prompt template `{path}`")]
    Prompt {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read or write the lock `{path}`")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the base image `{reference}` the lock pins is neither on the engine nor pullable")]
    BaseUnavailable {
        reference: String,
        #[source]
        source: Option<Box<agent_sandbox::SandboxError>>,
    },
    #[error("cannot pull the base image `{image}` again")]
    BaseRefresh {
        image: String,
        #[source]
        source: Box<agent_sandbox::SandboxError>,
    },
    #[error("cannot label the verified image `{image}`: {reason}")]
    Seal { image: String, reason: String },
}
