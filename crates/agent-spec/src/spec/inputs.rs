//! `inputs`: files and folders below the spec's folder that go into the build context.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::path::{Component, Path, PathBuf};

use toml::Spanned;
use walkdir::WalkDir;

use crate::errors::SpecError;
use crate::validate::{self, Source};

pub(crate) fn resolve_inputs(
    source: &Source<'_>,
    raw: &[Spanned<String>],
) -> Result<Vec<(String, PathBuf)>, SpecError> {
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    let folder = validate::folder_of(source.path);
    let mut resolved = Vec::new();
    let mut seen = BTreeSet::new();
    for input in raw {
        let fail = |problem: String| SpecError::Input {
            location: source.location(input.span()),
            input: input.get_ref().escape_debug().to_string(),
            problem,
        };
        let root = fs::canonicalize(folder).map_err(|error| {
            fail(format!(
                "cannot be resolved: the spec's folder `{}` is not readable ({error})",
                folder.display()
            ))
        })?;
        for (context_path, disk_path) in
            resolve_input(&root, folder, input.get_ref()).map_err(fail)?
        {
            if context_path == "Dockerfile" {
                return Err(fail(
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

/// One `inputs` entry as (context path, canonical path) pairs, or the problem.
fn resolve_input(
    root: &Path,
    folder: &Path,
    input: &str,
) -> Result<Vec<(String, PathBuf)>, String> {
    if input.is_empty() {
        return Err("is empty".to_owned());
    }
    if input.contains('\0') {
        return Err("contains a NUL character".to_owned());
    }
    let written = Path::new(input);
    let prefix = context_path(written)?;
    let canonical = fs::canonicalize(folder.join(written)).map_err(|error| {
        if error.kind() == std::io::ErrorKind::NotFound {
            "does not exist".to_owned()
        } else {
            format!("cannot be read: {error}")
        }
    })?;
    if !canonical.starts_with(root) {
        return Err(LEAVES_FOLDER.to_owned());
    }
    let metadata = fs::metadata(&canonical).map_err(|error| format!("cannot be read: {error}"))?;
    if metadata.is_file() {
        if prefix.is_empty() {
            return Err("names no file".to_owned());
        }
        return Ok(vec![(prefix, canonical)]);
    }
    if !metadata.is_dir() {
        return Err("is neither a regular file nor a folder".to_owned());
    }
    let mut files = walk(root, &canonical, &prefix)?;
    files.sort();
    Ok(files)
}

/// The path inside the build context, from the path as written, so a symlink inside
/// the folder keeps the name the user gave it.
fn context_path(written: &Path) -> Result<String, String> {
    let mut parts: Vec<String> = Vec::new();
    for component in written.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(LEAVES_FOLDER.to_owned());
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err("is absolute; inputs are relative to the spec's folder".to_owned());
            }
        }
    }
    Ok(parts.join("/"))
}

const LEAVES_FOLDER: &str =
    "leaves the spec's folder (through `..` or a symlink); inputs must stay below it";

/// The files below `folder` (canonical), each as (context path below `prefix`,
/// canonical path), in name order. Symlinks are followed while they stay below
/// `root`; a folder reached twice (a symlink back up the tree) is walked once.
fn walk(root: &Path, folder: &Path, prefix: &str) -> Result<Vec<(String, PathBuf)>, String> {
    let mut files = Vec::new();
    let mut visited = HashSet::from([folder.to_path_buf()]);
    let mut entries = WalkDir::new(folder)
        .min_depth(1)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter();
    while let Some(entry) = entries.next() {
        let (path, descended) = match entry {
            Ok(entry) => (entry.into_path(), true),
            // walkdir refuses to enter a folder it is already inside; that folder was
            // visited, and the checks below still apply to the link.
            Err(error) if error.loop_ancestor().is_some() => {
                let path = error.path().map(Path::to_path_buf).unwrap_or_default();
                (path, false)
            }
            Err(error) => return Err(walk_error(folder, prefix, &error)),
        };
        let context_path = join_context(prefix, folder, &path)?;
        let canonical = fs::canonicalize(&path)
            .map_err(|error| format!("contains `{context_path}`, which cannot be read: {error}"))?;
        if !canonical.starts_with(root) {
            return Err(format!(
                "contains `{context_path}`, a symlink that leaves the spec's folder"
            ));
        }
        let metadata = fs::metadata(&canonical)
            .map_err(|error| format!("contains `{context_path}`, which cannot be read: {error}"))?;
        if metadata.is_dir() {
            if !visited.insert(canonical) && descended {
                entries.skip_current_dir();
            }
        } else if metadata.is_file() {
            files.push((context_path, canonical));
        } else {
            return Err(format!(
                "contains `{context_path}`, which is neither a regular file nor a folder"
            ));
        }
    }
    Ok(files)
}

/// `path` (below `folder`) as a context path below `prefix`.
fn join_context(prefix: &str, folder: &Path, path: &Path) -> Result<String, String> {
    let relative = path.strip_prefix(folder).unwrap_or(path);
    let mut context = prefix.to_owned();
    for part in relative.components() {
        let Some(part) = part.as_os_str().to_str() else {
            return Err(format!(
                "contains `{}`, a name that is not UTF-8",
                path.display()
            ));
        };
        if !context.is_empty() {
            context.push('/');
        }
        context.push_str(part);
    }
    Ok(context)
}

/// A folder that cannot be listed, or an entry whose target cannot be read.
fn walk_error(folder: &Path, prefix: &str, error: &walkdir::Error) -> String {
    let path = error.path().unwrap_or(folder);
    let cause = error
        .io_error()
        .map_or_else(|| error.to_string(), ToString::to_string);
    if fs::metadata(path).is_ok_and(|metadata| metadata.is_dir()) {
        return format!("cannot be read: folder `{}`: {cause}", path.display());
    }
    match join_context(prefix, folder, path) {
        Ok(context_path) => format!("contains `{context_path}`, which cannot be read: {cause}"),
        Err(problem) => problem,
    }
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
        load_spec(&path)
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
