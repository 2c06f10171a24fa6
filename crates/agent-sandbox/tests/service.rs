//! Services and hidden suites against the real Docker engine: a small JSON API probed
//! with no network, a service with nothing but a static httpd in its image, hostile
//! services (silent, mute, endless, deaf to SIGTERM, forking, flooding, crashing)
//! that each end as a bounded, reported outcome, and suites graded from the JUnit
//! file they wrote. Each test labels what it makes with its own run id and checks
//! that nothing with that label is left.

mod common;
use common::{build_labelled, built_image, sandbox, unique_run_id};

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use agent_sandbox::junit::{Criteria, JunitFile, Problem, grade};
use agent_sandbox::{
    DEFAULT_PROBE_IMAGE, LABEL_RUN, ProbeFailure, ProbeLimits, ProbeRequest, Readiness, ReadyEnd,
    RunLimits, RunNetwork, Sandbox, ServiceOutcome, ServiceRequest, StopEnd, SuiteOutcome,
    SuiteRequest,
};
use agent_testkit::BUSYBOX_IMAGE;

/// The python image with pytest that `scripts/base-images` makes.
const PYTEST_IMAGE: &str = "agent-base/python-pytest:3.11";
const LOG_LIMIT: usize = 64 * 1024;
const BODY_LIMIT: usize = 32 * 1024;

/// One label only: each label of a build is a committed step of its own.
fn labels(run: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(LABEL_RUN.to_owned(), run.to_owned())])
}

fn objects_labelled(kind: &str, run: &str) -> Vec<String> {
    let output = Command::new("docker")
        .args([kind, "-q", "--no-trunc", "--filter"])
        .arg(format!("label={LABEL_RUN}={run}"))
        .args(if kind == "ps" { &["-a"][..] } else { &[][..] })
        .output()
        .expect("the docker CLI runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn assert_no_container_left(run: &str) {
    let left = objects_labelled("ps", run);
    assert!(left.is_empty(), "containers left for `{run}`: {left:?}");
}

async fn clean_up(sandbox: &Sandbox, run: &str) {
    sandbox
        .remove_labelled(LABEL_RUN, run, None)
        .await
        .expect("cleanup");
    assert_no_container_left(run);
    let images = objects_labelled("images", run);
    assert!(images.is_empty(), "images left for `{run}`: {images:?}");
}

async fn build(sandbox: &Sandbox, run: &str, files: &[(&str, &[u8])]) -> String {
    let files: BTreeMap<String, Vec<u8>> = files
        .iter()
        .map(|(path, content)| ((*path).to_owned(), content.to_vec()))
        .collect();
    let (outcome, _) =
        build_labelled(sandbox, &files, &labels(run), Duration::from_secs(300)).await;
    built_image(&outcome)
}

/// A busybox image whose command runs the shell script in `$SCRIPT`.
async fn script_image(sandbox: &Sandbox, run: &str) -> String {
    let dockerfile =
        format!("FROM {BUSYBOX_IMAGE}\nCMD [\"sh\", \"-c\", \"eval \\\"$SCRIPT\\\"\"]\n");
    build(sandbox, run, &[("Dockerfile", dockerfile.as_bytes())]).await
}

fn limits() -> RunLimits {
    RunLimits {
        memory_mb: 128,
        cpus: 1.0,
        pids: 64,
        network: RunNetwork::None,
        timeout: Duration::from_secs(60),
        output_limit_bytes: LOG_LIMIT,
        access: agent_sandbox::RunAccess::default(),
    }
}

struct Service<'a> {
    image: &'a str,
    script: &'a str,
    readiness: Readiness,
    ready_timeout: Duration,
    probe_timeout: Duration,
}

