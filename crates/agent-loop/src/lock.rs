//! The lock beside a spec, `<spec stem>.lock/`: the verified bundle exactly as built and
//! `lock.json` saying what it was verified against. A fresh lock is built, run and
//! checked before any model call; a stale or failing one is where a repair starts.
//! Everything read from a lock goes through [`Bundle::apply`] like a model's reply.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use agent_model::{BundleFile, CodeBundle};
use agent_spec::{Matcher, Spec};
use serde::{Deserialize, Serialize};

use crate::artifacts::{sha256_hex, write_json, write_tree};
use crate::bundle::{Bundle, DOCKERFILE};
use crate::errors::LoopError;

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
    /// SHA-256 over what the spec asks: prompt, conditions, checks, run settings and
    /// the inputs' contents.
    pub spec_digest: String,
    pub base_image: String,
    /// SHA-256 of the build context the verified image was built from.
    pub bundle_digest: String,
    pub model: String,
    pub verified_at: String,
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

/// The digest of what the spec asks: prompt, conditions, judging, checks, run settings
/// and the inputs' contents. Limits are left out: a lock stays fresh when only the
/// budget changes.
pub fn spec_digest(spec: &Spec, inputs: &BTreeMap<String, Vec<u8>>) -> String {
    let checks: Vec<serde_json::Value> = spec
        .checks
        .iter()
        .map(|check| {
            let (kind, value) = matcher_key(&check.matcher);
            serde_json::json!({"name": check.name, kind: value})
        })
        .collect();
    let inputs: BTreeMap<&String, String> = inputs
        .iter()
        .map(|(path, bytes)| (path, sha256_hex(bytes)))
        .collect();
    let canonical = serde_json::json!({
        "prompt": spec.prompt,
        "conditions": spec.conditions,
        "judge": spec.judge,
        "checks": checks,
        "run": {"stdin": spec.run.stdin, "env": spec.run.env, "args": spec.run.args},
        "inputs": inputs,
    });
    sha256_hex(canonical.to_string().as_bytes())
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
