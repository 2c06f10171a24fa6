//! Helpers for the page tests: a hostile run directory written by hand, the recorded
//! fizzbuzz run, headless chromium, and checks on parsed HTML.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::json;

/// Markup that must stay text wherever it appears.
pub const PAYLOADS: [&str; 5] = [
    "<script>alert('script')</script>",
    "\"><img src=x onerror=alert('img')>",
    "</textarea><svg onload=alert('svg')>",
    "' onmouseover='alert(\"quote\")",
    "</pre></style></title><iframe src=javascript:alert(1)>",
];

/// Control characters and invalid UTF-8 besides the markup.
pub const RAW_BYTES: &[u8] =
    b"\x1b[31mred\x1b[0m \x07bell \x00nul \r over \xff\xfe bad utf-8 \xe2\x80\xae reversed";

pub fn payload_text() -> String {
    PAYLOADS.join(" | ")
}

/// The recorded two-iteration fizzbuzz run (checks failed, then passed).
pub fn fizzbuzz_run() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runs/fizzbuzz");
    std::fs::read_dir(&root)
        .expect("the fixture run folder")
        .map(|entry| entry.expect("entry").path())
        .next()
        .expect("one fixture run")
}

/// Where tests keep what CI uploads: `target/report-artifacts/`.
pub fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("report-artifacts");
    std::fs::create_dir_all(&dir).expect("the artifacts folder");
    dir
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("folders");
    std::fs::write(path, bytes).expect("written");
}

/// `text` and the control characters; a NUL would make a bundle file binary, which
/// the page names without showing, so bundle files get the rest.
fn without_nul(text: &str) -> Vec<u8> {
    with_raw(text)
        .into_iter()
        .filter(|byte| *byte != 0)
        .collect()
}

fn with_raw(text: &str) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    bytes.extend_from_slice(b"\n");
    bytes.extend_from_slice(RAW_BYTES);
    bytes.extend_from_slice(b"\n");
    bytes
}

