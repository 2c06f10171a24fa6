//! The page as people and browsers get it: hostile run directories stay text, and
//! headless chromium renders the page without a console error.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use agent_testkit::html::{assert_only_report_markup, count};
use scraper::{Html, Selector};

use crate::support::*;

fn texts(document: &Html, selector: &str) -> Vec<String> {
    document
        .select(&Selector::parse(selector).expect("selector"))
        .map(|element| element.text().collect::<String>())
        .collect()
}

#[test]
fn hostile_names_contents_and_output_never_become_markup() {
    let root = tempfile::tempdir().unwrap();
    let run = hostile_run(root.path());
    let html = agent_report::render(&[run]).unwrap();
    assert_only_report_markup(&html);

    // Shown as text, not dropped: every payload reads back from the page's text.
    let document = Html::parse_document(&html);
    let text: String = document.root_element().text().collect();
    for payload in PAYLOADS {
        assert!(text.contains(payload), "`{payload}` is not shown as text");
    }
    // Control characters are made visible, invalid UTF-8 replaced.
    for raw in ['\u{1b}', '\u{7}', '\u{0}', '\u{202e}'] {
        assert!(!html.contains(raw), "{raw:?} reached the page");
    }
    assert!(text.contains("\u{241b}[31mred"), "escape shown as ␛");
    assert!(
        text.contains("\\u{202e}"),
        "a bidirectional override shown by its code"
    );
    assert!(text.contains('\u{fffd}'), "invalid UTF-8 shown lossily");
    assert!(
        text.contains("ctl\u{241b}[1m\u{2407}-\u{fffd}\u{fffd}-name.txt"),
        "an odd file name shown"
    );

    // Attributes keep untrusted text as text too.
    let titles: Vec<&str> = document
        .select(&Selector::parse("li.entry").unwrap())
        .filter_map(|entry| entry.value().attr("title"))
        .collect();
    assert_eq!(titles.len(), 3);
    assert!(titles[0].contains(PAYLOADS[1]), "{}", titles[0]);
    // An outcome no `agent` writes gets the fixed class for unknown outcomes.
    let classes: BTreeSet<&str> = document
        .select(&Selector::parse("li.entry").unwrap())
        .flat_map(|entry| entry.value().classes())
        .collect();
    assert_eq!(
        classes,
        BTreeSet::from(["entry", "build-failed", "checks-failed", "unknown"])
    );
}

#[test]
fn each_iteration_shows_its_evidence_and_its_diff_with_the_dockerfile_first() {
    let root = tempfile::tempdir().unwrap();
    let run = hostile_run(root.path());
    let document = Html::parse_document(&agent_report::render(&[run]).unwrap());

    let steps = texts(&document, "#run-1-iteration-1 pre.step");
    assert_eq!(steps, [format!("Step 2/2 : RUN echo '{}'", payload_text())]);
    assert!(
        texts(&document, "#run-1-iteration-2 pre.step").is_empty(),
        "a build step only for a failed build"
    );

    let headings = texts(&document, "#run-1-iteration-2 .changes summary h4");
    assert_eq!(headings, ["Bundle changes against iteration 1"]);
    let files = texts(&document, "#run-1-iteration-2 .file-head code");
    assert_eq!(files.first().map(String::as_str), Some("Dockerfile"));
    assert!(texts(&document, "#run-1-iteration-1 .changes summary h4")[0].contains("first bundle"));
    let binary = texts(&document, "#run-1-iteration-2 .file p.empty");
    assert_eq!(binary, ["binary: not shown"]);

    let cuts = texts(&document, "#run-1-iteration-2 p.cut").join("\n");
    assert!(cuts.contains("bytes before this are not shown"), "{cuts}");
    assert!(cuts.contains("cut here"), "{cuts}");
    let checks = texts(&document, "#run-1-iteration-2 .check-name");
    assert_eq!(checks, [payload_text()]);
    let roles = texts(&document, "#run-1-iteration-2 details.prompt p.role");
    assert_eq!(roles, ["system", PAYLOADS[1], "reply", "error"]);
}

