//! The lock beside a spec, `<spec stem>.lock/`: the verified bundle exactly as built and
//! `lock.json` saying what it was verified against. A fresh lock is built, run and
//! checked before any model call; a stale or failing one is where a repair starts.
//! Everything read from a lock goes through [`Bundle::apply`] like a model's reply.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use agent_model::{BundleFile, CodeBundle};
use agent_spec::{
    BodyExpectation, Case, Check, ContentMatcher, FileCheck, ImageChecks, Matcher, Probe,
    Readiness, Service, Spec, Suite,
};
use serde::{Deserialize, Serialize};

use crate::artifacts::{sha256_hex, write_json, write_tree};
use crate::bundle::{Bundle, DOCKERFILE};
use crate::errors::LoopError;
use crate::report::Published;

pub const LOCK_FILE: &str = "lock.json";

/// How `agent run` uses locks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LockMode {
    /// Read the lock first, write it after a verification.
    #[default]
    Use,
    /// `--locked`: only the lock, never the model.
    Locked,
    /// `--no-lock`: neither read nor written.
    Off,
}

/// `lock.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockFile {
    /// SHA-256 over what the spec asks: prompt, conditions, checks, run settings, the
    /// inputs' contents and the hidden test suites with their files' contents.
    pub spec_digest: String,
    pub base_image: String,
    /// SHA-256 of the build context the verified image was built from.
    pub bundle_digest: String,
    pub model: String,
    pub verified_at: String,
    /// Where the verified image was pushed, once a push succeeded: a run of an
    /// unchanged spec pulls it instead of building.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<Published>,
    /// The digests (`sha256:…`) of the signed attestations stored with the published
    /// image (`--sign`), every run's that signed it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestations: Vec<String>,
}

/// What `report.json` says of the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockState {
    /// The lock matches the spec.
    Fresh,
    /// The spec changed since the lock was written.
    Stale,
    Missing,
}

/// A lock read from disk: its record and its bundle.
#[derive(Debug, Clone)]
pub struct Lock {
    pub file: LockFile,
    pub bundle: CodeBundle,
}

/// `<folder>/<spec stem>.lock`.
pub fn lock_dir(spec: &Spec) -> PathBuf {
    let stem = spec.path.file_stem().map_or_else(
        || spec.name.clone(),
        |stem| stem.to_string_lossy().into_owned(),
    );
    let folder = spec.path.parent().unwrap_or(Path::new("."));
    folder.join(format!("{stem}.lock"))
}

/// The lock beside `spec`, if there is one. A folder without `lock.json` is no lock.
pub fn read(spec: &Spec) -> Result<Option<Lock>, LoopError> {
    let dir = lock_dir(spec);
    let record = dir.join(LOCK_FILE);
    if !record.is_file() {
        return Ok(None);
    }
    let unreadable = |source: std::io::Error| LoopError::Lock {
        path: dir.clone(),
        source,
    };
    let text = std::fs::read_to_string(&record).map_err(unreadable)?;
    let file: LockFile = serde_json::from_str(&text)
        .map_err(|error| unreadable(std::io::Error::new(std::io::ErrorKind::InvalidData, error)))?;
    let mut bundle = CodeBundle {
        summary: "the locked bundle".to_string(),
        dockerfile: None,
        files: Vec::new(),
        delete: Vec::new(),
    };
    for entry in walkdir::WalkDir::new(&dir).sort_by_file_name() {
        let entry = entry.map_err(|error| unreadable(error.into()))?;
        if !entry.file_type().is_file() {
            continue;
        }
        let relative = entry
            .path()
            .strip_prefix(&dir)
            .expect("below the lock folder")
            .to_string_lossy()
            .replace('\\', "/");
        let content = std::fs::read_to_string(entry.path()).map_err(unreadable)?;
        match relative.as_str() {
            LOCK_FILE => {}
            DOCKERFILE => bundle.dockerfile = Some(content),
            _ => bundle.files.push(BundleFile {
                filename: relative,
                content,
            }),
        }
    }
    Ok(Some(Lock { file, bundle }))
}

