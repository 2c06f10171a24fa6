//! `report.html` end to end: a real run whose reply and program are hostile gets a
//! page that shows all of it as text, and `agent report` makes one page for an out
//! folder.

use agent_testkit::html::{assert_only_report_markup, count};
use agent_testkit::{ScriptedReply, ScriptedServer};
use scraper::{Html, Selector};

use crate::HELLO_SPEC;
use crate::support::*;

const SCRIPT: &str = "<script>alert('name')</script>";
const IMAGE: &str = "\"><img src=x onerror=alert('img')>";
const TEXTAREA: &str = "</textarea><svg onload=alert(1)>";

/// A program that prints markup, terminal escapes, a NUL and invalid UTF-8 on both
/// streams, and so fails its check.
const HOSTILE_PROGRAM: &str = r#"import sys
junk = b"<script>alert('out')</script> \"><img src=x onerror=alert(2)> </textarea> \x1b[31m \x00 \x07 \xff\xfe\n"
sys.stdout.buffer.write(junk)
sys.stderr.buffer.write(junk)
"#;

fn hostile_bundle() -> String {
    let dockerfile = python_dockerfile();
    let contents = format!("{SCRIPT} {IMAGE} {TEXTAREA} \u{1b}[1m \u{7} \u{202e}");
    let mut bundle: serde_json::Value = serde_json::from_str(&bundle(
        Some(&dockerfile),
        &[
            ("main.py", HOSTILE_PROGRAM),
            (&format!("{SCRIPT}.txt"), &contents),
            (&format!("{IMAGE}.txt"), &contents),
            (&format!("{TEXTAREA}.txt"), &contents),
        ],
    ))
    .unwrap();
    bundle["summary"] = format!("{SCRIPT} {IMAGE} {TEXTAREA} \u{1b}[2J").into();
    bundle.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_run_gets_a_report_html_that_shows_everything_as_text() {
    require_engine();
    let good = bundle(
        Some(&python_dockerfile()),
        &[("main.py", "print('hello')\n")],
    );
    let server = ScriptedServer::start(vec![
        ScriptedReply::Content(hostile_bundle()),
        ScriptedReply::Content(good),
    ])
    .await;
    let (workspace, output) = run_scripted(&server, "", "", "hello", HELLO_SPEC).await;
    output.assert_code(0);
    let run_dir = workspace.run_dir("hello");
    let bundle = run_dir.join("iterations/1/bundle");
    assert!(
        bundle.join(format!("{IMAGE}.txt")).is_file(),
        "the odd names were built"
    );

    let html = std::fs::read_to_string(run_dir.join("report.html")).expect("report.html");
    assert_only_report_markup(&html);
    for raw in ['\u{1b}', '\u{0}', '\u{7}', '\u{202e}'] {
        assert!(!html.contains(raw), "{raw:?} reached the page");
    }
    let document = Html::parse_document(&html);
    let files: Vec<String> = document
        .select(&Selector::parse("#run-1-iteration-1 .file-head code").unwrap())
        .map(|element| element.text().collect())
        .collect();
    assert_eq!(files[0], "Dockerfile");
    for name in [SCRIPT, IMAGE, TEXTAREA] {
        assert!(
            files.contains(&format!("{name}.txt")),
            "{name} in {files:?}"
        );
    }
    let text: String = document.root_element().text().collect();
    assert!(
        text.contains("<script>alert('out')</script>"),
        "stdout shown as text"
    );
    assert!(text.contains('\u{fffd}'), "invalid UTF-8 shown lossily");
    assert_eq!(count(&document, "#run-1 ol.timeline > li.entry"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_report_writes_one_page_for_every_run_below_an_out_folder() {
    require_engine();
    let server = ScriptedServer::start(vec![
        ScriptedReply::Content(bundle(
            Some(&python_dockerfile()),
            &[("main.py", "print('hi')\n")],
        )),
        ScriptedReply::Content(bundle(
            Some(&python_dockerfile()),
            &[("main.py", "print('hello')\n")],
        )),
    ])
    .await;
    let workspace = Workspace::new(&server.base_url(), "", "max_iterations = 1");
    let first = workspace.spec("first", HELLO_SPEC);
    let second = workspace.spec("second", HELLO_SPEC);
    let ran = agent(
        &workspace,
        &["run", first.to_str().unwrap(), second.to_str().unwrap()],
    )
    .await;
    ran.assert_code(1);

    let output = agent(&workspace, &["report", "runs", "-o", "all.html"]).await;
    output.assert_code(0);
    assert_eq!(output.stdout, "all.html\n");
    let html = std::fs::read_to_string(workspace.path().join("all.html")).expect("the page");
    assert_only_report_markup(&html);
    let document = Html::parse_document(&html);
    assert_eq!(count(&document, "tr.run-row"), 2);
    assert_eq!(count(&document, "tr.run-row.verified"), 1);
    assert_eq!(count(&document, "tr.run-row.not-verified"), 1);

    let nothing = agent(&workspace, &["report", "agent.toml"]).await;
    nothing.assert_code(2);
    nothing.assert_stderr_has("is not a directory");
    std::fs::create_dir(workspace.path().join("empty")).unwrap();
    let empty = agent(&workspace, &["report", "empty"]).await;
    empty.assert_code(2);
    empty.assert_stderr_has("no run directory");
}
