//! `scripts/bench service`: a hidden pytest suite run through `Sandbox::run_suite` a
//! number of times on the engine `DOCKER_HOST` names: the files copied in, pytest run,
//! the JUnit file read back and graded. Prints the whole run (median and max) and the
//! tests graded; removes what it made. Usage: `suite-bench <image> <tests folder>
//! <rounds>`, the image holding what the tests import and pytest.

use std::collections::BTreeMap;
use std::time::Duration;

use agent_sandbox::junit::{self, Criteria};
use agent_sandbox::{LABEL_RUN, RunLimits, RunNetwork, Sandbox, SuiteRequest};

/// The suite's command: pytest over `/suite`, its JUnit file at `/tmp/junit.xml`.
const COMMAND: [&str; 8] = [
    "python3",
    "-m",
    "pytest",
    "-q",
    "-p",
    "no:cacheprovider",
    "/suite",
    "--junitxml=/tmp/junit.xml",
];

#[tokio::main]
async fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let [image, folder, rounds] = arguments.as_slice() else {
        eprintln!("usage: suite-bench <image> <tests folder> <rounds>");
        std::process::exit(2);
    };
    let rounds: usize = rounds.parse().expect("rounds is a number");
    let files = read_folder(folder);
    let docker_host = std::env::var("DOCKER_HOST").ok();
    let sandbox = Sandbox::connect(docker_host.as_deref())
        .await
        .expect("the engine answers");
    let run = format!("bench-suite-{}", std::process::id());
    let labels = BTreeMap::from([(LABEL_RUN.to_owned(), run.clone())]);
    let mut whole = Vec::new();
    let mut graded = 0;
    for _ in 0..rounds {
        let started = std::time::Instant::now();
        graded = one_round(&sandbox, image, &files, &labels).await;
        whole.push(started.elapsed());
    }
    sandbox
        .remove_labelled(LABEL_RUN, &run, None)
        .await
        .expect("cleanup");
    whole.sort();
    println!(
        "{:28} n={:3}  median {:7.1} ms  max {:7.1} ms  ({graded} tests graded)",
        "hidden suite via run_suite",
        whole.len(),
        whole[whole.len() / 2].as_secs_f64() * 1000.0,
        whole[whole.len() - 1].as_secs_f64() * 1000.0
    );
}

/// The files of `folder` (not below it): name → contents.
fn read_folder(folder: &str) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(folder)
        .expect("the tests folder")
        .map(|entry| {
            let path = entry.expect("an entry").path();
            let name = path
                .file_name()
                .expect("a name")
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read(&path).expect("a test file"))
        })
        .collect()
}

/// One run of the suite, graded; the number of tests graded. Panics unless it passed.
async fn one_round(
    sandbox: &Sandbox,
    image: &str,
    files: &BTreeMap<String, Vec<u8>>,
    labels: &BTreeMap<String, String>,
) -> usize {
    let command = COMMAND.map(str::to_owned);
    let outcome = sandbox
        .run_suite(SuiteRequest {
            image,
            command: &command,
            files,
            dest: "/suite",
            junit: "/tmp/junit.xml",
            junit_limit_bytes: 8 * 1024 * 1024,
            env: &BTreeMap::new(),
            labels,
            limits: RunLimits {
                memory_mb: 512,
                cpus: 1.0,
                pids: 128,
                network: RunNetwork::None,
                timeout: Duration::from_secs(120),
                output_limit_bytes: 64 * 1024,
                access: agent_sandbox::RunAccess::default(),
            },
        })
        .await
        .expect("the engine answers");
    let exit_code = outcome.run.as_ref().and_then(|run| run.exit_code);
    let grade = junit::grade(&outcome.junit, exit_code, &Criteria::default());
    assert!(grade.passed, "{:?}", grade.problems);
    grade.tests.len()
}
