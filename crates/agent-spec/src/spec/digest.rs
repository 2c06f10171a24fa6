//! The digest of what a spec asks, taken from its own serialized form: a field added
//! to the spec enters it without a line here, so a lock made for an older spec goes
//! stale when the new field is set.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serializer;
use serde::ser::SerializeSeq;
use sha2::{Digest, Sha256};

use crate::spec::Spec;
use crate::structure::StructureFile;

impl Spec {
    /// SHA-256, in hex, of the spec's serialized form with sorted keys, beside the
    /// contents of its inputs (`inputs`: path in the build context → bytes) and of its
    /// hidden suites' files (`suite_files`: suite name → path below its `dest` →
    /// bytes). The caller reads those files once for the build as well. Limits are
    /// left out: a lock stays fresh when only the budget changes.
    pub fn digest(
        &self,
        inputs: &BTreeMap<String, Vec<u8>>,
        suite_files: &BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    ) -> String {
        let suite_files: BTreeMap<&String, BTreeMap<&String, String>> = suite_files
            .iter()
            .map(|(suite, files)| (suite, content_digests(files)))
            .collect();
        let canonical = serde_json::json!({
            "spec": self,
            "inputs": content_digests(inputs),
            "suite_files": suite_files,
        });
        sha256_hex(canonical.to_string().as_bytes())
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Path → SHA-256 of the contents.
fn content_digests(files: &BTreeMap<String, Vec<u8>>) -> BTreeMap<&String, String> {
    files
        .iter()
        .map(|(path, bytes)| (path, sha256_hex(bytes)))
        .collect()
}

/// Files as (path in the image or build context, path on disk): only the first, so
/// the digest does not depend on where the spec's folder is.
pub(crate) fn context_paths<S: Serializer>(
    files: &[(String, PathBuf)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut sequence = serializer.serialize_seq(Some(files.len()))?;
    for (path, _) in files {
        sequence.serialize_element(path)?;
    }
    sequence.end()
}

/// Structure-test files as (path as written, SHA-256 of the contents, how they run:
/// `structure_defaults` and `structure_allow_host` can change a verdict).
pub(crate) fn structure_files<S: Serializer>(
    files: &[StructureFile],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut sequence = serializer.serialize_seq(Some(files.len()))?;
    for file in files {
        let settings = file.settings;
        let defaults = match settings.defaults {
            crate::structure::StructureDefaults::Agent => "agent",
            crate::structure::StructureDefaults::Cst => "cst",
        };
        sequence.serialize_element(&(
            &file.path,
            sha256_hex(file.contents.as_bytes()),
            defaults,
            settings.allow_host,
        ))?;
    }
    sequence.end()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::load_spec;

    /// A spec that sets every part, with its folder.
    fn full_spec() -> (tempfile::TempDir, Spec) {
        let folder = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = folder.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("data.csv", "a,b\n");
        write("hidden/test_add.py", "def test_add(): pass\n");
        write(
            "structure.yaml",
            "schemaVersion: \"2.0.0\"\nmetadataTest:\n  user: app\n",
        );
        let text = r#"
            prompt = "Serve sums."
            conditions = "Answers sums."
            judge = true
            inputs = ["data.csv"]
            structure_tests = ["structure.yaml"]
            [limits]
            max_iterations = 3
            [run]
            stdin = "3 4\n"
            env = { GREETING = "hi" }
            args = ["--fast"]
            [[check]]
            stdout_matches = "listening"
            [image]
            non_root = true
            [[file]]
            path = "/app/main.py"
            mode = "-rw-r--r--"
            [service]
            port = 8080
            ready_log = "ready"
            [[probe]]
            name = "add"
            path = "/add?a=2&b=3"
            body_matches = "5"
            [[suite]]
            name = "unit"
            files = ["hidden/"]
            dest = "/suite"
            command = ["pytest", "/suite"]
            junit = "/tmp/junit.xml"
        "#;
        write("adder.toml", text);
        let spec = load_spec(&folder.path().join("adder.toml")).unwrap();
        (folder, spec)
    }

    fn digest_of_value(value: &serde_json::Value) -> String {
        sha256_hex(value.to_string().as_bytes())
    }

    /// Every leaf of `value`, changed one at a time: each gives another digest.
    fn each_leaf_changes(root: &serde_json::Value, at: &mut Vec<String>, seen: &mut Vec<String>) {
        let changed = |value: &serde_json::Value| -> serde_json::Value {
            match value {
                serde_json::Value::Bool(flag) => (!flag).into(),
                serde_json::Value::Number(number) => (number.as_f64().unwrap() + 1.0).into(),
                serde_json::Value::String(text) => format!("{text}x").into(),
                serde_json::Value::Null => "set".into(),
                other => serde_json::json!([other]),
            }
        };
        let pointer: String = at.iter().map(|step| format!("/{step}")).collect();
        let value = root.pointer(&pointer).unwrap().clone();
        let children: Vec<String> = match &value {
            serde_json::Value::Object(map) => map.keys().cloned().collect(),
            serde_json::Value::Array(items) => (0..items.len()).map(|i| i.to_string()).collect(),
            _ => Vec::new(),
        };
        if children.is_empty() {
            let mut copy = root.clone();
            *copy.pointer_mut(&pointer).unwrap() = changed(&value);
            let digest = digest_of_value(&copy);
            assert!(
                !seen.contains(&digest),
                "{pointer} did not change the digest"
            );
            seen.push(digest);
        }
        for child in children {
            at.push(child.replace('~', "~0").replace('/', "~1"));
            each_leaf_changes(root, at, seen);
            at.pop();
        }
    }

    #[test]
    fn every_field_of_the_spec_enters_its_digest() {
        let (_folder, spec) = full_spec();
        let value = serde_json::to_value(&spec).unwrap();
        // Naming every field: a field added to `Spec` fails to compile here until it
        // is sorted into what the digest reads or what it leaves out on purpose.
        let Spec {
            name: _,
            path: _,
            limits: _,
            prompt: _,
            conditions: _,
            judge: _,
            inputs: _,
            run: _,
            checks: _,
            cases: _,
            image: _,
            files: _,
            structure_tests: _,
            service: _,
            probes: _,
            suites: _,
        } = &spec;
        let read = [
            "prompt",
            "conditions",
            "judge",
            "inputs",
            "run",
            "checks",
            "cases",
            "image",
            "files",
            "structure_tests",
            "service",
            "probes",
            "suites",
        ];
        let object = value.as_object().unwrap();
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut expected = read.to_vec();
        expected.sort_unstable();
        assert_eq!(keys, expected);
        let mut seen = vec![digest_of_value(&value)];
        each_leaf_changes(&value, &mut Vec::new(), &mut seen);
        assert!(seen.len() > 30, "only {} leaves", seen.len());
    }

    #[test]
    fn the_digest_reads_contents_and_not_where_the_spec_lives() {
        let (folder, spec) = full_spec();
        let inputs = BTreeMap::from([("data.csv".to_owned(), b"a,b\n".to_vec())]);
        let suite = |text: &str| {
            BTreeMap::from([(
                "unit".to_owned(),
                BTreeMap::from([("test_add.py".to_owned(), text.as_bytes().to_vec())]),
            )])
        };
        let first = spec.digest(&inputs, &suite("pass"));
        assert_ne!(first, spec.digest(&BTreeMap::new(), &suite("pass")));
        assert_ne!(first, spec.digest(&inputs, &suite("fail")));
        let mut limited = spec.clone();
        limited.limits.max_iterations = Some(9);
        limited.name = "other".to_owned();
        assert_eq!(first, limited.digest(&inputs, &suite("pass")));

        let moved = tempfile::tempdir().unwrap();
        for entry in walkdir::WalkDir::new(folder.path()).min_depth(1) {
            let entry = entry.unwrap();
            let target = moved
                .path()
                .join(entry.path().strip_prefix(folder.path()).unwrap());
            if entry.file_type().is_dir() {
                std::fs::create_dir_all(target).unwrap();
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
        let again = load_spec(&moved.path().join("adder.toml")).unwrap();
        assert_eq!(first, again.digest(&inputs, &suite("pass")));
    }
}
