//! The `agent` command: arguments, settings resolution, wiring of the loop to the real
//! model client and engine, progress and report printing, exit codes.

mod args;
mod attest;
mod ci;
mod commands;
mod discovery;
mod engines;
pub mod env;
pub mod exit;
mod failure;
mod progress;
mod provenance;
mod publish;
mod settings;
mod shard;
mod summary;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};

/// Parses the command line, runs the command, prints any failure, and returns the
/// exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(exit::INFRASTRUCTURE);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => commands::run::run(args).await,
            Command::Check(args) => commands::check::check(args),
            Command::Verify(args) => commands::verify::verify(args).await,
            Command::Doctor(args) => commands::doctor::doctor(args).await,
            Command::Gc(args) => commands::gc::gc(args).await,
            Command::Report(args) => commands::report::report(args),
            Command::Schema(args) => commands::schema::schema(args),
        }
    });
    // Leftover blocking work (a stalled stdin writer, say) must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            failure.print();
            ExitCode::from(failure.code)
        }
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env(env::RUST_LOG)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