/// A run directory whose every string came from a hostile model and program: three
/// iterations (a failed build, failed checks, an outcome no version of `agent` writes).
pub fn hostile_run(root: &Path) -> PathBuf {
    let dir = root.join("hostile").join("run-1");
    let text = payload_text();
    let control = String::from_utf8_lossy(RAW_BYTES).into_owned();
    let record = |iteration: u32, outcome: &str| {
        json!({
            "iteration": iteration, "outcome": outcome,
            "summary": format!("{text} {control}"), "detail": format!("{text}\n{control}"),
            "build_secs": 2.5, "run_secs": if iteration > 1 { json!(0.5) } else { json!(null) },
            "exit_code": 3, "oom_killed": false, "stdout_bytes": 4096, "stderr_bytes": 10,
            "stdout_truncated": true, "stderr_truncated": false, "model_ms": 1500,
            "checks": [{"name": text, "passed": false, "detail": format!("expected: {text}\nactual: {control}")}],
            "engine": format!("tcp://{text}"), "retried_after_lost": [PAYLOADS[2]],
            "an_added_field": {"nested": [1, 2]},
        })
    };
    let outcomes = ["build_failed", "checks_failed", PAYLOADS[1]];
    let report = json!({
        "spec": text, "run_id": PAYLOADS[1], "verified": false, "iterations": 3,
        "image": PAYLOADS[2], "duration_secs": 9.5, "model": PAYLOADS[0],
        "base_image": PAYLOADS[3], "stopped_by": PAYLOADS[4], "error": format!("{text} {control}"),
        "usage": {"prompt_tokens": 1000, "completion_tokens": 234, "calls": 3},
        "history": (1..=3).map(|number| record(number, outcomes[number as usize - 1])).collect::<Vec<_>>(),
        "candidates": [
            {"candidate": 1, "outcome": "build_failed", "detail": format!("{text} {control}"), "chosen": false,
             "build_secs": 1.5, "run_secs": null, "checks_passed": 0},
            {"candidate": 2, "outcome": "checks_failed", "detail": text, "chosen": true,
             "build_secs": 2.0, "run_secs": 0.25, "checks_passed": 1},
        ],
        "a_field_from_a_newer_agent": true,
    });
    write(&dir.join("report.json"), report.to_string().as_bytes());

    for iteration in 1..=3u32 {
        let folder = dir.join("iterations").join(iteration.to_string());
        let bundle = folder.join("bundle");
        write(
            &bundle.join("Dockerfile"),
            &without_nul(&format!("FROM x\nRUN echo '{text}' {iteration}")),
        );
        for (index, name) in PAYLOADS.iter().enumerate() {
            write(
                &bundle.join(name.replace('/', "_")),
                &without_nul(&format!("{iteration} {index} {text}")),
            );
        }
        // File names no valid reply could carry: still shown, never markup.
        let odd = bundle.join(OsStr::from_bytes(b"ctl\x1b[1m\x07-\xff\xfe-name.txt"));
        write(&odd, &without_nul(&iteration.to_string()));
        write(
            &bundle.join("<script>").join("</textarea>.py"),
            &without_nul(&text),
        );
        write(&bundle.join("blob.bin"), &[0, 1, 2, iteration as u8]);
        let log = format!(
            "Step 1/2 : FROM x\n ---> abc\nStep 2/2 : RUN echo '{text}'\n ---> Running in 1\n"
        );
        let mut log = log.into_bytes();
        log.extend_from_slice(&with_raw(&text));
        write(&folder.join("build.log"), &log);
        write(&folder.join("stdout.txt"), &with_raw(&text.repeat(200)));
        write(&folder.join("stderr.txt"), &with_raw(&text));
        write(
            &folder.join("result.json"),
            record(iteration, outcomes[iteration as usize - 1])
                .to_string()
                .as_bytes(),
        );
    }

    let call = |iteration: u32| {
        json!({
            "spec": text, "iteration": iteration, "purpose": PAYLOADS[0], "schema": "code_bundle",
            "request": {"messages": [
                {"role": "system", "content": format!("{text} {control}")},
                {"role": PAYLOADS[1], "content": text},
            ]},
            "response": {"content": format!("{text} {control}"), "finish_reason": "stop"},
            "usage": {"prompt_tokens": 300, "completion_tokens": 78},
            "latency_ms": 1500, "error": PAYLOADS[2],
        })
    };
    let mut transcript = String::new();
    for iteration in 1..=3 {
        transcript.push_str(&call(iteration).to_string());
        transcript.push('\n');
    }
    transcript.push_str("not json at all <script>\n");
    write(&dir.join("transcript.jsonl"), transcript.as_bytes());
    dir
}

/// What headless chromium made of a page: the DOM after loading, and every console
/// message it logged (CSP violations and uncaught errors among them).
pub struct Rendered {
    pub dom: String,
    pub console: Vec<String>,
}

/// Runs Debian's headless chromium on `page` with `extra` arguments. Fails loudly
/// when chromium is missing: these tests never skip themselves.
pub fn chromium(page: &Path, extra: &[&str]) -> Rendered {
    let profile = tempfile::tempdir().expect("a profile folder");
    // coreutils' `timeout` bounds the browser, and `output` drains both pipes while
    // it runs (a large DOM would fill a pipe that nobody reads).
    let output = Command::new("timeout")
        .args([
            "120",
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
        ])
        .args([
            "--hide-scrollbars",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .output()
        .expect("`timeout` runs");
    assert_ne!(
        output.status.code(),
        Some(124),
        "chromium did not finish within 120 s"
    );
    assert_ne!(
        output.status.code(),
        Some(127),
        "`chromium` is missing: install it with scripts/install-chromium"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    Rendered {
        dom: String::from_utf8_lossy(&output.stdout).into_owned(),
        console: stderr
            .lines()
            .filter(|line| line.contains(":CONSOLE") || line.contains("Uncaught"))
            .map(str::to_owned)
            .collect(),
    }
}