async fn serve(
    sandbox: &Sandbox,
    run: &str,
    service: Service<'_>,
    probes: &[ProbeRequest],
) -> ServiceOutcome {
    let env = BTreeMap::from([("SCRIPT".to_owned(), service.script.to_owned())]);
    let labels = labels(run);
    let outcome = sandbox
        .serve(
            ServiceRequest {
                image: service.image,
                env: &env,
                labels: &labels,
                limits: limits(),
                port: 8080,
                readiness: service.readiness,
                ready_timeout: service.ready_timeout,
                stop_timeout: Duration::from_secs(2),
                probe_image: DEFAULT_PROBE_IMAGE,
                probe_limits: ProbeLimits {
                    timeout: service.probe_timeout,
                    body_limit_bytes: BODY_LIMIT,
                },
            },
            probes,
        )
        .await
        .expect("the engine answers");
    assert_no_container_left(run);
    outcome
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const JSON_API: &str = r#"
import json
from http.server import BaseHTTPRequestHandler, HTTPServer

class Api(BaseHTTPRequestHandler):
    def reply(self, status, value):
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/health":
            self.reply(200, {"status": "ok"})
        else:
            self.reply(404, {"error": "no such path"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        numbers = json.loads(self.rfile.read(length))
        self.reply(200, {"sum": numbers["a"] + numbers["b"]})

print("serving on 8080", flush=True)
HTTPServer(("127.0.0.1", 8080), Api).serve_forever()
"#;

#[tokio::test]
async fn a_json_api_is_probed_with_no_network() {
    let sandbox = sandbox().await;
    let run = unique_run_id("service-api");
    let dockerfile = format!(
        "FROM {}\nCOPY server.py /server.py\nCMD [\"python3\", \"/server.py\"]\n",
        agent_testkit::PYTHON_IMAGE
    );
    let image = build(
        &sandbox,
        &run,
        &[
            ("Dockerfile", dockerfile.as_bytes()),
            ("server.py", JSON_API.as_bytes()),
        ],
    )
    .await;
    let add = ProbeRequest {
        method: "POST".to_owned(),
        path: "/add".to_owned(),
        headers: BTreeMap::from([("content-type".to_owned(), "application/json".to_owned())]),
        body: br#"{"a": 2, "b": 3}"#.to_vec(),
    };
    let outcome = serve(
        &sandbox,
        &run,
        Service {
            image: &image,
            script: "",
            readiness: Readiness::Http {
                path: "/health".to_owned(),
            },
            ready_timeout: Duration::from_secs(30),
            probe_timeout: Duration::from_secs(10),
        },
        &[
            ProbeRequest::get("/health"),
            add,
            ProbeRequest::get("/missing"),
        ],
    )
    .await;
    assert_eq!(outcome.readiness.end, ReadyEnd::Ready, "{outcome:?}");
    assert!(outcome.readiness.attempts >= 1);
    let responses: Vec<_> = outcome
        .probes
        .iter()
        .map(|probe| probe.response.as_ref().expect("a response"))
        .collect();
    assert_eq!(responses[0].status, 200);
    assert_eq!(text(&responses[0].body.bytes), r#"{"status": "ok"}"#);
    assert_eq!(responses[1].status, 200);
    assert_eq!(text(&responses[1].body.bytes), r#"{"sum": 5}"#);
    assert!(
        responses[1]
            .headers
            .contains(&("content-type".to_owned(), "application/json".to_owned()))
    );
    assert_eq!(responses[2].status, 404);
    // Python's server logs each request on stderr: the logs were kept.
    assert!(text(&outcome.stdout.bytes).contains("serving on 8080"));
    assert!(text(&outcome.stderr.bytes).contains("\"POST /add HTTP/1.1\" 200"));
    assert_eq!(outcome.stop, Some(StopEnd::Terminated));
    clean_up(&sandbox, &run).await;
}

#[tokio::test]
async fn a_service_image_with_only_a_static_httpd_is_probed() {
    let sandbox = sandbox().await;
    let run = unique_run_id("service-scratch");
    let dockerfile = format!(
        "FROM {BUSYBOX_IMAGE} AS tools\nFROM scratch\nCOPY --from=tools /bin/busybox /busybox\n\
         COPY index.html /www/index.html\nCMD [\"/busybox\", \"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n"
    );
    let image = build(
        &sandbox,
        &run,
        &[
            ("Dockerfile", dockerfile.as_bytes()),
            ("index.html", b"hello from scratch\n"),
        ],
    )
    .await;
    let outcome = serve(
        &sandbox,
        &run,
        Service {
            image: &image,
            script: "",
            readiness: Readiness::Tcp,
            ready_timeout: Duration::from_secs(30),
            probe_timeout: Duration::from_secs(10),
        },
        &[
            ProbeRequest::get("/index.html"),
            ProbeRequest::get("/nothing"),
        ],
    )
    .await;
    assert_eq!(outcome.readiness.end, ReadyEnd::Ready, "{outcome:?}");
    let page = outcome.probes[0].response.as_ref().expect("a response");
    assert_eq!(page.status, 200);
    assert_eq!(text(&page.body.bytes), "hello from scratch\n");
    let missing = outcome.probes[1].response.as_ref().expect("a response");
    assert_eq!(missing.status, 404);
    clean_up(&sandbox, &run).await;
}

#[tokio::test]
async fn a_service_that_never_listens_times_out_with_its_attempts() {
    let sandbox = sandbox().await;
    let run = unique_run_id("service-silent");
    let image = script_image(&sandbox, &run).await;
    let started = Instant::now();
    let outcome = serve(
        &sandbox,
        &run,
        Service {
            image: &image,
            script: "echo up but not listening; sleep 1000",
            readiness: Readiness::Http {
                path: "/health".to_owned(),
            },
            // Long enough for two attempts on a loaded engine, where one exec takes a second.
            ready_timeout: Duration::from_secs(6),
            probe_timeout: Duration::from_secs(2),
        },
        &[ProbeRequest::get("/never")],
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let readiness = &outcome.readiness;
    assert_eq!(readiness.end, ReadyEnd::TimedOut, "{outcome:?}");
    assert!(readiness.attempts >= 2, "{readiness:?}");
    assert!(readiness.elapsed >= Duration::from_secs(6));
    let error = readiness.last_error.as_deref().expect("the last error");
    assert!(error.contains("Connection refused"), "{error}");
    assert!(outcome.probes.is_empty());
    assert_eq!(text(&outcome.stdout.bytes), "up but not listening\n");
    assert_eq!(outcome.stop, Some(StopEnd::Terminated));
    clean_up(&sandbox, &run).await;
}

#[tokio::test]
async fn a_service_that_listens_and_never_answers_ends_at_the_probe_deadline() {
    let sandbox = sandbox().await;
    let run = unique_run_id("service-mute");
    let image = script_image(&sandbox, &run).await;
    let outcome = serve(
        &sandbox,
        &run,
        Service {
            image: &image,
            // Every connection is accepted and handed to a `sleep` that never writes.
            script: "nc -ll -p 8080 -e sleep 1000",
            readiness: Readiness::Tcp,
            ready_timeout: Duration::from_secs(20),
            probe_timeout: Duration::from_secs(2),
        },
        &[ProbeRequest::get("/")],
    )
    .await;
    assert_eq!(outcome.readiness.end, ReadyEnd::Ready, "{outcome:?}");
    let probe = &outcome.probes[0];
    assert_eq!(probe.response, Err(ProbeFailure::TimedOut));
    assert!(probe.duration >= Duration::from_secs(2));
    assert!(
        probe.duration < Duration::from_secs(5),
        "{:?}",
        probe.duration
    );
    clean_up(&sandbox, &run).await;
}

#[tokio::test]
async fn an_endless_body_ends_at_the_cap_marked_as_cut() {
    let sandbox = sandbox().await;
    let run = unique_run_id("service-endless");
    let image = script_image(&sandbox, &run).await;
    let outcome = serve(
        &sandbox,
        &run,
        Service {
            image: &image,
            script: r#"nc -ll -p 8080 -e sh -c 'printf "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"; yes endless'"#,
            readiness: Readiness::Tcp,
            ready_timeout: Duration::from_secs(20),
            probe_timeout: Duration::from_secs(10),
        },
        &[ProbeRequest::get("/")],
    )
    .await;
    assert_eq!(outcome.readiness.end, ReadyEnd::Ready, "{outcome:?}");
    let response = outcome.probes[0].response.as_ref().expect("a response");
    assert_eq!(response.status, 200);
    assert!(response.body.truncated);
    assert_eq!(response.body.bytes.len(), BODY_LIMIT);
    assert!(text(&response.body.bytes).starts_with("endless\nendless\n"));
    assert!(outcome.probes[0].duration < Duration::from_secs(10));
    clean_up(&sandbox, &run).await;
}

#[tokio::test]
async fn a_service_that_ignores_sigterm_is_killed_after_the_stop_timeout() {
    let sandbox = sandbox().await;
    let run = unique_run_id("service-deaf");
    let image = script_image(&sandbox, &run).await;
    let started = Instant::now();
    let outcome = serve(
        &sandbox,
        &run,
        Service {
            image: &image,
            script: "trap '' TERM; echo ready; while :; do sleep 1; done",
            readiness: Readiness::Log(regex::Regex::new("^ready$").expect("pattern")),
            ready_timeout: Duration::from_secs(20),
            probe_timeout: Duration::from_secs(2),
        },
        &[],
    )
    .await;
    assert_eq!(outcome.readiness.end, ReadyEnd::Ready, "{outcome:?}");
    assert_eq!(outcome.readiness.attempts, 0);
    assert_eq!(outcome.stop, Some(StopEnd::Killed));
    assert_eq!(outcome.exit_code, Some(137));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    clean_up(&sandbox, &run).await;
}

#[tokio::test]
async fn a_service_that_forks_without_end_stays_within_its_pids() {
    let sandbox = sandbox().await;
    let run = unique_run_id("service-forks");
    let image = script_image(&sandbox, &run).await;
    let started = Instant::now();
    let outcome = serve(
        &sandbox,
        &run,
        Service {
            image: &image,
            // The storm runs in a subshell forked while pids are free, and `wait`
            // forks nothing, so the service outlives it (a failed fork ends a shell).
            script: "sleep 1000 & (bomb() { bomb | bomb & }; bomb) & wait",
            readiness: Readiness::Http {
                path: "/".to_owned(),
            },
            ready_timeout: Duration::from_secs(4),
            probe_timeout: Duration::from_secs(2),
        },
        &[],
    )
    .await;
    assert_eq!(outcome.readiness.end, ReadyEnd::TimedOut, "{outcome:?}");
    assert!(
        outcome.readiness.attempts >= 1,
        "the helper still got in: {outcome:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    clean_up(&sandbox, &run).await;
}

#[tokio::test]
async fn a_service_that_floods_its_logs_is_capped_and_a_late_ready_line_still_counts() {
    let sandbox = sandbox().await;
    let run = unique_run_id("service-flood");
    let image = script_image(&sandbox, &run).await;
    let outcome = serve(
        &sandbox,
        &run,
        Service {
            image: &image,
            script: "yes flood | head -n 700000; echo listening now; yes flood",
            readiness: Readiness::Log(regex::Regex::new("^listening now$").expect("pattern")),
            ready_timeout: Duration::from_secs(30),
            probe_timeout: Duration::from_secs(2),
        },
        &[],
    )
    .await;
    assert_eq!(
        outcome.readiness.end,
        ReadyEnd::Ready,
        "{:?}, {} bytes written",
        outcome.readiness,
        outcome.stdout.total_bytes
    );
    assert!(outcome.stdout.truncated);
    assert_eq!(outcome.stdout.bytes.len(), LOG_LIMIT);
    assert!(
        outcome.stdout.total_bytes > 4_000_000,
        "{}",
        outcome.stdout.total_bytes
    );
    clean_up(&sandbox, &run).await;
}

#[tokio::test]
async fn a_service_that_exits_during_readiness_fails_at_once_with_its_logs() {
    let sandbox = sandbox().await;
    let run = unique_run_id("service-crash");
    let image = script_image(&sandbox, &run).await;
    let started = Instant::now();
    let outcome = serve(
        &sandbox,
        &run,
        Service {
            image: &image,
            script: "echo 'Traceback: no config' >&2; exit 3",
            readiness: Readiness::Http {
                path: "/health".to_owned(),
            },
            ready_timeout: Duration::from_secs(60),
            probe_timeout: Duration::from_secs(2),
        },
        &[ProbeRequest::get("/")],
    )
    .await;
    assert_eq!(outcome.readiness.end, ReadyEnd::Exited, "{outcome:?}");
    assert!(outcome.readiness.elapsed < Duration::from_secs(10));
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(outcome.exit_code, Some(3));
    assert_eq!(outcome.stop, Some(StopEnd::AlreadyExited));
    assert_eq!(text(&outcome.stderr.bytes), "Traceback: no config\n");
    clean_up(&sandbox, &run).await;
}

const CALC: &str = "def add(a, b):\n    return a + b\n\ndef sub(a, b):\n    return a + b\n";

const TESTS: &str = "from calc import add, sub\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\
                     def test_sub():\n    assert sub(5, 3) == 2\n";

fn pytest_command(script: &str) -> Vec<String> {
    vec!["sh".to_owned(), "-c".to_owned(), script.to_owned()]
}

async fn run_suite(
    sandbox: &Sandbox,
    run: &str,
    image: &str,
    script: &str,
    calc: &str,
) -> SuiteOutcome {
    let files = BTreeMap::from([
        ("calc.py".to_owned(), calc.as_bytes().to_vec()),
        ("test_calc.py".to_owned(), TESTS.as_bytes().to_vec()),
    ]);
    let labels = labels(run);
    let outcome = sandbox
        .run_suite(SuiteRequest {
            image,
            command: &pytest_command(script),
            files: &files,
            dest: "/suite",
            junit: "/tmp/junit.xml",
            junit_limit_bytes: 1024 * 1024,
            env: &BTreeMap::new(),
            labels: &labels,
            limits: RunLimits {
                timeout: Duration::from_secs(30),
                ..limits()
            },
        })
        .await
        .expect("the engine answers");
    assert_no_container_left(run);
    outcome
}

const PYTEST: &str =
    "cd /suite && python3 -m pytest -q -p no:cacheprovider --junitxml=/tmp/junit.xml";

fn exit_code(outcome: &SuiteOutcome) -> Option<i64> {
    outcome.run.as_ref().and_then(|run| run.exit_code)
}

#[tokio::test]
async fn pytest_junit_output_is_read_back_and_graded() {
    let sandbox = sandbox().await;
    let run = unique_run_id("suite-pytest");
    let criteria = Criteria {
        min_tests: 2,
        required: vec!["test_add".to_owned()],
    };
    let failing = run_suite(&sandbox, &run, PYTEST_IMAGE, PYTEST, CALC).await;
    assert_eq!(exit_code(&failing), Some(1), "{failing:?}");
    let graded = grade(&failing.junit, exit_code(&failing), &criteria);
    assert!(!graded.passed);
    assert_eq!(
        graded.problems,
        [
            Problem::Failed("test_calc.test_sub".to_owned()),
            Problem::ExitCode(Some(1))
        ]
    );
    let sub = graded
        .tests
        .iter()
        .find(|test| test.name == "test_sub")
        .expect("test_sub");
    assert!(sub.output.contains("assert 8 == 2"), "{sub:?}");

    let fixed = CALC.replace(
        "def sub(a, b):\n    return a + b",
        "def sub(a, b):\n    return a - b",
    );
    let passing = run_suite(&sandbox, &run, PYTEST_IMAGE, PYTEST, &fixed).await;
    let graded = grade(&passing.junit, exit_code(&passing), &criteria);
    assert!(graded.passed, "{graded:?}\n{passing:?}");
    assert_eq!(graded.tests.len(), 2);
    clean_up(&sandbox, &run).await;
}

#[tokio::test]
async fn printed_passes_a_deleted_or_a_rewritten_junit_file_fail() {
    let sandbox = sandbox().await;
    let run = unique_run_id("suite-cheats");
    let criteria = Criteria {
        min_tests: 1,
        required: vec!["test_add".to_owned()],
    };
    // Exit 0 without running the suite, printing what a passing run prints.
    let printed = run_suite(
        &sandbox,
        &run,
        BUSYBOX_IMAGE,
        "echo '2 passed in 0.01s'; exit 0",
        CALC,
    )
    .await;
    assert_eq!(exit_code(&printed), Some(0));
    assert_eq!(printed.junit, JunitFile::Missing);
    assert_eq!(
        grade(&printed.junit, Some(0), &criteria).problems,
        [Problem::NoJunitFile]
    );
    // The suite ran and its file was deleted before the end.
    let deleted = run_suite(
        &sandbox,
        &run,
        PYTEST_IMAGE,
        &format!("{PYTEST}; rm /tmp/junit.xml; exit 0"),
        CALC,
    )
    .await;
    assert_eq!(deleted.junit, JunitFile::Missing);
    // The code under test rewrites the file when the process ends.
    let rewriting = format!(
        "{CALC}\nimport atexit\natexit.register(lambda: open('/tmp/junit.xml', 'w').write('<testsuites><testsuite name=\"x\"/></testsuites>'))\n"
    );
    let rewritten = run_suite(
        &sandbox,
        &run,
        PYTEST_IMAGE,
        &format!("{PYTEST}; exit 0"),
        &rewriting,
    )
    .await;
    assert_eq!(
        grade(&rewritten.junit, exit_code(&rewritten), &criteria).problems,
        [
            Problem::TooFewTests {
                ran: 0,
                min_tests: 1
            },
            Problem::RequiredMissing("test_add".to_owned())
        ]
    );
    clean_up(&sandbox, &run).await;
}

#[tokio::test]
async fn a_suite_is_bounded_by_its_timeout_and_a_missing_dest_parent_is_reported() {
    let sandbox = sandbox().await;
    let run = unique_run_id("suite-bounds");
    let started = Instant::now();
    let hung = sandbox
        .run_suite(SuiteRequest {
            image: BUSYBOX_IMAGE,
            command: &pytest_command("echo started; sleep 1000"),
            files: &BTreeMap::from([("a.txt".to_owned(), b"a".to_vec())]),
            dest: "/suite",
            junit: "/tmp/junit.xml",
            junit_limit_bytes: 1024,
            env: &BTreeMap::new(),
            labels: &labels(&run),
            limits: RunLimits {
                timeout: Duration::from_secs(2),
                ..limits()
            },
        })
        .await
        .expect("the engine answers");
    let ran = hung.run.as_ref().expect("it ran");
    assert!(ran.timed_out);
    assert_eq!(text(&ran.stdout.bytes), "started\n");
    assert_eq!(hung.junit, JunitFile::Missing);
    assert!(started.elapsed() < Duration::from_secs(15));

    let nowhere = sandbox
        .run_suite(SuiteRequest {
            image: BUSYBOX_IMAGE,
            command: &pytest_command("exit 0"),
            files: &BTreeMap::from([("a.txt".to_owned(), b"a".to_vec())]),
            dest: "/no/such/folder",
            junit: "/tmp/junit.xml",
            junit_limit_bytes: 1024,
            env: &BTreeMap::new(),
            labels: &labels(&run),
            limits: limits(),
        })
        .await
        .expect("the engine answers");
    assert!(nowhere.run.is_none());
    assert!(nowhere.copy_error.is_some(), "{nowhere:?}");
    clean_up(&sandbox, &run).await;
}

#[tokio::test]
async fn a_service_oom_killed_during_readiness_fails_at_once() {
    let sandbox = sandbox().await;
    let run = unique_run_id("service-oom");
    let image = script_image(&sandbox, &run).await;
    let outcome = serve(
        &sandbox,
        &run,
        Service {
            image: &image,
            // The pause lets the probe helper join first, so readiness is underway.
            script: "sleep 2; hog=$(head -c 400000000 /dev/zero | tr '\\0' x); sleep 1000",
            readiness: Readiness::Http {
                path: "/health".to_owned(),
            },
            ready_timeout: Duration::from_secs(60),
            probe_timeout: Duration::from_secs(2),
        },
        &[],
    )
    .await;
    assert_eq!(
        outcome.readiness.end,
        ReadyEnd::Exited,
        "{:?}",
        outcome.readiness
    );
    assert!(outcome.readiness.elapsed < Duration::from_secs(30));
    assert!(
        outcome.oom_killed,
        "{:?} {:?}",
        outcome.exit_code, outcome.readiness
    );
    clean_up(&sandbox, &run).await;
}

#[tokio::test]
async fn a_cancelled_service_leaves_nothing_behind() {
    let sandbox = sandbox().await;
    let run = unique_run_id("service-cancel");
    let image = script_image(&sandbox, &run).await;
    let env = BTreeMap::from([("SCRIPT".to_owned(), "sleep 1000".to_owned())]);
    let labels = labels(&run);
    let serving = sandbox.serve(
        ServiceRequest {
            image: &image,
            env: &env,
            labels: &labels,
            limits: limits(),
            port: 8080,
            readiness: Readiness::Tcp,
            ready_timeout: Duration::from_secs(60),
            stop_timeout: Duration::from_secs(2),
            probe_image: DEFAULT_PROBE_IMAGE,
            probe_limits: ProbeLimits {
                timeout: Duration::from_secs(2),
                body_limit_bytes: BODY_LIMIT,
            },
        },
        &[],
    );
    // Dropped mid-readiness, as Ctrl-C drops a run's future.
    let cancelled = tokio::time::timeout(Duration::from_secs(3), serving).await;
    assert!(cancelled.is_err(), "it was never ready");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !objects_labelled("ps", &run).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the service or its helper was left"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    clean_up(&sandbox, &run).await;
}

/// A plain `tcp://` engine: the local socket relayed from a loopback port, so the
/// probes' exec streams cross a TCP connection as they do to a remote engine.
async fn tcp_engine() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let socket = std::env::var("DOCKER_HOST")
                    .ok()
                    .and_then(|host| host.strip_prefix("unix://").map(str::to_owned))
                    .unwrap_or_else(|| "/var/run/docker.sock".to_owned());
                let mut engine = tokio::net::UnixStream::connect(socket)
                    .await
                    .expect("engine socket");
                let _ = tokio::io::copy_bidirectional(&mut client, &mut engine).await;
            });
        }
    });
    format!("tcp://{address}")
}

#[tokio::test]
async fn probes_reach_a_service_through_a_tcp_engine() {
    let local = sandbox().await;
    let sandbox = Sandbox::connect(Some(&tcp_engine().await))
        .await
        .expect("the relayed engine answers");
    let run = unique_run_id("service-tcp");
    let image = script_image(&local, &run).await;
    let outcome = serve(
        &sandbox,
        &run,
        Service {
            image: &image,
            script: "mkdir /www && echo relayed > /www/index.html && httpd -f -p 8080 -h /www",
            readiness: Readiness::Http {
                path: "/index.html".to_owned(),
            },
            ready_timeout: Duration::from_secs(20),
            probe_timeout: Duration::from_secs(5),
        },
        &[ProbeRequest::get("/index.html")],
    )
    .await;
    assert!(sandbox.engine().host.starts_with("tcp://127.0.0.1:"));
    assert_eq!(outcome.readiness.end, ReadyEnd::Ready, "{outcome:?}");
    let page = outcome.probes[0].response.as_ref().expect("a response");
    assert_eq!(text(&page.body.bytes), "relayed\n");
    clean_up(&local, &run).await;
}

#[tokio::test]
async fn a_missing_probe_image_is_an_error_naming_it_and_leaves_nothing() {
    let sandbox = sandbox().await;
    let run = unique_run_id("service-no-helper");
    let image = script_image(&sandbox, &run).await;
    let env = BTreeMap::from([("SCRIPT".to_owned(), "sleep 1000".to_owned())]);
    let labels = labels(&run);
    let result = sandbox
        .serve(
            ServiceRequest {
                image: &image,
                env: &env,
                labels: &labels,
                limits: limits(),
                port: 8080,
                readiness: Readiness::Tcp,
                ready_timeout: Duration::from_secs(10),
                stop_timeout: Duration::from_secs(2),
                probe_image: "agent-base/no-such-probe:1",
                probe_limits: ProbeLimits {
                    timeout: Duration::from_secs(2),
                    body_limit_bytes: BODY_LIMIT,
                },
            },
            &[],
        )
        .await;
    let error = result.expect_err("no helper can start");
    assert!(
        matches!(&error, agent_sandbox::SandboxError::CreateContainer { image, .. } if image == "agent-base/no-such-probe:1"),
        "{error:?}"
    );
    assert_no_container_left(&run);
    clean_up(&sandbox, &run).await;
}

#[tokio::test]
async fn a_service_that_exits_after_its_first_answer_fails_the_probes_as_refused() {
    let sandbox = sandbox().await;
    let run = unique_run_id("service-once");
    let image = script_image(&sandbox, &run).await;
    let outcome = serve(
        &sandbox,
        &run,
        Service {
            image: &image,
            // One connection, one answer (the readiness GET), then the script ends.
            script: r#"nc -l -p 8080 -e sh -c 'printf "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"'"#,
            readiness: Readiness::Http {
                path: "/health".to_owned(),
            },
            ready_timeout: Duration::from_secs(20),
            probe_timeout: Duration::from_secs(5),
        },
        &[ProbeRequest::get("/after")],
    )
    .await;
    assert_eq!(outcome.readiness.end, ReadyEnd::Ready, "{outcome:?}");
    match &outcome.probes[0].response {
        Err(ProbeFailure::Connect(said)) => assert!(said.contains("Connection refused"), "{said}"),
        other => panic!("expected a refused connection, got {other:?}"),
    }
    assert_eq!(outcome.stop, Some(StopEnd::AlreadyExited));
    assert_eq!(outcome.exit_code, Some(0));
    clean_up(&sandbox, &run).await;
}
