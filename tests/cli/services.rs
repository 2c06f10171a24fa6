//! The image as a service, end to end: the JSON API of the user guide (`GET /health`,
//! `POST /add`) with no network, a first bundle whose sum is wrong, a repair request
//! that shows the probe's request and response, a second bundle that passes; on the
//! local engine and on a tcp one. And a service that never becomes ready, fed back
//! with what readiness tried and its logs.

use agent_testkit::{PYTHON_IMAGE, ScriptedReply, ScriptedServer};

use crate::support::*;

const SUMS_SPEC: &str = r#"
name = "sums"
prompt = """A small JSON API on port 8080: `GET /health` answers 200, `POST /add` takes
{"a": A, "b": B} and answers {"sum": A+B}."""
conditions = """JSON answers; no traceback in the logs."""

[service]
port = 8080
ready_http = "/health"
ready_timeout_secs = 30
stop_timeout_secs = 3

[[probe]]
name = "health"
path = "/health"

[[probe]]
name = "add"
method = "POST"
path = "/add"
headers = { "content-type" = "application/json" }
body = '{"a": 2, "b": 3}'
status = 200
json = { sum = 5 }

[[check]]
stderr_not_contains = "Traceback"
"#;

/// The API in Python's standard library; `op` joins `a` and `b`.
fn api(op: &str) -> String {
    format!(
        r#"import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            self.reply(200, {{"ok": True}})
        else:
            self.reply(404, {{"error": "not found"}})

    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        data = json.loads(self.rfile.read(length) or b"{{}}")
        self.reply(200, {{"sum": data["a"] {op} data["b"]}})

    def reply(self, status, value):
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


print("listening on 8080", flush=True)
ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
"#
    )
}

fn api_dockerfile() -> String {
    format!(
        "FROM {PYTHON_IMAGE}\nWORKDIR /app\nCOPY api.py /app/api.py\nEXPOSE 8080\nCMD [\"python3\", \"-u\", \"/app/api.py\"]\n"
    )
}

/// A model that first writes the API with `-` for `+`, then fixes it; it asserts what
/// the task and the repair request say.
async fn sums_model() -> ScriptedServer {
    let wrong = bundle(Some(&api_dockerfile()), &[("api.py", &api("-"))]);
    let right = bundle(Some(&api_dockerfile()), &[("api.py", &api("+"))]);
    ScriptedServer::start_with(move |index, request| match index {
        0 => {
            let task = request.last_user_message();
            for wanted in [
                "long-running service",
                "port 8080",
                "no network access at run time",
                "`GET /health` answers with a 2xx status",
                "`add` `POST /add`, header `content-type: application/json`",
                "a JSON body holding {\"sum\":5}",
            ] {
                assert!(task.contains(wanted), "`{wanted}` in {task}");
            }
            ScriptedReply::Content(wrong.clone())
        }
        1 => {
            let repair = request.last_user_message();
            for wanted in [
                "Probe `add`:",
                "POST /add",
                "Response: status 200",
                "{\"sum\": -1}",
                "content-type: application/json",
                "listening on 8080",
            ] {
                assert!(repair.contains(wanted), "`{wanted}` in {repair}");
            }
            assert!(
                !repair.contains("Probe `health`"),
                "only failed probes: {repair}"
            );
            ScriptedReply::Content(right.clone())
        }
        _ => panic!("no third call expected"),
    })
    .await
}

