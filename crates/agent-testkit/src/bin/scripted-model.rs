//! A scripted OpenAI-compatible server for demos, benchmarks and recording fixture
//! transcripts: answers the n-th chat completion with the n-th reply of a JSON file.
//!
//! Usage: `scripted-model <replies.json> [--cycle]`
//! The file holds an array of strings, each a reply's message content. With `--cycle`
//! the replies repeat; without, calls past the end get HTTP 500. Prints the base URL
//! on stdout, then serves until stdin closes or the process is stopped.

use agent_testkit::{ScriptedReply, ScriptedServer};
use tokio::io::AsyncReadExt;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: scripted-model <replies.json> [--cycle]");
        std::process::exit(2);
    };
    let cycle = args.any(|arg| arg == "--cycle");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| {
        eprintln!("error: cannot read `{path}`: {error}");
        std::process::exit(2);
    });
    let replies: Vec<String> = serde_json::from_str(&text).unwrap_or_else(|error| {
        eprintln!("error: `{path}` is not a JSON array of strings: {error}");
        std::process::exit(2);
    });
    let server = ScriptedServer::start_with(move |index, _| {
        let reply = if cycle && !replies.is_empty() {
            replies.get(index % replies.len())
        } else {
            replies.get(index)
        };
        match reply {
            Some(content) => ScriptedReply::Content(content.clone()),
            None => ScriptedReply::Raw {
                status: 500,
                headers: Vec::new(),
                body: "{\"error\":{\"message\":\"the script has no reply left\"}}".to_string(),
            },
        }
    })
    .await;
    println!("{}", server.base_url());
    // Serve until stdin closes (the caller ends us by closing it or by a signal).
    // Read and discard in a fixed buffer: whatever is piped in is never kept.
    let mut stdin = tokio::io::stdin();
    let mut buffer = [0u8; 4096];
    while matches!(stdin.read(&mut buffer).await, Ok(read) if read > 0) {}
    drop(server);
}
