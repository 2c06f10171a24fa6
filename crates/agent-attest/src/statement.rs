//! The in-toto Statements (v1) `agent` signs for a pushed image: a Test Result of the
//! checks it passed, and a SLSA Provenance v1 of how it was made.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const TEST_RESULT: &str = "https://in-toto.io/attestation/test-result/v0.1";
pub const PROVENANCE: &str = "https://slsa.dev/provenance/v1";
/// The `buildType` of `agent run`'s provenance: what `externalParameters` hold.
pub const BUILD_TYPE: &str = "https://agent.dev/provenance/spec-run/v1";
/// The Test Result's `result` of an image that passed every check.
pub const PASSED: &str = "PASSED";

/// An in-toto Statement; the predicate stays JSON so that any predicate reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub statement_type: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: serde_json::Value,
}

/// What a Statement is about: the repository and its digests (`sha256` → hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub name: String,
    pub digest: BTreeMap<String, String>,
}

impl Subject {
    /// `repository` with the manifest digest `sha256:<hex>`.
    pub fn image(repository: &str, digest: &str) -> Subject {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        Subject {
            name: repository.to_owned(),
            digest: BTreeMap::from([("sha256".to_owned(), hex.to_owned())]),
        }
    }
}

/// in-toto's ResourceDescriptor, as far as these statements use it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ResourceDescriptor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub digest: BTreeMap<String, String>,
}

impl ResourceDescriptor {
    /// A named resource with one digest of `algorithm`.
    pub fn new(name: &str, uri: Option<String>, algorithm: &str, hex: &str) -> Self {
        ResourceDescriptor {
            name: Some(name.to_owned()),
            uri,
            digest: BTreeMap::from([(algorithm.to_owned(), hex.to_owned())]),
        }
    }
}

/// What a Test Result says: every check passed, and what they were checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestFacts {
    /// `<group>/<check name>`, in the report's order.
    pub passed: Vec<String>,
    /// The spec first, then each hidden-suite and structure-test file.
    pub configuration: Vec<ResourceDescriptor>,
}

/// What the provenance says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildFacts {
    pub spec: ResourceDescriptor,
    pub model: String,
    /// The builder setting (`auto`, `classic`, `buildkit`).
    pub builder: String,
    /// The base image, with its digest where known.
    pub base_image: ResourceDescriptor,
    pub bundle_digest: String,
    /// The source revision as the image's labels name it.
    pub source: Option<ResourceDescriptor>,
    pub builder_id: String,
    pub invocation_id: String,
    /// RFC 3339.
    pub started_on: String,
    pub finished_on: String,
}

/// The Test Result of `subject`.
pub fn test_result_statement(subject: Subject, facts: &TestFacts) -> Statement {
    Statement {
        statement_type: STATEMENT_TYPE.to_owned(),
        subject: vec![subject],
        predicate_type: TEST_RESULT.to_owned(),
        predicate: json!({
            "result": PASSED,
            "configuration": facts.configuration,
            "passedTests": facts.passed,
            "warnedTests": [],
            "failedTests": [],
        }),
    }
}

/// The SLSA Provenance v1 of `subject`.
pub fn provenance_statement(subject: Subject, facts: &BuildFacts) -> Statement {
    let bundle = ResourceDescriptor::new("bundle", None, "sha256", &facts.bundle_digest);
    let mut dependencies = vec![facts.base_image.clone(), bundle];
    dependencies.extend(facts.source.clone());
    Statement {
        statement_type: STATEMENT_TYPE.to_owned(),
        subject: vec![subject],
        predicate_type: PROVENANCE.to_owned(),
        predicate: json!({
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "spec": facts.spec,
                    "model": facts.model,
                    "builder": facts.builder,
                },
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {"id": facts.builder_id},
                "metadata": {
                    "invocationId": facts.invocation_id,
                    "startedOn": facts.started_on,
                    "finishedOn": facts.finished_on,
                },
            },
        }),
    }
}

/// The fields of a Test Result predicate the check reads; others are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct TestResultPredicate {
    pub result: String,
    #[serde(default)]
    pub configuration: Vec<ResourceDescriptor>,
    #[serde(default, rename = "passedTests")]
    pub passed_tests: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_result_names_the_digest_and_every_check() {
        let facts = TestFacts {
            passed: vec!["default/sequence".to_owned(), "image/non_root".to_owned()],
            configuration: vec![ResourceDescriptor::new(
                "fizzbuzz",
                Some("specs/fizzbuzz.toml".to_owned()),
                "sha256",
                "abc",
            )],
        };
        let statement = test_result_statement(
            Subject::image("127.0.0.1:5000/a/fizzbuzz", "sha256:12"),
            &facts,
        );
        let value = serde_json::to_value(&statement).unwrap();
        assert_eq!(value["_type"], STATEMENT_TYPE);
        assert_eq!(value["subject"][0]["digest"]["sha256"], "12");
        assert_eq!(value["predicateType"], TEST_RESULT);
        assert_eq!(value["predicate"]["result"], "PASSED");
        assert_eq!(value["predicate"]["passedTests"][1], "image/non_root");
        assert_eq!(value["predicate"]["failedTests"], json!([]));
        assert_eq!(
            value["predicate"]["configuration"][0],
            json!({"name": "fizzbuzz", "uri": "specs/fizzbuzz.toml", "digest": {"sha256": "abc"}})
        );
    }
}
