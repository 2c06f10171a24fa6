//! `licenseTests`: license files that must be readable and name no license the tool
//! refuses (AGPL, WTFPL), judged as the tool's `LicenseTest` judges its `files`.

use crate::check::{CheckResult, FileFacts};

/// The name the tool gives every license test's result.
pub(crate) const LICENSE_TEST_NAME: &str = "License Test";

/// Words that fail a license file when its upper-cased text contains one, as the
/// tool's blacklist has them.
const REFUSED_LICENSES: [&str; 2] = ["AGPL", "WTFPL"];

/// One entry of `licenseTests` (its `debian: false` form; `debian: true` is refused
/// when the file is read).
#[derive(Debug, Clone)]
pub struct LicenseTest {
    pub(crate) group: String,
    /// Paths read as written, links followed.
    pub files: Vec<String>,
}

impl LicenseTest {
    /// `facts` holds one entry per path of [`LicenseTest::files`], in order. Every
    /// file must be readable and free of the refused words; no files at all passes,
    /// as in the tool.
    pub fn judge(&self, facts: &[&FileFacts]) -> CheckResult {
        let failures: Vec<String> = facts.iter().filter_map(|facts| problem(facts)).collect();
        let passed = failures.is_empty();
        let detail = if passed {
            format!(
                "{} license file(s) readable, none names AGPL or WTFPL",
                self.files.len()
            )
        } else {
            failures.join("\n")
        };
        CheckResult::new(&self.group, LICENSE_TEST_NAME.to_owned(), passed, detail)
    }
}

fn problem(facts: &FileFacts) -> Option<String> {
    let path = &facts.path;
    let Some(entry) = &facts.entry else {
        return Some(format!("license file `{path}` does not exist"));
    };
    let Some(content) = &entry.content else {
        return Some(format!(
            "license file `{path}` is not a regular file, so it cannot be read"
        ));
    };
    let text = String::from_utf8_lossy(content).to_uppercase();
    REFUSED_LICENSES
        .iter()
        .find(|word| text.contains(*word))
        .map(|word| format!("license file `{path}` names {word}, a license the tool refuses"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::FileEntry;

    fn file(path: &str, content: Option<&str>) -> FileFacts {
        FileFacts {
            path: path.to_owned(),
            entry: content.map(|text| FileEntry {
                mode: 0o100_644,
                uid: 0,
                gid: 0,
                link_target: None,
                content: Some(text.as_bytes().to_vec()),
                content_truncated: false,
            }),
        }
    }

    #[test]
    fn a_refused_word_in_any_case_or_a_missing_file_fails() {
        let test = LicenseTest {
            group: "s.yaml".to_owned(),
            files: vec!["/a".to_owned(), "/b".to_owned()],
        };
        let good = file("/a", Some("Licensed under the MIT license"));
        let agpl = file("/b", Some("GNU Affero ... agpl-3.0"));
        let missing = file("/b", None);
        assert!(test.judge(&[&good, &good]).passed);
        let failed = test.judge(&[&good, &agpl]);
        assert!(!failed.passed);
        assert!(failed.detail.contains("names AGPL"), "{}", failed.detail);
        assert_eq!(failed.name, LICENSE_TEST_NAME);
        assert!(!test.judge(&[&good, &missing]).passed);
        assert!(test.judge(&[]).passed);
    }
}
