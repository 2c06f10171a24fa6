//! `agent schema spec|config`: the committed schemas (`docs/schema/`) are what the
//! command prints, and a validator written apart from this code, `check-jsonschema`
//! (its path in `AGENT_TEST_SCHEMA_CHECK`, from `scripts/schema-check-setup`; it reads
//! the TOML itself with Python's `tomllib`), accepts every spec and `agent.toml` of
//! the repository against them and refuses an unknown key, as the parser does.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository")
}

fn schema_check() -> PathBuf {
    installed(
        "AGENT_TEST_SCHEMA_CHECK",
        "the check-jsonschema command",
        "scripts/schema-check-setup",
    )
}

fn schema_file(which: &str) -> PathBuf {
    repository_root().join(format!("docs/schema/{which}.schema.json"))
}

/// `check-jsonschema` on `files` against `docs/schema/<which>.schema.json`: whether
/// it accepts them, and what it says.
pub(crate) fn validate(which: &str, files: &[PathBuf]) -> (bool, String) {
    let output = Command::new(schema_check())
        .arg("--schemafile")
        .arg(schema_file(which))
        .args(files)
        .output()
        .expect("check-jsonschema runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), said)
}

/// Every TOML file below the fixtures, the tests and the examples, and the root's
/// `agent.toml`, as (config files, spec files).
fn repository_files() -> (Vec<PathBuf>, Vec<PathBuf>) {
    let root = repository_root();
    let mut configs = vec![root.join("agent.toml")];
    let mut specs = Vec::new();
    for folder in ["fixtures", "tests", "examples"] {
        for entry in walkdir::WalkDir::new(root.join(folder)).sort_by_file_name() {
            let entry = entry.expect("a readable folder");
            let path = entry.path();
            if path.extension().is_none_or(|extension| extension != "toml") {
                continue;
            }
            match path.file_name().and_then(|name| name.to_str()) {
                Some("agent.toml") => configs.push(path.to_path_buf()),
                Some("Cargo.toml") => {}
                _ => specs.push(path.to_path_buf()),
            }
        }
    }
    (configs, specs)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_committed_schemas_are_what_the_command_prints() {
    let workspace = Workspace::new("http://127.0.0.1:9/v1", "", "");
    for which in ["spec", "config"] {
        let output = agent(&workspace, &["schema", which]).await;
        output.assert_code(0);
        let committed = std::fs::read_to_string(schema_file(which)).expect("a committed schema");
        assert_eq!(
            output.stdout, committed,
            "docs/schema/{which}.schema.json is stale: `agent schema {which} > docs/schema/{which}.schema.json`"
        );
        let schema: serde_json::Value = serde_json::from_str(&committed).expect("JSON");
        assert_eq!(schema["additionalProperties"], false, "{which}");
    }
}

#[test]
fn every_spec_and_config_of_the_repository_validates() {
    let (configs, specs) = repository_files();
    assert!(specs.len() >= 3, "the fixtures' specs: {specs:?}");
    let (accepted, said) = validate("spec", &specs);
    assert!(accepted, "{said}");
    let (accepted, said) = validate("config", &configs);
    assert!(accepted, "{said}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_key_is_refused_by_the_schema_as_by_the_parser() {
    let workspace = Workspace::new("http://127.0.0.1:9/v1", "", "");
    let good = workspace.spec(
        "good",
        "prompt = \"p\"\nconditions = \"c\"\n[run]\nargs = [\"x\"]\n[[check]]\nstdout_equals = \"x\"\n",
    );
    let (accepted, said) = validate("spec", std::slice::from_ref(&good));
    assert!(accepted, "{said}");
    for (name, text) in [
        (
            "nested",
            "prompt = \"p\"\nconditions = \"c\"\n[[check]]\nstdout_equal = \"x\"\n",
        ),
        ("top", "prompt = \"p\"\nconditions = \"c\"\njugde = true\n"),
        (
            "typed",
            "prompt = \"p\"\nconditions = \"c\"\n[run]\nargs = \"x\"\n",
        ),
    ] {
        let spec = workspace.spec(name, text);
        let (accepted, said) = validate("spec", std::slice::from_ref(&spec));
        assert!(!accepted, "{name}: {said}");
        let output = agent(&workspace, &["check", spec.to_str().unwrap()]).await;
        output.assert_code(2);
    }
    let (accepted, said) = validate("spec", &[good.clone(), workspace.spec("x", "jugde = 1\n")]);
    assert!(!accepted && said.contains("jugde"), "{said}");
    let config = workspace.path().join("agent.toml");
    std::fs::write(&config, "[model]\ntemprature = 0.1\n").unwrap();
    let (accepted, said) = validate("config", &[config]);
    assert!(!accepted && said.contains("temprature"), "{said}");
}
