//! Signed attestations of verified images: in-toto Statements (`statement`), DSSE
//! envelopes signed and checked with ECDSA P-256 keys (`dsse`, `keys`), the
//! distribution API as far as attestations need it (`reference`, `registry`), cosign's
//! `sha256-<hex>.att` tag of envelopes (`store`), and the check a deploy gate makes
//! (`verify`).
//!
//! Modules, bottom up: `errors`, `reference` and `refusal` are leaves; `keys` holds the keys,
//! `dsse` signs and opens envelopes with them, `statement` writes what is attested;
//! `registry` speaks HTTP to a registry, `store` reads and adds to the `.att` tag
//! through it, and `verify` judges what `store` read.

mod dsse;
mod errors;
mod keys;
mod reference;
mod refusal;
mod registry;
mod statement;
mod store;
mod verify;

pub use dsse::{Envelope, PAYLOAD_TYPE, Signed};
pub use errors::AttestError;
pub use keys::{PublicKey, SigningKey};
pub use reference::ImageReference;
pub use refusal::Refusal;
pub use registry::{Login, Registry};
pub use statement::{
    BuildFacts, PROVENANCE, ResourceDescriptor, STATEMENT_TYPE, Statement, Subject, TEST_RESULT,
    TestFacts, provenance_statement, test_result_statement,
};
pub use store::{ENVELOPE_MEDIA_TYPE, Stored, attach, attestation_tag, fetch, resolve};
pub use verify::{Attested, Expectation, Verdict, judge};
