//! The build context: a deterministic tar made in memory (sorted entries, fixed
//! mtime, mode and owner), so identical bundles give identical bytes and the engine's
//! layer cache holds across iterations.

use std::collections::BTreeMap;

use crate::errors::SandboxError;

#[derive(Debug, Clone)]
pub struct BuildContext {
    pub bytes: Vec<u8>,
    /// Hex SHA-256 of `bytes`.
    pub digest: String,
}

/// `files` maps context paths (already validated: relative, `/`-separated, no `..`)
/// to contents; it includes `Dockerfile`.
pub fn build_context(files: &BTreeMap<String, Vec<u8>>) -> Result<BuildContext, SandboxError> {
    let _ = files;
    todo!()
}