#[test]
fn an_out_dir_gives_every_run_below_it_and_a_filter_for_each_result() {
    let out = tempfile::tempdir().unwrap();
    hostile_run(out.path());
    let fixture = fizzbuzz_run();
    let copy = out
        .path()
        .join("fizzbuzz")
        .join(fixture.file_name().unwrap());
    copy_tree(&fixture, &copy);
    std::fs::create_dir_all(out.path().join("empty/not-a-run")).unwrap();

    let dirs = agent_report::find_run_dirs(&[out.path().to_owned()]).unwrap();
    assert_eq!(dirs, [copy, out.path().join("hostile/run-1")]);
    let named_twice =
        agent_report::find_run_dirs(&[out.path().to_owned(), out.path().join("hostile")]).unwrap();
    assert_eq!(named_twice, dirs, "a run named twice is shown once");
    let document = Html::parse_document(&agent_report::render(&dirs).unwrap());
    assert_eq!(count(&document, "tr.run-row"), 2);
    assert_eq!(count(&document, "tr.run-row.verified"), 1);
    assert_eq!(count(&document, "section.run.not-verified"), 1);
    let filters = texts(&document, "nav.filters label");
    assert_eq!(filters, ["all (2)", "verified (1)", "not verified (1)"]);
    assert_eq!(count(&document, "input.filter[type=radio]"), 5);
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Decodes a PNG and counts its distinct colours.
fn colours(path: &Path) -> (u32, u32, usize) {
    let file = std::io::BufReader::new(std::fs::File::open(path).expect("the screenshot"));
    let mut reader = png::Decoder::new(file).read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("a size")];
    let info = reader.next_frame(&mut pixels).expect("a frame");
    let step = info.color_type.samples() * usize::from(info.bit_depth as u8 / 8).max(1);
    let distinct: BTreeSet<&[u8]> = pixels[..info.buffer_size()].chunks(step).collect();
    (info.width, info.height, distinct.len())
}

#[test]
fn chromium_renders_the_fizzbuzz_page_with_two_timeline_entries_and_no_console_message() {
    let artifacts = artifacts_dir();
    let page = artifacts.join("fizzbuzz-report.html");
    agent_report::write(&page, &agent_report::render(&[fizzbuzz_run()]).unwrap()).unwrap();

    let rendered = chromium(&page, &["--dump-dom"]);
    assert_eq!(rendered.console, Vec::<String>::new(), "console messages");
    let document = Html::parse_document(&rendered.dom);
    assert_eq!(count(&document, "#run-1 ol.timeline > li.entry"), 2);
    let outcomes = texts(&document, "#run-1 li.entry .outcome");
    assert_eq!(outcomes, ["checks failed", "passed"]);

    for (name, size, width) in [
        ("fizzbuzz-report.png", "1280,2000", 1280),
        ("fizzbuzz-report-phone.png", "390,1600", 390),
    ] {
        let screenshot = artifacts.join(name);
        let _ = std::fs::remove_file(&screenshot);
        let rendered = chromium(
            &page,
            &[
                &format!("--screenshot={}", screenshot.display()),
                &format!("--window-size={size}"),
            ],
        );
        assert_eq!(rendered.console, Vec::<String>::new(), "console messages");
        let (shot_width, _, distinct) = colours(&screenshot);
        assert_eq!(shot_width, width);
        assert!(distinct > 50, "{name} looks blank: {distinct} colours");
    }
}

#[test]
fn chromium_runs_nothing_from_a_hostile_page() {
    let root = tempfile::tempdir().unwrap();
    let run = hostile_run(root.path());
    let page = artifacts_dir().join("hostile-report.html");
    agent_report::write(&page, &agent_report::render(&[run]).unwrap()).unwrap();
    let rendered = chromium(&page, &["--dump-dom"]);
    assert_eq!(rendered.console, Vec::<String>::new(), "console messages");
    assert!(
        rendered.dom.contains("run-1-iteration-3"),
        "the page loaded"
    );
    assert_only_report_markup(&rendered.dom);
}

#[test]
fn candidates_and_engines_are_shown_as_text() {
    let root = tempfile::tempdir().unwrap();
    let run = hostile_run(root.path());
    let html = agent_report::render(&[run]).unwrap();
    assert_only_report_markup(&html);
    let document = Html::parse_document(&html);

    let rows = texts(&document, "#run-1 table.candidates tbody tr");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows[0].starts_with('1') && rows[0].contains("build failed"),
        "{}",
        rows[0]
    );
    assert!(
        rows[0].contains(PAYLOADS[1]),
        "the detail is shown as text: {}",
        rows[0]
    );
    assert!(
        rows[1].contains("chosen") && rows[1].contains("checks failed"),
        "{}",
        rows[1]
    );
    assert!(!rows[0].contains("chosen"), "{}", rows[0]);

    let engines = texts(&document, "#run-1-iteration-1 p.engine");
    assert_eq!(engines.len(), 1);
    assert!(
        engines[0].contains(&format!("tcp://{}", payload_text())),
        "{}",
        engines[0]
    );
    assert!(
        engines[0].contains(&format!("after losing {}", PAYLOADS[2])),
        "{}",
        engines[0]
    );
}
