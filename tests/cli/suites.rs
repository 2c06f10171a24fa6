//! A hidden test suite, end to end, as HumanEval checks a candidate: pytest files
//! beside the spec that the model never sees, run against the built image, graded
//! from their JUnit file; a first bundle that fails one test, a repair request with
//! that test's name and output and none of the files, a second bundle that passes.
//! And a suite beside a service: both verified in every iteration, and only what
//! failed fed back.

use agent_testkit::{PYTHON_IMAGE, ScriptedReply, ScriptedServer};

use crate::support::*;

const CALC_SPEC: &str = r#"
name = "calc"
prompt = """Write /app/calc.py with `add(a, b)` and `sub(a, b)` for integers."""
conditions = """Hidden tests import calc from /app."""

[[suite]]
name = "unit"
files = ["hidden_tests/"]
dest = "/suite"
command = ["python3", "-m", "pytest", "-q", "-p", "no:cacheprovider", "/suite", "--junitxml=/tmp/junit.xml"]
junit = "/tmp/junit.xml"
required = ["test_add"]
min_tests = 2
timeout_secs = 60
"#;

/// The hidden file: its first line is a marker that must never reach the model.
const HIDDEN_TESTS: &str = "# hidden-marker-5f1c: never shown to the model\nimport sys\n\nsys.path.insert(0, \"/app\")\nfrom calc import add, sub\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\ndef test_sub():\n    assert sub(5, 3) == 2, \"sub(5, 3) must be 2\"\n";

fn calc(sub: &str) -> String {
    format!("def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return {sub}\n")
}

fn dockerfile() -> String {
    format!("FROM {PYTHON_IMAGE}\nWORKDIR /app\nCOPY calc.py /app/calc.py\n")
}

/// A workspace holding `hidden_tests/test_calc.py` beside spec `name`, run to verified.
async fn verified_with_hidden_tests(server: &ScriptedServer, name: &str, text: &str) -> Workspace {
    let workspace = Workspace::new(&server.base_url(), "", "");
    std::fs::create_dir(workspace.path().join("hidden_tests")).unwrap();
    std::fs::write(
        workspace.path().join("hidden_tests/test_calc.py"),
        HIDDEN_TESTS,
    )
    .unwrap();
    let spec = workspace.spec(name, text);
    let _ = run_to_verified(&workspace, server, &spec).await;
    workspace
}

#[tokio::test(flavor = "multi_thread")]
async fn a_humaneval_style_task_verifies_against_hidden_tests_it_never_saw() {
    require_engine();
    let wrong = bundle(Some(&dockerfile()), &[("calc.py", &calc("a + b"))]);
    let right = bundle(Some(&dockerfile()), &[("calc.py", &calc("a - b"))]);
    let server = ScriptedServer::start_with(move |index, request| {
        let everything = request.all_text();
        assert!(
            !everything.contains("hidden-marker-5f1c"),
            "a hidden file reached the model: {everything}"
        );
        match index {
            0 => {
                let task = request.last_user_message();
                assert!(task.contains("Hidden test suites you cannot see"), "{task}");
                assert!(task.contains("`unit`: its files are copied to `/suite`"), "{task}");
                ScriptedReply::Content(wrong.clone())
            }
            1 => {
                let repair = request.last_user_message();
                for wanted in [
                    "The hidden test suite `unit` (you cannot see its files) did not pass: 1 of 2 tests failed",
                    "Test `",
                    "test_sub` failed",
                    "sub(5, 3) must be 2",
                ] {
                    assert!(repair.contains(wanted), "`{wanted}` in {repair}");
                }
                assert!(!repair.contains("test_add` failed"), "{repair}");
                ScriptedReply::Content(right.clone())
            }
            _ => panic!("no third call expected"),
        }
    })
    .await;
    let workspace = verified_with_hidden_tests(&server, "calc", CALC_SPEC).await;

    let report = workspace.report("calc");
    assert_eq!(report["verified"], true);
    let first = checks_of(&report, 0);
    assert_eq!(report["history"][0]["outcome"], "checks_failed");
    assert_eq!(first.len(), 3, "{first:?}");
    assert!(
        first.iter().all(|(group, ..)| group == "suite:unit"),
        "{first:?}"
    );
    assert!(
        first
            .iter()
            .any(|(_, name, passed)| name.ends_with("test_sub") && !passed),
        "{first:?}"
    );
    assert!(
        first
            .iter()
            .any(|(_, name, passed)| name.ends_with("test_add") && *passed),
        "{first:?}"
    );
    assert!(first.contains(&("suite:unit".to_owned(), "grade".to_owned(), false)));
    let last = checks_of(&report, 1);
    assert!(last.iter().all(|(.., passed)| *passed), "{last:?}");
    let grade = report["history"][1]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|check| check["name"] == "grade")
        .unwrap();
    assert_eq!(grade["detail"], "2 of 2 tests passed");
    let suite = &report["history"][0]["suites"][0];
    assert_eq!(suite["name"], "unit");
    assert_eq!(suite["passed"], false);
    assert_eq!(suite["exit_code"], 1);
    let tests: Vec<(&str, bool)> = suite["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|test| {
            (
                test["name"].as_str().unwrap(),
                test["passed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(tests, vec![("test_add", true), ("test_sub", false)]);
    let failed = &suite["tests"][1];
    assert!(
        failed["classname"].as_str().unwrap().ends_with("test_calc"),
        "{failed}"
    );
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("sub(5, 3) must be 2"),
        "{failed}"
    );
    let junit = std::fs::read_to_string(workspace.path().join("junit.xml")).unwrap();
    assert!(junit.contains("classname=\"calc.suite:unit\""), "{junit}");

    // The hidden files are in no build context and not in the verified image.
    for iteration in ["1", "2"] {
        let bundle = workspace
            .run_dir("calc")
            .join("iterations")
            .join(iteration)
            .join("bundle");
        let names: Vec<String> = files_below(&bundle)
            .iter()
            .map(|path| path.to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().all(|name| !name.contains("test_calc")),
            "{names:?}"
        );
    }
    let image = report["image"].as_str().unwrap();
    let listing = std::process::Command::new("docker")
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "ls",
            image,
            "/suite",
        ])
        .output()
        .unwrap();
    assert!(!listing.status.success(), "the image holds /suite");

    // The run directory holds the hidden files: moved away from the original, it
    // verifies the suite again, without the model.
    let moved = tempfile::tempdir().unwrap();
    let run_dir = moved.path().join("calc-run");
    std::fs::rename(workspace.run_dir("calc"), &run_dir).unwrap();
    std::fs::remove_dir_all(workspace.path().join("hidden_tests")).unwrap();
    assert!(run_dir.join("spec/hidden_tests/test_calc.py").is_file());
    let output = agent(&workspace, &["verify", run_dir.to_str().unwrap(), "--json"]).await;
    output.assert_code(0);
    let verified: serde_json::Value = serde_json::from_str(&output.stdout).expect("verify --json");
    assert_eq!(verified["verified"], true, "{verified}");
    assert_eq!(check_fields(&verified, "group"), vec!["suite:unit"; 3]);
    assert_eq!(server.requests().len(), 2, "verify asks no model");
    Engine::main().assert_run_cleaned_up(&report);
}

