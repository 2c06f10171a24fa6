//! Paths a spec lists below its own folder (`inputs`, a suite's `files`): each must
//! stay below that folder, a folder stands for the files below it, and every file is
//! taken by its canonical path. What a list does with the files is its own module's
//! business.

use std::collections::HashSet;
use std::fs;
use std::path::{Component, Path, PathBuf};

use walkdir::WalkDir;

use crate::validate;

/// The spec's folder, canonical, for resolving one list of paths; `what` names the
/// list in problems ("inputs", "suite files").
pub(crate) struct SpecFolder<'a> {
    folder: &'a Path,
    root: PathBuf,
    what: &'static str,
}

/// One listed entry, resolved.
#[derive(Debug)]
pub(crate) struct Listed {
    /// The entry as a `/`-separated path below the spec's folder, with `.` and `..`
    /// resolved as written (a symlink keeps its name); empty for the folder itself.
    pub path: String,
    /// The entry names a folder, not a file.
    pub folder: bool,
    /// Each file as (its path below the spec's folder, through the names as written,
    /// its canonical path), in name order; one for a file.
    pub files: Vec<(String, PathBuf)>,
}

impl Listed {
    /// Where `file` (one of `files`) sits relative to the entry: a folder's file by its
    /// path below the folder, a listed file by its own name.
    pub fn below<'f>(&self, file: &'f str) -> &'f str {
        if !self.folder {
            return file.rsplit('/').next().unwrap_or(file);
        }
        if self.path.is_empty() {
            return file;
        }
        file.strip_prefix(self.path.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .unwrap_or(file)
    }
}

impl<'a> SpecFolder<'a> {
    /// The folder of the spec at `spec_path`, or why it cannot be resolved.
    pub fn open(spec_path: &'a Path, what: &'static str) -> Result<Self, String> {
        let folder = validate::folder_of(spec_path);
        let root = fs::canonicalize(folder).map_err(|error| {
            format!(
                "cannot be resolved: the spec's folder `{}` is not readable ({error})",
                folder.display()
            )
        })?;
        Ok(SpecFolder { folder, root, what })
    }

    /// One entry as written, or the problem with it.
    pub fn resolve(&self, written: &str) -> Result<Listed, String> {
        if written.is_empty() {
            return Err("is empty".to_owned());
        }
        if written.contains('\0') {
            return Err("contains a NUL character".to_owned());
        }
        let written_path = Path::new(written);
        let path = self.relative_path(written_path)?;
        let canonical = fs::canonicalize(self.folder.join(written_path)).map_err(|error| {
            if error.kind() == std::io::ErrorKind::NotFound {
                "does not exist".to_owned()
            } else {
                format!("cannot be read: {error}")
            }
        })?;
        if !canonical.starts_with(&self.root) {
            return Err(self.leaves_folder());
        }
        let metadata =
            fs::metadata(&canonical).map_err(|error| format!("cannot be read: {error}"))?;
        if metadata.is_file() {
            if path.is_empty() {
                return Err("names no file".to_owned());
            }
            return Ok(Listed {
                files: vec![(path.clone(), canonical)],
                path,
                folder: false,
            });
        }
        if !metadata.is_dir() {
            return Err("is neither a regular file nor a folder".to_owned());
        }
        let mut files = walk(&self.root, &canonical, &path)?;
        files.sort();
        Ok(Listed {
            path,
            folder: true,
            files,
        })
    }

    /// The path below the spec's folder, from the path as written, so a symlink inside
    /// the folder keeps the name the user gave it.
    fn relative_path(&self, written: &Path) -> Result<String, String> {
        let mut parts: Vec<String> = Vec::new();
        for component in written.components() {
            match component {
                Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
                Component::CurDir => {}
                Component::ParentDir => {
                    if parts.pop().is_none() {
                        return Err(self.leaves_folder());
                    }
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(format!(
                        "is absolute; {} are relative to the spec's folder",
                        self.what
                    ));
                }
            }
        }
        Ok(parts.join("/"))
    }

    fn leaves_folder(&self) -> String {
        format!(
            "leaves the spec's folder (through `..` or a symlink); {} must stay below it",
            self.what
        )
    }
}

/// The files below `folder` (canonical), each as (path below `prefix`, canonical
/// path), in name order. Symlinks are followed while they stay below `root`; a folder
/// reached twice (a symlink back up the tree) is walked once.
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
        let relative = join_relative(prefix, folder, &path)?;
        let canonical = fs::canonicalize(&path)
            .map_err(|error| format!("contains `{relative}`, which cannot be read: {error}"))?;
        if !canonical.starts_with(root) {
            return Err(format!(
                "contains `{relative}`, a symlink that leaves the spec's folder"
            ));
        }
        let metadata = fs::metadata(&canonical)
            .map_err(|error| format!("contains `{relative}`, which cannot be read: {error}"))?;
        if metadata.is_dir() {
            if !visited.insert(canonical) && descended {
                entries.skip_current_dir();
            }
        } else if metadata.is_file() {
            files.push((relative, canonical));
        } else {
            return Err(format!(
                "contains `{relative}`, which is neither a regular file nor a folder"
            ));
        }
    }
    Ok(files)
}

/// `path` (below `folder`) as a `/`-separated path below `prefix`.
fn join_relative(prefix: &str, folder: &Path, path: &Path) -> Result<String, String> {
    let relative = path.strip_prefix(folder).unwrap_or(path);
    let mut joined = prefix.to_owned();
    for part in relative.components() {
        let Some(part) = part.as_os_str().to_str() else {
            return Err(format!(
                "contains `{}`, a name that is not UTF-8",
                path.display()
            ));
        };
        if !joined.is_empty() {
            joined.push('/');
        }
        joined.push_str(part);
    }
    Ok(joined)
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
    match join_relative(prefix, folder, path) {
        Ok(relative) => format!("contains `{relative}`, which cannot be read: {cause}"),
        Err(problem) => problem,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::Listed;

    fn listed(path: &str, folder: bool) -> Listed {
        Listed {
            path: path.to_owned(),
            folder,
            files: Vec::<(String, PathBuf)>::new(),
        }
    }

    #[test]
    fn a_file_sits_below_its_entry_by_its_name_and_a_folders_file_by_its_path_below_it() {
        assert_eq!(
            listed("hidden/test_a.py", false).below("hidden/test_a.py"),
            "test_a.py"
        );
        assert_eq!(listed("test_a.py", false).below("test_a.py"), "test_a.py");
        assert_eq!(listed("hidden", true).below("hidden/sub/x.py"), "sub/x.py");
        assert_eq!(listed("", true).below("hidden/x.py"), "hidden/x.py");
        // `hidden` is no prefix of `hiddenness/x.py` as a path.
        assert_eq!(
            listed("hidden", true).below("hiddenness/x.py"),
            "hiddenness/x.py"
        );
    }
}
