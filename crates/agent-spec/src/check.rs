//! The checks: each kind judges one aspect of a built image or of what its container
//! did, one file per kind; `text` holds how they all word their details.

mod file;
mod image;
mod output;
mod probe;
mod result;
pub(crate) mod text;

pub use file::{ContentMatcher, FILE_GROUP, FileCheck, FileEntry, FileFacts, ls_mode};
pub(crate) use file::{TYPE_MASK, parse_ls_mode};
pub use image::{IMAGE_GROUP, ImageChecks, ImageFacts};
pub use output::{Check, Matcher, Observed};
pub use probe::{BodyExpectation, Probe, ProbeFacts, ProbeResponse};
pub use result::CheckResult;
pub use text::{ceil_boundary, excerpt, floor_boundary};
