//! The user-facing text of errors and listings, as snapshots (temp paths filtered).

use agent_testkit::ScriptedServer;

use crate::support::*;

fn filtered(workspace: &Workspace, text: &str) -> String {
    text.replace(&workspace.path().display().to_string(), "[WORKSPACE]")
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_in_a_spec_name_the_place_and_what_is_allowed() {
    let server = ScriptedServer::start(vec![]).await;
    let workspace = Workspace::new(&server.base_url(), "", "");
    let unknown = workspace.spec(
        "unknown",
        "prompt = \"p\"\nconditions = \"c\"\n\n[[check]]\nstdout_equal = \"x\"\n",
    );
    let two = workspace.spec(
        "two",
        "prompt = \"p\"\nconditions = \"c\"\n\n[[check]]\nexit_code = 0\nstdout_contains = \"x\"\n",
    );
    let regex = workspace.spec(
        "regex",
        "prompt = \"p\"\nconditions = \"c\"\n\n[[check]]\nstdout_matches = \"(open\"\n",
    );
    let output = agent(
        &workspace,
        &[
            "check",
            unknown.to_str().unwrap(),
            two.to_str().unwrap(),
            regex.to_str().unwrap(),
        ],
    )
    .await;
    output.assert_code(2);
    insta::assert_snapshot!(filtered(&workspace, &output.stderr));
}

/// A bad `name`, an unknown key and a string where a list goes: three errors in one
/// run, in file order, each with its place; `run` stops on them before any model call.
#[tokio::test(flavor = "multi_thread")]
async fn every_error_of_a_spec_in_one_run() {
    let server = ScriptedServer::start(vec![]).await;
    let workspace = Workspace::new(&server.base_url(), "", "");
    let spec = workspace.spec(
        "three",
        "name = \"Three Mistakes\"\nprompt = \"p\"\nconditions = \"c\"\n\n[run]\nargs = \"x\"\n\n\
         [[check]]\nstdout_equal = \"x\"\n",
    );
    for command in ["check", "run"] {
        let output = agent(&workspace, &[command, spec.to_str().unwrap()]).await;
        output.assert_code(2);
        assert_eq!(
            output.stderr.matches("error: ").count(),
            3,
            "{command}: {}",
            output.stderr
        );
        if command == "check" {
            insta::assert_snapshot!(filtered(&workspace, &output.stderr));
        }
    }
    assert!(server.requests().is_empty(), "no model call");
}

/// `agent.toml`'s errors, all of them in one run.
#[tokio::test(flavor = "multi_thread")]
async fn every_error_of_the_config_in_one_run() {
    let workspace = Workspace::new(
        "http://127.0.0.1:9/v1",
        "temprature = 0.1",
        "cpus = \"two\"",
    );
    let spec = workspace.spec(
        "hello",
        "prompt = \"p\"\nconditions = \"c\"\n[[check]]\nexit_code = 0\n",
    );
    let output = agent(&workspace, &["check", spec.to_str().unwrap()]).await;
    output.assert_code(2);
    insta::assert_snapshot!(filtered(&workspace, &output.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_engine_says_what_to_do() {
    let workspace = Workspace::new("http://127.0.0.1:9/v1", "", "");
    let spec = workspace.spec(
        "hello",
        "prompt = \"p\"\nconditions = \"c\"\n[[check]]\nexit_code = 0\n",
    );
    let mut command = agent_command(&workspace, &["run", spec.to_str().unwrap()]);
    command.env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
    let output = run_agent(&mut command).await;
    output.assert_code(3);
    insta::assert_snapshot!(filtered(&workspace, &output.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn check_lists_each_spec_on_stdout() {
    let workspace = Workspace::new("http://127.0.0.1:9/v1", "", "max_iterations = 3");
    let judged = workspace.spec("judged", "prompt = \"p\"\nconditions = \"c\"\n");
    let checked = workspace.spec(
        "checked",
        "prompt = \"p\"\nconditions = \"c\"\n[limits]\nmax_iterations = 5\n[[check]]\nexit_code = 0\n[[check]]\nstdout_contains = \"x\"\n",
    );
    let single = workspace.spec(
        "single",
        "prompt = \"p\"\nconditions = \"c\"\n[limits]\nmax_iterations = 1\n[[check]]\nexit_code = 0\n",
    );
    std::fs::write(
        workspace.path().join("structure.yaml"),
        "schemaVersion: \"2.0.0\"\nfileExistenceTests:\n  - name: app\n    path: /app\n    shouldExist: true\n",
    )
    .unwrap();
    let cases = workspace.spec(
        "cases",
        "prompt = \"p\"\nconditions = \"c\"\nstructure_tests = [\"structure.yaml\"]\n[[check]]\nexit_code = 0\n[[case]]\nname = \"one\"\n[[case]]\nname = \"two\"\n[image]\nnon_root = true\nworkdir = \"/app\"\n[[file]]\npath = \"/app/main.py\"\n",
    );
    let service = workspace.spec(
        "service",
        "prompt = \"p\"\nconditions = \"c\"\n[service]\nport = 8080\nready_tcp = true\n[[probe]]\nname = \"health\"\npath = \"/health\"\n[[probe]]\nname = \"add\"\npath = \"/add\"\n",
    );
    std::fs::create_dir_all(workspace.path().join("hidden")).unwrap();
    std::fs::write(
        workspace.path().join("hidden/test_add.py"),
        "def test_add(): pass\n",
    )
    .unwrap();
    let suite = workspace.spec(
        "suite",
        "prompt = \"p\"\nconditions = \"c\"\n[[suite]]\nname = \"unit\"\nfiles = [\"hidden/\"]\ndest = \"/suite\"\ncommand = [\"python3\", \"-m\", \"pytest\", \"/suite\", \"--junitxml=/tmp/junit.xml\"]\njunit = \"/tmp/junit.xml\"\n",
    );
    let output = agent(
        &workspace,
        &[
            "check",
            judged.to_str().unwrap(),
            checked.to_str().unwrap(),
            single.to_str().unwrap(),
            cases.to_str().unwrap(),
            service.to_str().unwrap(),
            suite.to_str().unwrap(),
        ],
    )
    .await;
    output.assert_code(0);
    insta::assert_snapshot!(filtered(&workspace, &output.stdout));
}
