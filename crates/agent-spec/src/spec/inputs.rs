//! `inputs`: files and folders below the spec's folder that go into the build context.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::spanned::Spanned;

use crate::errors::SpecError;
use crate::spec::paths::SpecFolder;
use crate::validate::Source;

pub(crate) fn resolve_inputs(
    source: &Source<'_>,
    raw: &[Spanned<String>],
) -> Result<Vec<(String, PathBuf)>, SpecError> {
    let Some(first) = raw.first() else {
        return Ok(Vec::new());
    };
    let fail = |input: &Spanned<String>, problem: String| SpecError::Input {
        location: source.location(input.span()),
        input: input.get_ref().escape_debug().to_string(),
        problem,
    };
    let folder = SpecFolder::open(source.path, "inputs").map_err(|problem| fail(first, problem))?;
    let mut resolved = Vec::new();
    let mut seen = BTreeSet::new();
    for input in raw {
        let listed = folder
            .resolve(input.get_ref())
            .map_err(|problem| fail(input, problem))?;
        for (context_path, disk_path) in listed.files {
            if context_path == "Dockerfile" {
                return Err(fail(
                    input,
                    "would replace the Dockerfile the model writes; rename it or put it in a \
                     folder"
                        .to_owned(),
                ));
            }
            // An input listed twice (a file and its folder) goes into the context once.
            if seen.insert(context_path.clone()) {
                resolved.push((context_path, disk_path));
            }
        }
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use crate::errors::SpecError;
    use crate::spec::testing::MINIMAL;
    use crate::spec::{Spec, load_spec};

    fn spec_in(folder: &Path, inputs: &str) -> Result<Spec, SpecError> {
        let path = folder.join("task.toml");
        let text = format!("{MINIMAL}inputs = {inputs}\n");
        fs::write(&path, &text).unwrap();
        load_spec(&path).map_err(|problems| problems.into_iter().next().unwrap())
    }

    /// The (problem, line, column) of an `Input` error.
    fn input_problem(result: Result<Spec, SpecError>) -> (String, String, usize, usize) {
        match result {
            Err(SpecError::Input {
                location,
                input,
                problem,
            }) => (input, problem, location.line, location.column),
            other => panic!("expected an input error, got {other:?}"),
        }
    }

    #[test]
    fn a_file_keeps_its_relative_path() {
        let folder = tempfile::tempdir().unwrap();
        fs::create_dir(folder.path().join("data")).unwrap();
        fs::write(folder.path().join("data/table.csv"), "a,b\n").unwrap();
        let spec = spec_in(folder.path(), "[\"./data/table.csv\"]").unwrap();
        let root = fs::canonicalize(folder.path()).unwrap();
        assert_eq!(
            spec.inputs,
            vec![("data/table.csv".to_owned(), root.join("data/table.csv"))]
        );
        assert!(spec.inputs[0].1.is_absolute());
    }

    #[test]
    fn a_folder_expands_recursively_sorted() {
        let folder = tempfile::tempdir().unwrap();
        let data = folder.path().join("data");
        fs::create_dir_all(data.join("nested/deeper")).unwrap();
        fs::write(data.join("b.txt"), "b").unwrap();
        fs::write(data.join("a.txt"), "a").unwrap();
        fs::write(data.join("nested/deeper/c.txt"), "c").unwrap();
        fs::write(data.join("nested.txt"), "n").unwrap();
        let spec = spec_in(folder.path(), "[\"data\", \"data/a.txt\"]").unwrap();
        let paths: Vec<&str> = spec.inputs.iter().map(|(path, _)| path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "data/a.txt",
                "data/b.txt",
                "data/nested.txt",
                "data/nested/deeper/c.txt"
            ]
        );
        let root = fs::canonicalize(folder.path()).unwrap();
        assert_eq!(spec.inputs[3].1, root.join("data/nested/deeper/c.txt"));
    }

    #[test]
    fn a_missing_input_points_at_its_entry() {
        let folder = tempfile::tempdir().unwrap();
        let (input, problem, line, column) =
            input_problem(spec_in(folder.path(), "[ \"gone.csv\"]"));
        assert_eq!(input, "gone.csv");
        assert_eq!(problem, "does not exist");
        assert_eq!((line, column), (3, 12));
    }

    #[test]
    fn escaping_through_dot_dot_is_refused() {
        let outer = tempfile::tempdir().unwrap();
        let folder = outer.path().join("spec");
        fs::create_dir(&folder).unwrap();
        fs::write(outer.path().join("secret.txt"), "s").unwrap();
        let (_, problem, _, _) = input_problem(spec_in(&folder, "[\"../secret.txt\"]"));
        assert!(problem.starts_with("leaves the spec's folder"), "{problem}");
        let (_, problem, _, _) = input_problem(spec_in(&folder, "[\"a/../../secret.txt\"]"));
        assert!(problem.starts_with("leaves the spec's folder"), "{problem}");
    }

    #[test]
    fn escaping_through_a_symlink_is_refused() {
        let outer = tempfile::tempdir().unwrap();
        let folder = outer.path().join("spec");
        fs::create_dir_all(folder.join("data")).unwrap();
        fs::write(outer.path().join("secret.txt"), "s").unwrap();
        std::os::unix::fs::symlink(outer.path().join("secret.txt"), folder.join("link.txt"))
            .unwrap();
        let (_, problem, _, _) = input_problem(spec_in(&folder, "[\"link.txt\"]"));
        assert!(problem.starts_with("leaves the spec's folder"), "{problem}");

        std::os::unix::fs::symlink(
            outer.path().join("secret.txt"),
            folder.join("data/inner.txt"),
        )
        .unwrap();
        let (_, problem, _, _) = input_problem(spec_in(&folder, "[\"data\"]"));
        assert_eq!(
            problem,
            "contains `data/inner.txt`, a symlink that leaves the spec's folder"
        );
    }

    #[test]
    fn a_symlink_inside_the_folder_keeps_its_written_name() {
        let folder = tempfile::tempdir().unwrap();
        fs::write(folder.path().join("real.txt"), "r").unwrap();
        std::os::unix::fs::symlink(
            folder.path().join("real.txt"),
            folder.path().join("alias.txt"),
        )
        .unwrap();
        let spec = spec_in(folder.path(), "[\"alias.txt\"]").unwrap();
        assert_eq!(spec.inputs[0].0, "alias.txt");
        assert_eq!(
            spec.inputs[0].1,
            fs::canonicalize(folder.path().join("real.txt")).unwrap()
        );
    }

    #[test]
    fn a_symlink_loop_in_a_folder_ends() {
        let folder = tempfile::tempdir().unwrap();
        fs::create_dir(folder.path().join("data")).unwrap();
        fs::write(folder.path().join("data/a.txt"), "a").unwrap();
        std::os::unix::fs::symlink(folder.path().join("data"), folder.path().join("data/again"))
            .unwrap();
        let spec = spec_in(folder.path(), "[\"data\"]").unwrap();
        let paths: Vec<&str> = spec.inputs.iter().map(|(path, _)| path.as_str()).collect();
        assert_eq!(paths, ["data/a.txt"]);
    }

    #[test]
    fn a_folder_reached_through_two_symlinks_is_walked_once_under_the_first_name() {
        let folder = tempfile::tempdir().unwrap();
        fs::create_dir_all(folder.path().join("data/real")).unwrap();
        fs::write(folder.path().join("data/real/a.txt"), "a").unwrap();
        for name in ["data/b-link", "data/a-link"] {
            std::os::unix::fs::symlink(folder.path().join("data/real"), folder.path().join(name))
                .unwrap();
        }
        let spec = spec_in(folder.path(), "[\"data\"]").unwrap();
        let paths: Vec<&str> = spec.inputs.iter().map(|(path, _)| path.as_str()).collect();
        assert_eq!(paths, ["data/a-link/a.txt"]);
    }

    #[test]
    fn a_dangling_symlink_in_a_folder_is_named() {
        let folder = tempfile::tempdir().unwrap();
        fs::create_dir(folder.path().join("data")).unwrap();
        std::os::unix::fs::symlink(
            folder.path().join("gone.txt"),
            folder.path().join("data/dangling.txt"),
        )
        .unwrap();
        let (_, problem, _, _) = input_problem(spec_in(folder.path(), "[\"data\"]"));
        assert!(
            problem.starts_with("contains `data/dangling.txt`, which cannot be read: "),
            "{problem}"
        );
    }

    #[test]
    fn an_input_named_dockerfile_is_refused() {
        let folder = tempfile::tempdir().unwrap();
        fs::write(folder.path().join("Dockerfile"), "FROM x").unwrap();
        let (_, problem, _, _) = input_problem(spec_in(folder.path(), "[\"Dockerfile\"]"));
        assert!(
            problem.starts_with("would replace the Dockerfile"),
            "{problem}"
        );
        // The whole folder holds the Dockerfile too.
        let (_, problem, _, _) = input_problem(spec_in(folder.path(), "[\".\"]"));
        assert!(
            problem.starts_with("would replace the Dockerfile"),
            "{problem}"
        );
    }

    #[test]
    fn absolute_and_empty_inputs_are_refused() {
        let folder = tempfile::tempdir().unwrap();
        let (_, problem, _, _) = input_problem(spec_in(folder.path(), "[\"/etc/hostname\"]"));
        assert_eq!(
            problem,
            "is absolute; inputs are relative to the spec's folder"
        );
        let (_, problem, _, _) = input_problem(spec_in(folder.path(), "[\"\"]"));
        assert_eq!(problem, "is empty");
    }
}
