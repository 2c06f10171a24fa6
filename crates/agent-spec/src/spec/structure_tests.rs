//! `structure_tests = [...]`: container-structure-test files beside the spec, read and
//! parsed when the spec is.

use std::fs;
use std::path::Path;

use toml::Spanned;

use crate::errors::SpecError;
use crate::structure::{StructureFile, parse_structure};
use crate::validate::{self, Source};

pub(crate) fn read_structure_tests(
    source: &Source<'_>,
    raw: &[Spanned<String>],
) -> Result<Vec<StructureFile>, SpecError> {
    let folder = validate::folder_of(source.path);
    let mut files: Vec<StructureFile> = Vec::with_capacity(raw.len());
    for written in raw {
        let fail = |problem: String| SpecError::Input {
            location: source.location(written.span()),
            input: written.get_ref().escape_debug().to_string(),
            problem,
        };
        let name = written.get_ref();
        if name.is_empty() || Path::new(name).is_absolute() || name.contains('\0') {
            return Err(fail(
                "must be a path relative to the spec, e.g. \"structure.yaml\"".to_owned(),
            ));
        }
        // The real tool reads a config by its extension; anything else it refuses.
        if ![".yaml", ".yml"]
            .iter()
            .any(|extension| name.ends_with(extension))
        {
            return Err(fail(
                "must end in `.yaml` or `.yml`, as container-structure-test requires".to_owned(),
            ));
        }
        if files.iter().any(|file| file.path == *name) {
            return Err(fail("is listed twice".to_owned()));
        }
        let path = folder.join(name);
        let text = fs::read_to_string(&path).map_err(|error| {
            if error.kind() == std::io::ErrorKind::NotFound {
                fail(format!("does not exist (looked for `{}`)", path.display()))
            } else {
                fail(format!("cannot be read: {error}"))
            }
        })?;
        files.push(parse_structure(name, &path, &text)?);
    }
    Ok(files)
}