/// Writes the verified bundle and its record beside the spec, replacing an older lock.
pub fn write(spec: &Spec, bundle: &Bundle, file: &LockFile) -> Result<PathBuf, LoopError> {
    let dir = lock_dir(spec);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|source| LoopError::Lock {
            path: dir.clone(),
            source,
        })?;
    }
    let mut files: BTreeMap<String, Vec<u8>> = bundle
        .files
        .iter()
        .map(|(path, content)| (path.clone(), content.clone().into_bytes()))
        .collect();
    files.insert(
        DOCKERFILE.to_string(),
        bundle.dockerfile.clone().into_bytes(),
    );
    write_tree(&dir, &files)?;
    write_json(&dir.join(LOCK_FILE), file)?;
    Ok(dir)
}

/// Records in the lock at `dir` that its verified image was pushed as `published`.
/// A lock whose bundle is not the pushed one's (`bundle_digest`) is left alone.
pub fn record_published(
    dir: &Path,
    bundle_digest: &str,
    published: &Published,
) -> Result<bool, LoopError> {
    let path = dir.join(LOCK_FILE);
    let failed = |source: std::io::Error| LoopError::Lock {
        path: dir.to_path_buf(),
        source,
    };
    let text = std::fs::read_to_string(&path).map_err(failed)?;
    let mut file: LockFile = serde_json::from_str(&text)
        .map_err(|error| failed(std::io::Error::new(std::io::ErrorKind::InvalidData, error)))?;
    if file.bundle_digest != bundle_digest || file.published.as_ref() == Some(published) {
        return Ok(false);
    }
    file.published = Some(published.clone());
    write_json(&path, &file)?;
    Ok(true)
}

/// Adds the digests of attestations stored with the published image to the lock at
/// `dir`, when its bundle is the one signed (`bundle_digest`); whether it wrote.
pub fn record_attestations(
    dir: &Path,
    bundle_digest: &str,
    digests: &[String],
) -> Result<bool, LoopError> {
    let path = dir.join(LOCK_FILE);
    let failed = |source: std::io::Error| LoopError::Lock {
        path: dir.to_path_buf(),
        source,
    };
    let text = std::fs::read_to_string(&path).map_err(failed)?;
    let mut file: LockFile = serde_json::from_str(&text)
        .map_err(|error| failed(std::io::Error::new(std::io::ErrorKind::InvalidData, error)))?;
    let new: Vec<&String> = digests
        .iter()
        .filter(|digest| !file.attestations.contains(digest))
        .collect();
    if file.bundle_digest != bundle_digest || new.is_empty() {
        return Ok(false);
    }
    file.attestations.extend(new.into_iter().cloned());
    write_json(&path, &file)?;
    Ok(true)
}

/// The digest of what `spec` asks now, its inputs and hidden suites read from disk:
/// what a lock and an attestation name.
pub fn current_spec_digest(spec: &Spec) -> Result<String, LoopError> {
    let inputs = crate::artifacts::read_inputs(spec)?;
    let suite_files = crate::artifacts::read_suite_files(spec)?;
    Ok(spec_digest(spec, &inputs, &suite_files))
}

/// The digest of what the spec asks: prompt, conditions, judging, checks, run settings,
/// cases, image and file checks, the structure-test files' contents, the inputs'
/// contents, and the hidden test suites with their files' contents (`suite_files`:
/// suite name → path below its `dest` → contents). Limits are left out: a lock stays
/// fresh when only the budget changes. Each newer part enters only when the spec has
/// it, so the digest of a spec without them is what it always was.
pub fn spec_digest(
    spec: &Spec,
    inputs: &BTreeMap<String, Vec<u8>>,
    suite_files: &BTreeMap<String, BTreeMap<String, Vec<u8>>>,
) -> String {
    let inputs = content_digests(inputs);
    let mut canonical = serde_json::json!({
        "prompt": spec.prompt,
        "conditions": spec.conditions,
        "judge": spec.judge,
        "checks": checks_json(&spec.checks),
        "run": {"stdin": spec.run.stdin, "env": spec.run.env, "args": spec.run.args},
        "inputs": inputs,
    });
    let parts = [
        (
            "cases",
            (!spec.cases.is_empty()).then(|| cases_json(&spec.cases)),
        ),
        ("image", spec.image.as_ref().map(image_json)),
        (
            "files",
            (!spec.files.is_empty()).then(|| files_json(&spec.files)),
        ),
        ("service", spec.service.as_ref().map(service_json)),
        (
            "probes",
            (!spec.probes.is_empty()).then(|| probes_json(&spec.probes)),
        ),
        (
            "structure_tests",
            (!spec.structure_tests.is_empty()).then(|| {
                let files: Vec<serde_json::Value> = spec
                    .structure_tests
                    .iter()
                    .map(|file| {
                        serde_json::json!([file.path, sha256_hex(file.contents.as_bytes())])
                    })
                    .collect();
                serde_json::Value::from(files)
            }),
        ),
        (
            "suites",
            (!spec.suites.is_empty()).then(|| suites_json(&spec.suites, suite_files)),
        ),
    ];
    for (key, value) in parts {
        if let Some(value) = value {
            canonical[key] = value;
        }
    }
    sha256_hex(canonical.to_string().as_bytes())
}

