//! GitHub Actions annotations: each failed check as an `::error` workflow command on
//! its spec file at the line of its table, capped as GitHub shows them.

use std::path::{Component, Path, PathBuf};

use agent_spec::DEFAULT_CASE;

use crate::summary::SpecSummary;

/// GitHub shows 10 error annotations per step and drops the rest.
pub const ANNOTATION_LIMIT: usize = 10;
/// Longest message of an annotation, in bytes: the expected and actual text are
/// shortened to head and tail, the report keeps them whole.
const MESSAGE_LIMIT: usize = 600;

/// One failure on a spec file.
#[derive(Debug, PartialEq)]
struct Annotation {
    file: String,
    line: Option<usize>,
    title: String,
    message: String,
}

/// The `::error` lines for the failures of `summaries`, at most [`ANNOTATION_LIMIT`],
/// then one line counting the rest. `workspace`: the checkout spec paths are made
/// relative to, as GitHub names files.
pub fn lines(summaries: &[SpecSummary], workspace: Option<&Path>) -> Vec<String> {
    let annotations: Vec<Annotation> = summaries
        .iter()
        .flat_map(|summary| of_spec(summary, workspace))
        .collect();
    let mut lines: Vec<String> = annotations
        .iter()
        .take(ANNOTATION_LIMIT)
        .map(render)
        .collect();
    if annotations.len() > ANNOTATION_LIMIT {
        lines.push(format!(
            "agent: {} more failures not annotated (GitHub shows {ANNOTATION_LIMIT} per step); the step summary and the report list them",
            annotations.len() - ANNOTATION_LIMIT
        ));
    }
    lines
}

/// A spec's failed checks; a spec not verified with no failed check (its build
/// failed, it never ran) gets one annotation saying why.
fn of_spec(summary: &SpecSummary, workspace: Option<&Path>) -> Vec<Annotation> {
    if summary.verified {
        return Vec::new();
    }
    let file = repository_path(&summary.spec_path, workspace);
    let check_lines = std::fs::read_to_string(&summary.spec_path)
        .ok()
        .and_then(|text| agent_spec::check_lines(&summary.spec_path, &text))
        .unwrap_or_default();
    let mut annotations: Vec<Annotation> = summary
        .checks
        .iter()
        .filter(|check| !check.passed)
        .map(|check| {
            let label = if check.group == DEFAULT_CASE || check.group.is_empty() {
                check.name.clone()
            } else {
                format!("{}/{}", check.group, check.name)
            };
            Annotation {
                file: file.clone(),
                line: check_lines.line(&check.group, &check.name),
                title: format!("{}: {label}", summary.spec),
                message: agent_spec::excerpt(&check.detail, MESSAGE_LIMIT),
            }
        })
        .collect();
    if annotations.is_empty() {
        let why = summary
            .error
            .clone()
            .or_else(|| summary.last_failure.clone())
            .unwrap_or_else(|| summary.result_word().to_owned());
        annotations.push(Annotation {
            file,
            line: None,
            title: format!("{}: {}", summary.spec, summary.result_word()),
            message: agent_spec::excerpt(&why, MESSAGE_LIMIT),
        });
    }
    annotations
}

/// `path` as GitHub names files: relative to the checkout when inside it, without
/// `./`, with `/` separators.
fn repository_path(path: &Path, workspace: Option<&Path>) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let relative = workspace
        .and_then(|workspace| absolute.strip_prefix(workspace).ok())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| path.to_path_buf());
    let parts: PathBuf = relative
        .components()
        .filter(|component| !matches!(component, Component::CurDir))
        .collect();
    parts
        .iter()
        .map(|part| part.to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
        .replace("//", "/")
}

/// `::error file=…,line=…,title=…::message`, escaped as the runner unescapes.
fn render(annotation: &Annotation) -> String {
    let mut properties = format!("file={}", escape_property(&annotation.file));
    if let Some(line) = annotation.line {
        properties.push_str(&format!(",line={line}"));
    }
    properties.push_str(&format!(",title={}", escape_property(&annotation.title)));
    format!("::error {properties}::{}", escape_data(&annotation.message))
}

/// The message of a workflow command: `%`, CR and LF encoded.
fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A property value: as data, and `:` and `,` too, which end a property.
fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use agent_spec::CheckResult;

    use super::*;

    #[test]
    fn escaping_follows_the_runner() {
        assert_eq!(escape_data("50% a\r\nb: c, d"), "50%25 a%0D%0Ab: c, d");
        assert_eq!(escape_property("a: b, 5%\n"), "a%3A b%2C 5%25%0A");
    }

    #[test]
    fn a_failed_check_points_at_its_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("specs/hello.toml");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            "prompt = \"p\"\nconditions = \"c\"\n\n[[check]]\nexit_code = 0\n\n[[check]]\nname = \"greeting, loud\"\nstdout_equals = \"hello\"\n",
        )
        .unwrap();
        let mut summary = SpecSummary::not_started(&agent_spec::load_spec(&path).unwrap());
        summary.checks = vec![
            CheckResult::new("run", "exit_code".into(), true, "exit code 0".into()),
            CheckResult::new(
                "run",
                "greeting, loud".into(),
                false,
                "expected 50%:\nhello\nactual:\nbye".into(),
            ),
        ];
        let lines = lines(&[summary], Some(dir.path()));
        assert_eq!(
            lines,
            [
                "::error file=specs/hello.toml,line=7,title=hello%3A greeting%2C loud::expected 50%25:%0Ahello%0Aactual:%0Abye"
            ]
        );
    }

    #[test]
    fn more_than_ten_failures_are_counted_in_one_line() {
        let mut summary = SpecSummary::not_started(&crate::ci::tests::spec("many"));
        summary.checks = (0..14)
            .map(|index| CheckResult::new("run", format!("c{index}"), false, "x".repeat(5000)))
            .collect();
        let lines = lines(&[summary], None);
        assert_eq!(lines.len(), ANNOTATION_LIMIT + 1);
        assert!(
            lines[0].starts_with("::error file=many.toml,title=many%3A c0::"),
            "{}",
            lines[0]
        );
        assert!(lines[0].len() < 1000, "the detail is shortened");
        assert!(
            lines[10].starts_with("agent: 4 more failures not annotated"),
            "{}",
            lines[10]
        );
    }

    #[test]
    fn a_spec_with_no_failed_check_says_why_it_was_not_verified() {
        let mut summary = SpecSummary::not_started(&crate::ci::tests::spec("broken"));
        summary.last_failure = Some("build_failed: step 2 failed".into());
        summary.stopped_by = Some(agent_loop::StopReason::MaxIterations);
        assert_eq!(
            lines(&[summary], None),
            ["::error file=broken.toml,title=broken%3A not verified::build_failed: step 2 failed"]
        );
    }
}
