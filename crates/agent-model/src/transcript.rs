//! `transcript.jsonl`: one line per model call (request, response, usage, latency),
//! and reading it back for replay.