/// Path → SHA-256 of the contents.
fn content_digests(files: &BTreeMap<String, Vec<u8>>) -> BTreeMap<&String, String> {
    files
        .iter()
        .map(|(path, bytes)| (path, sha256_hex(bytes)))
        .collect()
}

fn checks_json(checks: &[Check]) -> serde_json::Value {
    checks
        .iter()
        .map(|check| {
            let (kind, value) = matcher_key(&check.matcher);
            serde_json::json!({"name": check.name, kind: value})
        })
        .collect()
}

fn cases_json(cases: &[Case]) -> serde_json::Value {
    cases
        .iter()
        .map(|case| {
            serde_json::json!({
                "name": case.name, "stdin": case.stdin, "args": case.args, "env": case.env,
                "entrypoint": case.entrypoint, "command": case.command,
                "timeout_secs": case.timeout_secs, "checks": checks_json(&case.checks),
            })
        })
        .collect()
}

fn image_json(image: &ImageChecks) -> serde_json::Value {
    serde_json::json!({
        "non_root": image.non_root, "user": image.user, "workdir": image.workdir,
        "exposed_ports": image.exposed_ports, "env": image.env, "labels": image.labels,
        "entrypoint": image.entrypoint, "cmd": image.cmd, "max_size_mb": image.max_size_mb,
    })
}

fn files_json(files: &[FileCheck]) -> serde_json::Value {
    files
        .iter()
        .map(|file| {
            let content = file.content.as_ref().map(|content| {
                let text = match content {
                    ContentMatcher::Contains(text) | ContentMatcher::NotContains(text) => {
                        text.as_str()
                    }
                    ContentMatcher::Matches(regex) => regex.as_str(),
                };
                serde_json::json!({content.key(): text})
            });
            serde_json::json!({
                "path": file.path, "exists": file.exists, "mode": file.mode, "uid": file.uid,
                "gid": file.gid, "executable": file.executable, "content": content,
            })
        })
        .collect()
}

fn service_json(service: &Service) -> serde_json::Value {
    let (kind, value): (&str, serde_json::Value) = match &service.readiness {
        Readiness::Http(path) => ("ready_http", path.as_str().into()),
        Readiness::Log(regex) => ("ready_log", regex.as_str().into()),
        Readiness::Tcp => ("ready_tcp", true.into()),
    };
    serde_json::json!({
        "port": service.port, kind: value, "ready_timeout_secs": service.ready_timeout_secs,
        "stop_timeout_secs": service.stop_timeout_secs,
    })
}

fn probes_json(probes: &[Probe]) -> serde_json::Value {
    probes
        .iter()
        .map(|probe| {
            let expect = probe.expect.as_ref().map(|expect| {
                let value: serde_json::Value = match expect {
                    BodyExpectation::Contains(text) | BodyExpectation::Equals(text) => {
                        text.as_str().into()
                    }
                    BodyExpectation::Matches(regex) => regex.as_str().into(),
                    BodyExpectation::Json(json) => json.clone(),
                };
                serde_json::json!({expect.key(): value})
            });
            serde_json::json!({
                "name": probe.name, "method": probe.method, "path": probe.path,
                "headers": probe.headers, "body": probe.body, "status": probe.status,
                "expect": expect,
            })
        })
        .collect()
}

