//! Grading a hidden test suite from the JUnit XML it wrote, as SWE-bench grades: a
//! pure function of the file's bytes (or its absence) and the command's exit code,
//! touching no engine. What the suite printed counts for nothing: a suite passes only
//! on a JUnit file that exists, parses, holds enough tests, has every required test
//! present and passed, no test failed or errored, and an exit code of 0.

use serde::Deserialize;

/// The JUnit file as it was read back from the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JunitFile {
    /// Nothing at the path when the command ended.
    Missing,
    /// The path is a directory or another non-file.
    NotAFile,
    /// Larger than the limit: not read.
    TooLarge {
        limit_bytes: usize,
    },
    Read(Vec<u8>),
}

/// One test case of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    pub name: String,
    pub classname: String,
    pub passed: bool,
    pub skipped: bool,
    /// The failure's, error's or skip's `message` attribute.
    pub message: Option<String>,
    /// The failure's or error's text, then the test's captured stdout and stderr.
    pub output: String,
}

/// What a suite must show to pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Criteria {
    /// Fewer tests run than this fails (skipped tests did not run).
    pub min_tests: usize,
    /// Tests that must be present and pass: a test's `name`, or `classname.name`.
    pub required: Vec<String>,
}

/// Why a suite did not pass; every reason found is listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    NoJunitFile,
    NotAFile,
    TooLarge {
        limit_bytes: usize,
    },
    Unparsable(String),
    TooFewTests {
        ran: usize,
        min_tests: usize,
    },
    RequiredMissing(String),
    RequiredNotPassed(String),
    /// A test that failed or errored, by `classname.name`.
    Failed(String),
    /// The command's exit code was not 0 (`None`: it never exited on its own).
    ExitCode(Option<i64>),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::NoJunitFile => write!(formatter, "the suite wrote no JUnit file"),
            Problem::NotAFile => write!(formatter, "the JUnit path is not a file"),
            Problem::TooLarge { limit_bytes } => {
                write!(
                    formatter,
                    "the JUnit file is larger than {limit_bytes} bytes"
                )
            }
            Problem::Unparsable(reason) => {
                write!(formatter, "the JUnit file does not parse: {reason}")
            }
            Problem::TooFewTests { ran, min_tests } => {
                write!(
                    formatter,
                    "{ran} tests ran, fewer than the {min_tests} required"
                )
            }
            Problem::RequiredMissing(name) => {
                write!(formatter, "required test `{name}` did not run")
            }
            Problem::RequiredNotPassed(name) => {
                write!(formatter, "required test `{name}` did not pass")
            }
            Problem::Failed(name) => write!(formatter, "test `{name}` failed"),
            Problem::ExitCode(Some(code)) => write!(formatter, "the suite exited with code {code}"),
            Problem::ExitCode(None) => write!(formatter, "the suite did not exit on its own"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grade {
    pub passed: bool,
    /// Every test the file holds, in file order.
    pub tests: Vec<TestResult>,
    pub problems: Vec<Problem>,
}

/// Grades a suite run: `junit` as read back, `exit_code` of its command.
pub fn grade(junit: &JunitFile, exit_code: Option<i64>, criteria: &Criteria) -> Grade {
    let mut problems = Vec::new();
    let tests = match junit {
        JunitFile::Missing => {
            problems.push(Problem::NoJunitFile);
            Vec::new()
        }
        JunitFile::NotAFile => {
            problems.push(Problem::NotAFile);
            Vec::new()
        }
        JunitFile::TooLarge { limit_bytes } => {
            problems.push(Problem::TooLarge {
                limit_bytes: *limit_bytes,
            });
            Vec::new()
        }
        JunitFile::Read(bytes) => match parse(bytes) {
            Ok(tests) => tests,
            Err(reason) => {
                problems.push(Problem::Unparsable(reason));
                Vec::new()
            }
        },
    };
    let file_read = problems.is_empty();
    if file_read {
        problems.extend(test_problems(&tests, criteria));
    }
    if exit_code != Some(0) {
        problems.push(Problem::ExitCode(exit_code));
    }
    Grade {
        passed: problems.is_empty(),
        tests,
        problems,
    }
}

fn test_problems(tests: &[TestResult], criteria: &Criteria) -> Vec<Problem> {
    let mut problems = Vec::new();
    let ran = tests.iter().filter(|test| !test.skipped).count();
    if ran < criteria.min_tests {
        problems.push(Problem::TooFewTests {
            ran,
            min_tests: criteria.min_tests,
        });
    }
    for required in &criteria.required {
        let found: Vec<&TestResult> = tests
            .iter()
            .filter(|test| test.name == *required || full_name(test) == *required)
            .collect();
        if found.is_empty() {
            problems.push(Problem::RequiredMissing(required.clone()));
        } else if !found.iter().all(|test| test.passed) {
            problems.push(Problem::RequiredNotPassed(required.clone()));
        }
    }
    for test in tests.iter().filter(|test| !test.passed && !test.skipped) {
        problems.push(Problem::Failed(full_name(test)));
    }
    problems
}

fn full_name(test: &TestResult) -> String {
    if test.classname.is_empty() {
        test.name.clone()
    } else {
        format!("{}.{}", test.classname, test.name)
    }
}

/// The test cases of a JUnit XML document whose root is `<testsuites>` or
/// `<testsuite>` (suites may nest), as pytest, JUnit, Go's and Rust's tools write it.
pub fn parse(bytes: &[u8]) -> Result<Vec<TestResult>, String> {
    let text = std::str::from_utf8(bytes).map_err(|error| format!("not UTF-8: {error}"))?;
    let root = root_name(text)?;
    if root != "testsuites" && root != "testsuite" {
        return Err(format!(
            "the root element is `<{root}>`, not `<testsuites>` or `<testsuite>`"
        ));
    }
    let element: Element = quick_xml::de::from_str(text).map_err(|error| error.to_string())?;
    let mut tests = Vec::new();
    element.collect(&mut tests);
    Ok(tests)
}

fn root_name(text: &str) -> Result<String, String> {
    let mut reader = quick_xml::Reader::from_str(text);
    loop {
        match reader.read_event().map_err(|error| error.to_string())? {
            quick_xml::events::Event::Start(start) | quick_xml::events::Event::Empty(start) => {
                return Ok(String::from_utf8_lossy(start.name().as_ref()).into_owned());
            }
            quick_xml::events::Event::Eof => return Err("the document is empty".to_owned()),
            _ => {}
        }
    }
}

/// `<testsuites>` or `<testsuite>`: either may hold suites and test cases.
#[derive(Deserialize)]
struct Element {
    #[serde(rename = "testsuite", default)]
    suites: Vec<Element>,
    #[serde(rename = "testcase", default)]
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    #[serde(rename = "@name")]
    name: String,
    #[serde(rename = "@classname", default)]
    classname: String,
    #[serde(default)]
    failure: Vec<Issue>,
    #[serde(default)]
    error: Vec<Issue>,
    #[serde(default)]
    skipped: Vec<Issue>,
    #[serde(rename = "system-out", default)]
    system_out: Vec<String>,
    #[serde(rename = "system-err", default)]
    system_err: Vec<String>,
}

#[derive(Deserialize)]
struct Issue {
    #[serde(rename = "@message", default)]
    message: Option<String>,
    #[serde(rename = "$text", default)]
    text: String,
}

impl Element {
    fn collect(self, tests: &mut Vec<TestResult>) {
        tests.extend(self.cases.into_iter().map(Case::into_result));
        for suite in self.suites {
            suite.collect(tests);
        }
    }
}

impl Case {
    fn into_result(self) -> TestResult {
        let issues: Vec<&Issue> = self.failure.iter().chain(&self.error).collect();
        let skipped = issues.is_empty() && !self.skipped.is_empty();
        let message = issues
            .iter()
            .chain(&self.skipped.iter().collect::<Vec<_>>())
            .find_map(|issue| issue.message.clone());
        let output = issues
            .iter()
            .map(|issue| issue.text.as_str())
            .chain(self.system_out.iter().map(String::as_str))
            .chain(self.system_err.iter().map(String::as_str))
            .filter(|text| !text.trim().is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        TestResult {
            passed: issues.is_empty() && self.skipped.is_empty(),
            skipped,
            name: self.name,
            classname: self.classname,
            message,
            output,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As pytest 7 writes it with `--junitxml` (Debian bookworm's python3-pytest).
    const PYTEST: &str = r#"<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="4" time="0.031" timestamp="2026-12-02T19:40:00.123456" hostname="abc"><testcase classname="test_calc" name="test_add" time="0.001" /><testcase classname="test_calc" name="test_sub" time="0.001"><failure message="assert -1 == 1&#10; +  where -1 = sub(2, 3)">def test_sub():
&gt;       assert sub(2, 3) == 1
E       assert -1 == 1</failure></testcase><testcase classname="test_calc" name="test_skip" time="0.000"><skipped type="pytest.skip" message="not today">/suite/test_calc.py:9: not today</skipped></testcase><testcase classname="test_calc" name="test_boom" time="0.001"><error message="failed on setup with &quot;fixture 'nope' not found&quot;">file /suite/test_calc.py, line 11</error><system-out>printed by the test</system-out></testcase></testsuite></testsuites>"#;

    fn read(xml: &str) -> JunitFile {
        JunitFile::Read(xml.as_bytes().to_vec())
    }

    fn criteria(min_tests: usize, required: &[&str]) -> Criteria {
        Criteria {
            min_tests,
            required: required.iter().map(|name| (*name).to_owned()).collect(),
        }
    }

    #[test]
    fn pytest_output_parses_into_each_outcome() {
        let tests = parse(PYTEST.as_bytes()).expect("parses");
        let names: Vec<&str> = tests.iter().map(|test| test.name.as_str()).collect();
        assert_eq!(names, ["test_add", "test_sub", "test_skip", "test_boom"]);
        assert!(tests[0].passed && !tests[0].skipped);
        assert!(!tests[1].passed && !tests[1].skipped);
        assert_eq!(
            tests[1].message.as_deref(),
            Some("assert -1 == 1\n +  where -1 = sub(2, 3)")
        );
        assert!(tests[1].output.contains("assert sub(2, 3) == 1"));
        assert!(tests[2].skipped && !tests[2].passed);
        assert_eq!(tests[2].message.as_deref(), Some("not today"));
        assert!(!tests[3].passed);
        assert!(tests[3].output.contains("printed by the test"));
        assert_eq!(tests[3].classname, "test_calc");
    }

    #[test]
    fn failures_and_errors_fail_the_suite_even_with_exit_zero() {
        let grade = grade(&read(PYTEST), Some(0), &criteria(1, &[]));
        assert!(!grade.passed);
        assert_eq!(
            grade.problems,
            [
                Problem::Failed("test_calc.test_sub".to_owned()),
                Problem::Failed("test_calc.test_boom".to_owned()),
            ]
        );
    }

    #[test]
    fn a_clean_file_and_exit_zero_pass() {
        let xml = r#"<testsuite name="s" tests="2"><testcase classname="m" name="a"/><testcase classname="m" name="b"></testcase></testsuite>"#;
        let grade = grade(&read(xml), Some(0), &criteria(2, &["a", "m.b"]));
        assert!(grade.passed, "{:?}", grade.problems);
        assert_eq!(grade.tests.len(), 2);
    }

    #[test]
    fn test_cases_between_other_elements_are_all_read() {
        let xml = r#"<testsuites><testsuite name="s"><testcase name="a"/><system-out>x</system-out><testcase name="b"/><testsuite name="inner"><testcase name="c"/></testsuite><testcase name="d"/></testsuite></testsuites>"#;
        let names: Vec<String> = parse(xml.as_bytes())
            .expect("parses")
            .into_iter()
            .map(|test| test.name)
            .collect();
        assert_eq!(names, ["a", "b", "d", "c"]);
    }

    #[test]
    fn printed_passed_lines_without_a_junit_file_fail() {
        let grade = grade(&JunitFile::Missing, Some(0), &criteria(1, &[]));
        assert!(!grade.passed);
        assert_eq!(grade.problems, [Problem::NoJunitFile]);
    }

    #[test]
    fn a_nonzero_exit_fails_a_clean_file() {
        let xml =
            r#"<testsuites><testsuite name="s"><testcase name="a"/></testsuite></testsuites>"#;
        let grade = grade(&read(xml), Some(1), &criteria(1, &[]));
        assert_eq!(grade.problems, [Problem::ExitCode(Some(1))]);
        let killed = super::grade(&read(xml), None, &criteria(1, &[]));
        assert_eq!(killed.problems, [Problem::ExitCode(None)]);
    }

    #[test]
    fn a_file_rewritten_to_claim_tests_it_does_not_hold_has_too_few() {
        let xml =
            r#"<testsuites tests="40" failures="0"><testsuite name="s" tests="40"/></testsuites>"#;
        let grade = grade(&read(xml), Some(0), &criteria(1, &["test_add"]));
        assert_eq!(
            grade.problems,
            [
                Problem::TooFewTests {
                    ran: 0,
                    min_tests: 1
                },
                Problem::RequiredMissing("test_add".to_owned()),
            ]
        );
    }

    #[test]
    fn skipped_tests_do_not_count_as_run_and_a_skipped_required_test_fails() {
        let xml = r#"<testsuite name="s"><testcase name="a"><skipped/></testcase><testcase name="b"/></testsuite>"#;
        let grade = grade(&read(xml), Some(0), &criteria(2, &["a"]));
        assert_eq!(
            grade.problems,
            [
                Problem::TooFewTests {
                    ran: 1,
                    min_tests: 2
                },
                Problem::RequiredNotPassed("a".to_owned()),
            ]
        );
    }

    #[test]
    fn files_that_are_not_junit_are_unparsable() {
        for bad in [
            "",
            "PASSED test_add",
            "<html><body>ok</body></html>",
            "<testsuite><testcase",
        ] {
            let grade = grade(&read(bad), Some(0), &criteria(0, &[]));
            assert!(
                matches!(grade.problems.as_slice(), [Problem::Unparsable(_)]),
                "{bad:?}: {:?}",
                grade.problems
            );
        }
        let binary = grade(
            &JunitFile::Read(vec![0xff, 0xfe]),
            Some(0),
            &criteria(0, &[]),
        );
        assert!(matches!(
            binary.problems.as_slice(),
            [Problem::Unparsable(_)]
        ));
    }

    #[test]
    fn a_directory_or_an_oversized_file_is_named() {
        let grade = grade(&JunitFile::NotAFile, Some(0), &criteria(0, &[]));
        assert_eq!(grade.problems, [Problem::NotAFile]);
        let big = super::grade(
            &JunitFile::TooLarge { limit_bytes: 10 },
            Some(0),
            &criteria(0, &[]),
        );
        assert_eq!(big.problems, [Problem::TooLarge { limit_bytes: 10 }]);
    }
}