/// The calc module, also served over HTTP: a service and a hidden suite in one spec.
const SERVED_CALC_SPEC: &str = r#"
name = "served-calc"
prompt = """Write /app/calc.py with `add(a, b)` and `sub(a, b)`, and serve /app over HTTP on port 8080."""
conditions = """GET /calc.py answers the module; hidden tests import calc from /app."""

[service]
port = 8080
ready_http = "/"
ready_timeout_secs = 30
stop_timeout_secs = 3

[[probe]]
name = "module"
path = "/calc.py"
body_contains = "def add"

[[suite]]
name = "unit"
files = ["hidden_tests/"]
dest = "/suite"
command = ["python3", "-m", "pytest", "-q", "-p", "no:cacheprovider", "/suite", "--junitxml=/tmp/junit.xml"]
junit = "/tmp/junit.xml"
min_tests = 2
timeout_secs = 60
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_service_and_a_hidden_suite_in_one_spec_are_both_verified_each_iteration() {
    require_engine();
    let dockerfile = format!(
        "FROM {PYTHON_IMAGE}\nWORKDIR /app\nCOPY calc.py /app/calc.py\nCMD [\"python3\", \"-m\", \"http.server\", \"8080\", \"--directory\", \"/app\"]\n"
    );
    let wrong = bundle(Some(&dockerfile), &[("calc.py", &calc("a + b"))]);
    let right = bundle(None, &[("calc.py", &calc("a - b"))]);
    let server = ScriptedServer::start_with(move |index, request| match index {
        0 => ScriptedReply::Content(wrong.clone()),
        1 => {
            // The service passed: only the suite is fed back.
            let repair = request.last_user_message();
            assert!(repair.contains("test_sub` failed"), "{repair}");
            assert!(!repair.contains("Probe `module`"), "{repair}");
            ScriptedReply::Content(right.clone())
        }
        _ => panic!("no third call expected"),
    })
    .await;
    let workspace = verified_with_hidden_tests(&server, "served-calc", SERVED_CALC_SPEC).await;

    let report = workspace.report("served-calc");
    for (iteration, suite_passed) in [(0, false), (1, true)] {
        let checks = checks_of(&report, iteration);
        let passed = |group: &str, name: &str| {
            checks
                .iter()
                .find(|(g, n, _)| g == group && n == name)
                .map(|(.., passed)| *passed)
        };
        assert_eq!(passed("service", "ready"), Some(true), "{checks:?}");
        assert_eq!(passed("probe:module", "status"), Some(true), "{checks:?}");
        assert_eq!(
            passed("suite:unit", "grade"),
            Some(suite_passed),
            "{checks:?}"
        );
        assert_eq!(
            report["history"][iteration]["suites"][0]["passed"],
            suite_passed
        );
    }
    Engine::main().assert_run_cleaned_up(&report);
}