/// Each suite with its files' digests; a suite missing from `suite_files` enters
/// with none, which no read suite digests to.
fn suites_json(
    suites: &[Suite],
    suite_files: &BTreeMap<String, BTreeMap<String, Vec<u8>>>,
) -> serde_json::Value {
    let none = BTreeMap::new();
    suites
        .iter()
        .map(|suite| {
            let files = content_digests(suite_files.get(&suite.name).unwrap_or(&none));
            serde_json::json!({
                "name": suite.name, "files": files, "dest": suite.dest,
                "command": suite.command, "junit": suite.junit, "required": suite.required,
                "min_tests": suite.min_tests, "timeout_secs": suite.timeout_secs,
            })
        })
        .collect()
}

/// A matcher as the key and value it was written with in the spec.
fn matcher_key(matcher: &Matcher) -> (&'static str, serde_json::Value) {
    match matcher {
        Matcher::ExitCode(code) => ("exit_code", (*code).into()),
        Matcher::StdoutEquals(text) => ("stdout_equals", text.as_str().into()),
        Matcher::StdoutContains(text) => ("stdout_contains", text.as_str().into()),
        Matcher::StdoutNotContains(text) => ("stdout_not_contains", text.as_str().into()),
        Matcher::StdoutMatches(regex) => ("stdout_matches", regex.as_str().into()),
        Matcher::StderrContains(text) => ("stderr_contains", text.as_str().into()),
        Matcher::StderrNotContains(text) => ("stderr_not_contains", text.as_str().into()),
        Matcher::StderrMatches(regex) => ("stderr_matches", regex.as_str().into()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::spec_digest;

    const BASE: &str = "prompt = \"Add two numbers.\"\nconditions = \"Prints the sum.\"\n\
        [[check]]\nexit_code = 0\n";

    /// Asserts that `prefix` followed by each variant has a digest not in `seen`, and
    /// adds each to it.
    fn each_changes_the_digest(
        folder: &Path,
        prefix: &str,
        variants: &[String],
        seen: &mut Vec<String>,
    ) {
        for variant in variants {
            let digest = digest_of(folder, &format!("{prefix}{variant}"));
            assert!(
                !seen.contains(&digest),
                "{variant} did not change the digest"
            );
            seen.push(digest);
        }
    }

    fn digest_of(folder: &Path, text: &str) -> String {
        let path = folder.join("adder.toml");
        std::fs::write(&path, text).unwrap();
        let spec = agent_spec::load_spec(&path).unwrap();
        let suite_files = crate::artifacts::read_suite_files(&spec).unwrap();
        spec_digest(&spec, &BTreeMap::new(), &suite_files)
    }

    #[test]
    fn a_spec_without_the_newer_parts_keeps_the_digest_it_had() {
        let folder = tempfile::tempdir().unwrap();
        // The digest of BASE before cases, image, file and structure checks existed:
        // SHA-256 of its canonical JSON with sorted keys, computed apart from this code.
        assert_eq!(
            digest_of(folder.path(), BASE),
            "2a74529464865f7a2b320086c8a2235bfe2a96c7545c6cd0dfa830a7c62c2740"
        );
    }

    #[test]
    fn each_newer_part_changes_the_digest() {
        let folder = tempfile::tempdir().unwrap();
        let structure =
            |text: &str| std::fs::write(folder.path().join("structure.yaml"), text).unwrap();
        structure("schemaVersion: \"2.0.0\"\nmetadataTest:\n  user: app\n");
        let base = digest_of(folder.path(), BASE);
        let case =
            "[[case]]\nname = \"sum\"\nstdin = \"3 4\\n\"\n[[case.check]]\nstdout_equals = \"7\"\n";
        let variants = [
            case.to_owned(),
            case.replace("3 4", "3 5"),
            case.replace("\"7\"", "\"8\""),
            format!("{case}[[case]]\nname = \"help\"\nargs = [\"--help\"]\n"),
            "[image]\nnon_root = true\n".to_owned(),
            "[image]\nexposed_ports = [8080]\n".to_owned(),
            "[image]\nexposed_ports = [\"8080/udp\"]\n".to_owned(),
            "[[file]]\npath = \"/app/main.py\"\n".to_owned(),
            "[[file]]\npath = \"/app/main.py\"\nmode = \"-rw-r--r--\"\n".to_owned(),
            "[[file]]\npath = \"/app/main.py\"\ncontains = \"def main\"\n".to_owned(),
        ];
        let mut seen = vec![base.clone()];
        each_changes_the_digest(folder.path(), BASE, &variants, &mut seen);
        let with_tests = format!("structure_tests = [\"structure.yaml\"]\n{BASE}");
        let first = digest_of(folder.path(), &with_tests);
        assert!(!seen.contains(&first));
        structure("schemaVersion: \"2.0.0\"\nmetadataTest:\n  user: web\n");
        let changed = digest_of(folder.path(), &with_tests);
        assert_ne!(
            first, changed,
            "the structure file's contents feed the digest"
        );
    }

    #[test]
    fn the_service_and_each_probe_change_the_digest() {
        let folder = tempfile::tempdir().unwrap();
        let base = "prompt = \"Serve sums.\"\nconditions = \"Answers sums.\"\n\
            [[check]]\nstdout_contains = \"listening\"\n";
        let service = "[service]\nport = 8080\nready_http = \"/health\"\n";
        let probe = "[[probe]]\nname = \"add\"\npath = \"/add?a=2&b=3\"\njson = { sum = 5 }\n";
        let variants = [
            String::new(),
            service.to_owned(),
            service.replace("8080", "8081"),
            service.replace("ready_http = \"/health\"", "ready_tcp = true"),
            format!("{service}stop_timeout_secs = 3\n"),
            format!("{service}{probe}"),
            format!("{service}{}", probe.replace("sum = 5", "sum = 6")),
            format!("{service}{probe}method = \"POST\"\n"),
            format!("{service}{probe}status = 201\n"),
            format!(
                "{service}{}",
                probe.replace("json = { sum = 5 }", "body_contains = \"5\"")
            ),
        ];
        let mut seen = Vec::new();
        each_changes_the_digest(folder.path(), base, &variants, &mut seen);
    }

    #[test]
    fn each_suite_field_and_a_hidden_files_content_change_the_digest() {
        let folder = tempfile::tempdir().unwrap();
        let hidden = folder.path().join("hidden");
        std::fs::create_dir(&hidden).unwrap();
        std::fs::write(hidden.join("test_add.py"), "def test_add(): pass\n").unwrap();
        std::fs::write(hidden.join("test_sub.py"), "def test_sub(): pass\n").unwrap();
        let suite = "[[suite]]\nname = \"unit\"\nfiles = [\"hidden/\"]\ndest = \"/suite\"\n\
            command = [\"pytest\", \"/suite\"]\njunit = \"/tmp/junit.xml\"\n";
        let variants = [
            String::new(),
            suite.to_owned(),
            suite.replace("\"unit\"", "\"smoke\""),
            suite.replace("[\"hidden/\"]", "[\"hidden/test_add.py\"]"),
            suite.replace("\"/suite\"\n", "\"/tests\"\n"),
            suite.replace("\"pytest\", ", "\"pytest\", \"-q\", "),
            suite.replace("/tmp/junit.xml", "/tmp/report.xml"),
            format!("{suite}required = [\"test_add\"]\n"),
            format!("{suite}min_tests = 2\n"),
            format!("{suite}timeout_secs = 30\n"),
            format!("{suite}{}", suite.replace("\"unit\"", "\"again\"")),
        ];
        let mut seen = Vec::new();
        each_changes_the_digest(folder.path(), BASE, &variants, &mut seen);
        let with_suite = format!("{BASE}{suite}");
        let first = digest_of(folder.path(), &with_suite);
        std::fs::write(hidden.join("test_sub.py"), "def test_sub(): assert False\n").unwrap();
        let changed = digest_of(folder.path(), &with_suite);
        assert_ne!(first, changed, "the hidden files' contents feed the digest");
        assert!(!seen.contains(&changed));
    }
}
