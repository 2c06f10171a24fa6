//! One spec with several cases, image and file checks, end to end: the adder CLI of
//! the user guide, a first bundle that fails a case and an image check, a repair
//! request naming both, a second bundle that passes, and the groups in every result.

use agent_testkit::{PYTHON_IMAGE, ScriptedReply, ScriptedServer};

use crate::support::*;

const ADDER_SPEC: &str = r#"
name = "adder"
prompt = """Write a Python CLI `add` that reads two integers from stdin and prints their sum.
Bad input prints an error to stderr and exits with code 2. `--help` prints usage."""
conditions = """The sum alone on stdout; exit code 2 and a message on stderr for bad input."""

[run]
env = { LANG = "C.UTF-8" }

[[check]]
stderr_not_contains = "Traceback"

[[case]]
name = "two numbers"
stdin = "3 4\n"
[[case.check]]
stdout_equals = "7"
[[case.check]]
exit_code = 0

[[case]]
name = "bad input"
stdin = "three four\n"
env = { MODE = "strict" }
timeout_secs = 10
[[case.check]]
exit_code = 2
[[case.check]]
stderr_contains = "error"

[[case]]
name = "help"
args = ["--help"]
[[case.check]]
stdout_matches = "(?i)^usage"

[image]
non_root = true
workdir = "/app"
entrypoint = ["python3", "/app/add.py"]
max_size_mb = 300

[[file]]
path = "/app/add.py"
mode = "-rw-r--r--"
uid = 0
contains = "def main"
"#;

fn adder(bad_input_code: u8) -> String {
    format!(
        "import sys\n\n\ndef main():\n    if '--help' in sys.argv[1:]:\n        print('usage: add < \"A B\"')\n        return 0\n    try:\n        a, b = (int(word) for word in sys.stdin.read().split())\n    except ValueError:\n        print('error: give two integers', file=sys.stderr)\n        return {bad_input_code}\n    print(a + b)\n    return 0\n\n\nsys.exit(main())\n"
    )
}

fn dockerfile(user: &str) -> String {
    format!(
        "FROM {PYTHON_IMAGE}\nWORKDIR /app\nCOPY add.py /app/add.py\n{user}ENTRYPOINT [\"python3\", \"/app/add.py\"]\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cli_with_three_cases_and_image_checks_is_repaired_from_both_failures() {
    require_engine();
    let first = bundle(Some(&dockerfile("")), &[("add.py", &adder(1))]);
    let fixed = bundle(Some(&dockerfile("USER 1000\n")), &[("add.py", &adder(2))]);
    let server = ScriptedServer::start_with(move |index, request| match index {
        0 => {
            let task = request.last_user_message();
            assert!(
                task.contains("Case `bad input`: stdin \"three four\\n\""),
                "{task}"
            );
            assert!(
                task.contains("USER is set to a user that is not root"),
                "{task}"
            );
            assert!(task.contains("WORKDIR is `/app`"), "{task}");
            ScriptedReply::Content(first.clone())
        }
        1 => {
            let repair = request.last_user_message();
            assert!(repair.contains("1 of 3 cases failed"), "{repair}");
            assert!(repair.contains("Case `bad input`"), "{repair}");
            assert!(repair.contains("Exit code: 1"), "{repair}");
            assert!(
                !repair.contains("Case `two numbers`"),
                "only failed cases: {repair}"
            );
            assert!(
                repair.contains("non_root") || repair.contains("non-root"),
                "{repair}"
            );
            ScriptedReply::Content(fixed.clone())
        }
        _ => panic!("no third call expected"),
    })
    .await;
    let workspace = Workspace::new(&server.base_url(), "", "");
    let spec = workspace.spec("adder", ADDER_SPEC);
    let output = run_to_verified(&workspace, &server, &spec).await;

    let report = workspace.report("adder");
    let first = &report["history"][0];
    assert_eq!(first["outcome"], "checks_failed");
    let failed: Vec<(String, String, bool)> = checks_of(&report, 0)
        .into_iter()
        .filter(|(.., passed)| !passed)
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert_eq!(failed[0].0, "bad input");
    assert_eq!(failed[1].0, "image");
    let second = &report["history"][1];
    assert_eq!(second["outcome"], "passed");
    let groups: std::collections::BTreeSet<&str> = second["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|check| check["group"].as_str().unwrap())
        .collect();
    assert_eq!(
        groups.into_iter().collect::<Vec<_>>(),
        ["bad input", "file", "help", "image", "two numbers"]
    );

    let cases: Vec<(&str, i64)> = second["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|case| {
            (
                case["name"].as_str().unwrap(),
                case["exit_code"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(cases, [("two numbers", 0), ("bad input", 2), ("help", 0)]);

    let summary: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    assert_eq!(summary["specs"][0]["checks"][0]["group"], "two numbers");
    let junit = std::fs::read_to_string(workspace.path().join("junit.xml")).unwrap();
    for classname in [
        "adder.two numbers",
        "adder.bad input",
        "adder.help",
        "adder.image",
        "adder.file",
    ] {
        assert!(
            junit.contains(&format!("classname=\"{classname}\"")),
            "{classname}: {junit}"
        );
    }
    output.assert_stderr_has("CHECKS");
    let run_dir = workspace.run_dir("adder");
    let bad_input =
        std::fs::read_to_string(run_dir.join("iterations/1/cases/2/stderr.txt")).unwrap();
    assert!(
        bad_input.contains("error: give two integers"),
        "{bad_input}"
    );
    let page = std::fs::read_to_string(run_dir.join("report.html")).unwrap();
    // Iteration 1 comes first on the page: its failed groups, then its passed ones.
    let groups: Vec<&str> = page
        .split("<p class=\"group-name\">")
        .skip(1)
        .map(|rest| rest.split(" <span").next().unwrap())
        .take(5)
        .collect();
    assert_eq!(
        groups,
        ["bad input", "image", "two numbers", "help", "file"]
    );
    assert!(page.contains("check-group failed\"><p class=\"group-name\">bad input"));
    assert_run_cleaned_up(&report);
}
