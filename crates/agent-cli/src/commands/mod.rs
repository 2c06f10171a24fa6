//! One module per subcommand.

pub mod attestation;
pub mod check;
pub mod doctor;
pub mod gc;
pub mod report;
pub mod run;
pub mod schema;
pub mod verify;
