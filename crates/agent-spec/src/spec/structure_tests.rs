//! `structure_tests = [...]`: container-structure-test files beside the spec, read and
//! parsed when the spec is.

use std::fs;
use std::path::Path;

use crate::spanned::Spanned;

use crate::errors::SpecError;
use crate::structure::{StructureDefaults, StructureFile, StructureSettings, parse_structure};
use crate::validate::{self, Source};

/// `structure_defaults` and `structure_allow_host`: how every structure-test file
/// of the spec runs.
pub(crate) fn structure_settings(
    source: &Source<'_>,
    defaults: Option<&Spanned<String>>,
    allow_host: Option<bool>,
) -> Result<StructureSettings, SpecError> {
    let defaults = match defaults {
        None => StructureDefaults::Agent,
        Some(written) => match written.get_ref().as_str() {
            "agent" => StructureDefaults::Agent,
            "cst" => StructureDefaults::Cst,
            other => {
                return Err(SpecError::Input {
                    location: source.location(written.span()),
                    input: other.escape_debug().to_string(),
                    problem: "must be \"agent\" (the spec's limits, no network, capabilities dropped) \
                              or \"cst\" (as container-structure-test runs them: docker run's defaults)"
                        .to_owned(),
                });
            }
        },
    };
    Ok(StructureSettings {
        defaults,
        allow_host: allow_host.unwrap_or(false),
    })
}

pub(crate) fn read_structure_tests(
    source: &Source<'_>,
    raw: &[Spanned<String>],
    settings: StructureSettings,
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
        files.push(parse_structure(name, &path, &text, settings)?);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use crate::errors::SpecError;
    use crate::spec::load_spec;
    use crate::spec::testing::MINIMAL;

    fn spec_with(folder: &std::path::Path, list: &str) -> Result<crate::spec::Spec, SpecError> {
        let path = folder.join("web.toml");
        fs::write(&path, format!("{MINIMAL}structure_tests = {list}\n")).unwrap();
        load_spec(&path).map_err(|problems| problems.into_iter().next().unwrap())
    }

    #[test]
    fn files_are_read_relative_to_the_spec_and_judged_as_checks() {
        let folder = tempfile::tempdir().unwrap();
        fs::create_dir(folder.path().join("tests")).unwrap();
        fs::write(
            folder.path().join("tests/structure.yaml"),
            "schemaVersion: 2.0.0\nmetadataTest:\n  user: app\n",
        )
        .unwrap();
        let spec = spec_with(folder.path(), "[\"tests/structure.yaml\"]").unwrap();
        assert_eq!(spec.structure_tests.len(), 1);
        assert_eq!(spec.structure_tests[0].path, "tests/structure.yaml");
        assert!(spec.structure_tests[0].contents.contains("user: app"));
        assert!(!spec.judge, "structure tests are deterministic");
    }

    #[test]
    fn the_structure_settings_reach_every_file() {
        use crate::structure::{StructureDefaults, StructureSettings};
        let folder = tempfile::tempdir().unwrap();
        fs::write(
            folder.path().join("s.yaml"),
            "schemaVersion: 2.0.0\ncontainerRunOptions: {privileged: true}\ncommandTests: [{name: a, command: id}]\n",
        )
        .unwrap();
        let list = "[\"s.yaml\"]\nstructure_defaults = \"cst\"\nstructure_allow_host = true";
        let spec = spec_with(folder.path(), list).unwrap();
        assert_eq!(
            spec.structure_tests[0].settings,
            StructureSettings {
                defaults: StructureDefaults::Cst,
                allow_host: true
            }
        );
        let default = spec_with(folder.path(), "[]").unwrap();
        assert!(default.structure_tests.is_empty());
        // Every error of the spec is reported: the bad setting among them.
        let path = folder.path().join("web.toml");
        fs::write(
            &path,
            format!("{MINIMAL}structure_tests = [\"s.yaml\"]\nstructure_defaults = \"docker\"\n"),
        )
        .unwrap();
        let problems = load_spec(&path).expect_err("the setting is refused");
        assert!(
            problems.iter().any(|problem| matches!(
                problem,
                SpecError::Input { problem, .. } if problem.contains("\"agent\"")
            )),
            "{problems:?}"
        );
        match spec_with(folder.path(), "[\"s.yaml\"]") {
            Err(SpecError::Invalid { message, .. }) => {
                assert!(message.contains("structure_allow_host = true"), "{message}")
            }
            other => panic!("expected the host option refused, got {other:?}"),
        }
    }

    #[test]
    fn problems_name_the_entry_or_the_place_in_the_yaml() {
        let folder = tempfile::tempdir().unwrap();
        let problem = |list: &str| match spec_with(folder.path(), list) {
            Err(SpecError::Input {
                location, problem, ..
            }) => (location.line, location.column, problem),
            other => panic!("expected an input error, got {other:?}"),
        };
        assert_eq!(
            problem("[\"missing.yaml\"]").2.split(" (").next(),
            Some("does not exist")
        );
        assert_eq!(
            problem("[\"/abs.yaml\"]"),
            (
                3,
                20,
                "must be a path relative to the spec, e.g. \"structure.yaml\"".to_owned()
            )
        );
        assert!(problem("[\"tests.json\"]").2.contains("`.yaml` or `.yml`"));
        fs::write(
            folder.path().join("bad.yml"),
            "schemaVersion: 2.0.0\nlicenseTest: []\n",
        )
        .unwrap();
        match spec_with(folder.path(), "[\"bad.yml\"]") {
            Err(SpecError::Invalid { location, message }) => {
                assert_eq!(location.path, folder.path().join("bad.yml"));
                assert_eq!((location.line, location.column), (2, 1));
                assert!(message.contains("unknown key `licenseTest`"), "{message}");
            }
            other => panic!("expected the YAML's own place, got {other:?}"),
        }
    }
}
