//! Where a result's check is written in its spec: the 1-based line of the table that
//! holds it (`[[check]]`, `[[case.check]]`, `[image]`, `[[file]]`, `[[probe]]`,
//! `[[suite]]`, `[service]`, a `structure_tests` entry), so CI annotations point at it.

use std::path::Path;

use crate::spanned::Spanned;
use serde::Deserialize;

use crate::check::{FILE_GROUP, IMAGE_GROUP};
use crate::position::locate;
use crate::spec::checks::{RawCheck, build_checks};
use crate::validate::Source;

/// The lines of a spec's check tables, read once from its text.
#[derive(Debug, Clone, Default)]
pub struct CheckLines {
    /// Top-level `[[check]]`s: name (as the spec resolves it) and line.
    top: Vec<(String, usize)>,
    /// Each `[[case]]`'s name with its own checks' names and lines.
    cases: Vec<(String, Vec<(String, usize)>)>,
    /// Other result groups (`image`, `file`, `probe:<name>`, `suite:<name>`,
    /// `service`, a structure-test file) and the line of the table they come from.
    groups: Vec<(String, usize)>,
}

impl CheckLines {
    /// The line of the table holding the check `name` whose result is of `group`; the
    /// line of the group's own table when the check is not a table of its own.
    pub fn line(&self, group: &str, name: &str) -> Option<usize> {
        let own = self
            .cases
            .iter()
            .find(|(case, _)| case == group)
            .and_then(|(_, checks)| find(checks, name));
        own.or_else(|| find(&self.top, name))
            .or_else(|| find(&self.groups, group))
            .or_else(|| {
                let kind = group.split_once(':').map_or(group, |(kind, _)| kind);
                find(&self.groups, kind)
            })
    }
}

fn find(pairs: &[(String, usize)], key: &str) -> Option<usize> {
    pairs
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, line)| *line)
}

/// The check lines of a spec's text; `None` when the text is not a valid spec (a spec
/// that ran was valid, so that means it changed since).
pub fn check_lines(path: &Path, text: &str) -> Option<CheckLines> {
    let tables: Tables = toml::from_str(text).ok()?;
    let source = Source { path, text };
    let line = |span: std::ops::Range<usize>| locate(path, text, span.start).line;
    let top_checks = build_checks(&source, &tables.check, &[]).ok()?;
    let top: Vec<(String, usize)> = top_checks
        .iter()
        .zip(&tables.check)
        .map(|(check, table)| (check.name.clone(), line(table.span())))
        .collect();
    let mut cases = Vec::new();
    for case in &tables.case {
        let own = build_checks(&source, &case.check, &top_checks).ok()?;
        let checks = own
            .iter()
            .zip(&case.check)
            .map(|(check, table)| (check.name.clone(), line(table.span())))
            .collect();
        cases.push((case.name.clone().unwrap_or_default(), checks));
    }
    let mut groups = Vec::new();
    if let Some(image) = &tables.image {
        groups.push((IMAGE_GROUP.to_owned(), line(image.span())));
    }
    if let Some(file) = tables.file.first() {
        groups.push((FILE_GROUP.to_owned(), line(file.span())));
    }
    if let Some(service) = &tables.service {
        groups.push(("service".to_owned(), line(service.span())));
    }
    for (kind, named) in [("probe", &tables.probe), ("suite", &tables.suite)] {
        for table in named {
            if let Some(name) = &table.get_ref().name {
                groups.push((format!("{kind}:{name}"), line(table.span())));
            }
        }
        if let Some(first) = named.first() {
            groups.push((kind.to_owned(), line(first.span())));
        }
    }
    for entry in &tables.structure_tests {
        groups.push((entry.get_ref().clone(), line(entry.span())));
    }
    Some(CheckLines { top, cases, groups })
}

/// The tables of a spec that hold checks, read leniently: everything else is
/// ignored, the spec having been validated when it was loaded.
#[derive(Deserialize)]
struct Tables {
    #[serde(default)]
    check: Vec<Spanned<RawCheck>>,
    #[serde(default)]
    case: Vec<CaseTable>,
    image: Option<Spanned<toml::Table>>,
    #[serde(default)]
    file: Vec<Spanned<toml::Table>>,
    service: Option<Spanned<toml::Table>>,
    #[serde(default)]
    probe: Vec<Spanned<Named>>,
    #[serde(default)]
    suite: Vec<Spanned<Named>>,
    #[serde(default)]
    structure_tests: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
struct CaseTable {
    name: Option<String>,
    #[serde(default)]
    check: Vec<Spanned<RawCheck>>,
}

#[derive(Deserialize)]
struct Named {
    name: Option<String>,
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::check_lines;

    const SPEC: &str = r#"prompt = "p"
conditions = "c"

[[check]]
name = "greeting"
stdout_equals = "hello"

[[check]]
exit_code = 0

[[case]]
name = "loud"
args = ["--loud"]

[[case.check]]
stdout_contains = "HELLO"

[image]
non_root = true

[[probe]]
name = "health"
path = "/health"
"#;

    #[test]
    fn each_check_points_at_its_own_table() {
        let lines = check_lines(Path::new("s.toml"), SPEC).expect("a valid spec");
        assert_eq!(lines.line("run", "greeting"), Some(4));
        assert_eq!(lines.line("run", "exit_code"), Some(8));
        // A case runs its own checks and the top-level ones.
        assert_eq!(lines.line("loud", "stdout_contains"), Some(15));
        assert_eq!(lines.line("loud", "greeting"), Some(4));
        assert_eq!(lines.line("image", "non_root"), Some(18));
        assert_eq!(lines.line("probe:health", "status"), Some(21));
        assert_eq!(lines.line("suite:hidden", "grade"), None);
    }

    #[test]
    fn text_that_is_no_longer_a_spec_gives_none() {
        assert!(check_lines(Path::new("s.toml"), "[[check]]\nexit_code = 'x'\n").is_none());
    }
}
