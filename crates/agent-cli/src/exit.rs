//! The exit codes scripts rely on, as the user documentation lists them (docs/guide.md,
//! "Exit codes"; the README repeats them in one line).

/// Every spec verified (or `check` / `doctor` found nothing wrong).
pub const VERIFIED: u8 = 0;
/// At least one spec not verified within its budget.
pub const NOT_VERIFIED: u8 = 1;
/// Bad usage, config or spec, found before any model call.
pub const USAGE: u8 = 2;
/// Infrastructure failure: the engine or the model endpoint unreachable, auth refused.
pub const INFRASTRUCTURE: u8 = 3;
/// Stopped by Ctrl-C (128 + SIGINT), after cleaning up.
pub const INTERRUPTED: u8 = 130;
/// Stopped by SIGTERM (128 + SIGTERM), after cleaning up.
pub const TERMINATED: u8 = 143;
