//! The lock beside a spec, `<spec stem>.lock/`: the verified bundle exactly as built and
//! `lock.json` saying what it was verified against. A fresh lock is built, run and
//! checked before any model call; a stale or failing one is where a repair starts.
//! Everything read from a lock goes through [`Bundle::apply`] like a model's reply.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use agent_model::{BundleFile, CodeBundle};
use agent_spec::Spec;
use serde::{Deserialize, Serialize};

use crate::artifacts::{write_json, write_tree};
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
    /// `--refresh-base`: as [`LockMode::Use`], with each base image pulled again first
    /// and the lock rewritten when it moved.
    RefreshBase,
}

/// `lock.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockFile {
    /// SHA-256 over what the spec asks: prompt, conditions, checks, run settings, the
    /// inputs' contents and the hidden test suites with their files' contents.
    pub spec_digest: String,
    pub base_image: String,
    /// The base image the verified image was built on: its repo digest
    /// (`repository@sha256:…`) where it came from a registry, else its image id. A
    /// build from a fresh lock uses exactly this image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_digest: Option<String>,
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
    amend(dir, bundle_digest, |file| {
        if file.published.as_ref() == Some(published) {
            return false;
        }
        file.published = Some(published.clone());
        true
    })
}

/// Adds the digests of attestations stored with the published image to the lock at
/// `dir`, when its bundle is the one signed (`bundle_digest`); whether it wrote.
pub fn record_attestations(
    dir: &Path,
    bundle_digest: &str,
    digests: &[String],
) -> Result<bool, LoopError> {
    amend(dir, bundle_digest, |file| {
        let new: Vec<String> = digests
            .iter()
            .filter(|digest| !file.attestations.contains(digest))
            .cloned()
            .collect();
        let changed = !new.is_empty();
        file.attestations.extend(new);
        changed
    })
}

/// Reads the lock at `dir`, lets `change` amend it when its bundle is `bundle_digest`,
/// and writes it back when `change` says it changed; whether it wrote.
fn amend(
    dir: &Path,
    bundle_digest: &str,
    change: impl FnOnce(&mut LockFile) -> bool,
) -> Result<bool, LoopError> {
    let path = dir.join(LOCK_FILE);
    let failed = |source: std::io::Error| LoopError::Lock {
        path: dir.to_path_buf(),
        source,
    };
    let text = std::fs::read_to_string(&path).map_err(failed)?;
    let mut file: LockFile = serde_json::from_str(&text)
        .map_err(|error| failed(std::io::Error::new(std::io::ErrorKind::InvalidData, error)))?;
    if file.bundle_digest != bundle_digest || !change(&mut file) {
        return Ok(false);
    }
    write_json(&path, &file)?;
    Ok(true)
}

/// The digest of what `spec` asks now, its inputs and hidden suites read from disk:
/// what a lock and an attestation name.
pub fn current_spec_digest(spec: &Spec) -> Result<String, LoopError> {
    let inputs = crate::artifacts::read_inputs(spec)?;
    let suite_files = crate::artifacts::read_suite_files(spec)?;
    Ok(spec.digest(&inputs, &suite_files))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

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
        spec.digest(&BTreeMap::new(), &suite_files)
    }

    #[test]
    fn the_digest_of_a_plain_spec_is_pinned() {
        let folder = tempfile::tempdir().unwrap();
        // SHA-256 of {"spec": <BASE serialized>, "inputs": {}, "suite_files": {}} with
        // sorted keys and no spaces, computed apart from this code (Python's json and
        // hashlib). It moves only when the spec's serialized form does, which makes
        // every earlier lock stale once.
        assert_eq!(
            digest_of(folder.path(), BASE),
            "283f9ea0cba030a8f09b0ba7b5f37ebcc9c105f3fd89ef6b15b23c178cfd6370"
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
