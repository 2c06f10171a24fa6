//! The `agent` binary end to end.