/// Verifies the JSON API as spec `name` on the engine at `url` (`engine` is where its
/// images land). Tests side by side use their own names: the verified image's tag is
/// the spec's name and digest.
async fn sums_verify_on(engine: &Engine, url: &str, name: &str) {
    let server = sums_model().await;
    let workspace = Workspace::new(&server.base_url(), "", "");
    let config = workspace.path().join("agent.toml");
    if url != Engine::main().url {
        let text = std::fs::read_to_string(&config)
            .unwrap()
            .replace("[docker]\n", &format!("[docker]\nengines = [\"{url}\"]\n"));
        std::fs::write(&config, text).unwrap();
    }
    let spec = workspace.spec(
        name,
        &SUMS_SPEC.replace("name = \"sums\"", &format!("name = \"{name}\"")),
    );
    let _ = run_to_verified(&workspace, &server, &spec).await;

    let report = workspace.report(name);
    assert_eq!(report["verified"], true);
    assert_eq!(report["history"][0]["outcome"], "checks_failed");
    let failed: Vec<(String, String, bool)> = checks_of(&report, 0)
        .into_iter()
        .filter(|(.., passed)| !passed)
        .collect();
    assert_eq!(failed, vec![("probe:add".into(), "json".into(), false)]);
    let expected: Vec<(String, String, bool)> = [
        ("service", "ready"),
        ("probe:health", "status"),
        ("probe:add", "status"),
        ("probe:add", "json"),
        ("service", "stderr_not_contains"),
    ]
    .iter()
    .map(|(group, check)| ((*group).to_owned(), (*check).to_owned(), true))
    .collect();
    assert_eq!(checks_of(&report, 1), expected);
    let junit = std::fs::read_to_string(workspace.path().join("junit.xml")).unwrap();
    assert!(
        junit.contains(&format!("classname=\"{name}.probe:add\"")),
        "{junit}"
    );
    // The service's logs stand where a run's output is kept.
    let stdout =
        std::fs::read_to_string(workspace.run_dir(name).join("iterations/2/stdout.txt")).unwrap();
    assert!(stdout.contains("listening on 8080"), "{stdout}");
    engine.assert_run_cleaned_up(&report);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_json_api_is_repaired_from_its_probe_and_verified_with_no_network() {
    require_engine();
    let main = Engine::main();
    sums_verify_on(&main, &main.url, "sums").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_json_api_verifies_through_a_tcp_engine() {
    require_engine();
    let relay = tcp_relay().await;
    sums_verify_on(&Engine::main(), &relay, "sums-over-tcp").await;
}

/// A tcp engine: a relay on 127.0.0.1 to the main engine's socket, for as long as the
/// test runs.
async fn tcp_relay() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut engine) =
                    tokio::net::UnixStream::connect("/var/run/docker.sock").await
                {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut engine).await;
                }
            });
        }
    });
    format!("tcp://{address}")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_that_never_listens_is_fed_back_with_what_readiness_tried_and_its_logs() {
    require_engine();
    let deaf = bundle(
        Some(&format!(
            "FROM {PYTHON_IMAGE}\nCMD [\"sh\", \"-c\", \"echo starting up; sleep 1000\"]\n"
        )),
        &[],
    );
    let server = ScriptedServer::start_with(move |index, request| match index {
        0 => ScriptedReply::Content(deaf.clone()),
        _ => {
            let repair = request.last_user_message();
            for wanted in [
                "It never became ready: not ready within 4 s, waiting for GET /health until a 2xx",
                "Connection refused",
                "starting up",
                "Probe `health`:",
                "not sent: the service was not ready",
            ] {
                assert!(repair.contains(wanted), "`{wanted}` in {repair}");
            }
            ScriptedReply::Content(deaf.clone())
        }
    })
    .await;
    let workspace = Workspace::new(&server.base_url(), "", "max_iterations = 2");
    let spec = workspace.spec(
        "deaf",
        "prompt = \"p\"\nconditions = \"c\"\n[service]\nport = 8080\nready_http = \"/health\"\n\
         ready_timeout_secs = 4\nstop_timeout_secs = 1\n[[probe]]\nname = \"health\"\npath = \"/health\"\n",
    );
    let output = agent(&workspace, &["run", spec.to_str().unwrap()]).await;
    assert_eq!(
        server.panics(),
        Vec::<String>::new(),
        "the script's expectations"
    );
    output.assert_code(1);
    let report = workspace.report("deaf");
    assert_eq!(report["verified"], false);
    let first = &report["history"][0];
    assert_eq!(first["outcome"], "checks_failed");
    let detail = first["detail"].as_str().unwrap();
    assert!(detail.contains("`ready`"), "{detail}");
    Engine::main().assert_run_cleaned_up(&report);
}
