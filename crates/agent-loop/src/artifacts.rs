//! The run directory on disk: the spec and inputs as they were run (so the directory
//! can be verified anywhere), each iteration's files, and JSON records. Nothing here
//! writes outside the directory it is given.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use agent_run_dir::{InputDigest, RunDir, SPEC_FOLDER};
use agent_spec::{Spec, Suite};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::errors::LoopError;

/// The spec's inputs, read once: context path → contents.
pub(crate) fn read_inputs(spec: &Spec) -> Result<BTreeMap<String, Vec<u8>>, LoopError> {
    read_files(&spec.inputs, |path, source| LoopError::Input {
        path,
        source,
    })
}

/// Each suite's hidden files: suite name → (path below its `dest` → contents).
pub(crate) fn read_suite_files(
    spec: &Spec,
) -> Result<BTreeMap<String, BTreeMap<String, Vec<u8>>>, LoopError> {
    spec.suites
        .iter()
        .map(|suite| Ok((suite.name.clone(), read_suite(suite)?)))
        .collect()
}

/// One suite's hidden files: path below its `dest` → contents.
pub(crate) fn read_suite(suite: &Suite) -> Result<BTreeMap<String, Vec<u8>>, LoopError> {
    read_files(&suite.files, |path, source| LoopError::SuiteFile {
        suite: suite.name.clone(),
        path,
        source,
    })
}

/// Files a spec lists, as (name, path on disk): name → contents.
fn read_files(
    files: &[(String, PathBuf)],
    failed: impl Fn(PathBuf, std::io::Error) -> LoopError,
) -> Result<BTreeMap<String, Vec<u8>>, LoopError> {
    files
        .iter()
        .map(|(name, path)| {
            std::fs::read(path)
                .map(|bytes| (name.clone(), bytes))
                .map_err(|source| failed(path.clone(), source))
        })
        .collect()
}

/// Copies the spec file, its inputs and its suites' hidden files into `<run_dir>/spec/`, laid out as beside the
/// original (inputs are relative to the spec's folder and never leave it), and returns
/// the copy's path relative to the run directory with the inputs' digests.
pub(crate) fn keep_spec(
    spec: &Spec,
    inputs: &BTreeMap<String, Vec<u8>>,
    suite_files: &BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    run_dir: &RunDir,
) -> Result<(String, Vec<InputDigest>), LoopError> {
    let text = std::fs::read(&spec.path).map_err(|source| LoopError::Input {
        path: spec.path.clone(),
        source,
    })?;
    let file_name = spec
        .path
        .file_name()
        .map_or_else(|| "spec.toml".into(), |name| name.to_string_lossy());
    let mut files = inputs.clone();
    files.insert(file_name.to_string(), text);
    // The hidden files too, where they are beside the spec, so that `verify` runs the
    // suites from the run directory alone.
    let folder = spec
        .path
        .parent()
        .and_then(|folder| std::fs::canonicalize(folder).ok());
    for suite in &spec.suites {
        for (below_dest, disk) in &suite.files {
            let beside = folder
                .as_ref()
                .and_then(|folder| disk.strip_prefix(folder).ok());
            let bytes = suite_files
                .get(&suite.name)
                .and_then(|files| files.get(below_dest));
            if let (Some(beside), Some(bytes)) = (beside, bytes) {
                files.insert(beside.to_string_lossy().into_owned(), bytes.clone());
            }
        }
    }
    write_tree(&run_dir.spec_folder(), &files)?;
    let digests = inputs
        .iter()
        .map(|(path, bytes)| InputDigest {
            path: path.clone(),
            sha256: sha256_hex(bytes),
        })
        .collect();
    Ok((format!("{SPEC_FOLDER}/{file_name}"), digests))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

pub(crate) fn create_dir(path: &Path) -> Result<(), LoopError> {
    std::fs::create_dir_all(path).map_err(|source| LoopError::Write {
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), LoopError> {
    std::fs::write(path, bytes).map_err(|source| LoopError::Write {
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn write_json(path: &Path, value: &impl Serialize) -> Result<(), LoopError> {
    let mut text = serde_json::to_string_pretty(value).expect("report types serialise");
    text.push('\n');
    write_file(path, text.as_bytes())
}

/// Writes `files` below `root`. Paths were validated by [`crate::bundle::Bundle::apply`]
/// (bundle files) or by the spec loader (inputs), so none escapes `root`; this checks
/// again because a write outside the run directory must be impossible.
pub(crate) fn write_tree(root: &Path, files: &BTreeMap<String, Vec<u8>>) -> Result<(), LoopError> {
    for (name, bytes) in files {
        let relative = Path::new(name);
        let safe = relative
            .components()
            .all(|component| matches!(component, Component::Normal(_)));
        if !safe {
            return Err(LoopError::Write {
                path: root.join(name),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "path leaves the bundle folder",
                ),
            });
        }
        let path = root.join(relative);
        if let Some(parent) = path.parent() {
            create_dir(parent)?;
        }
        write_file(&path, bytes)?;
    }
    Ok(())
}
