//! `fileExistenceTests`: whether a path exists in the image, and its mode and owners.

use crate::check::{CheckResult, FileFacts, TYPE_MASK};
use crate::structure::expand_env;

/// One entry of `fileExistenceTests`.
#[derive(Debug, Clone)]
pub struct FileExistenceTest {
    pub name: String,
    pub(crate) group: String,
    pub(crate) path: String,
    pub(crate) should_exist: bool,
    /// As Go's `os.FileMode` prints it (`drwxr-xr-x`, `Lrwxrwxrwx`, `urwxr-xr-x`).
    pub(crate) permissions: Option<String>,
    pub(crate) uid: Option<u64>,
    pub(crate) gid: Option<u64>,
    pub(crate) executable_by: Option<ExecutableBy>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExecutableBy {
    Any,
    Owner,
    Group,
    Other,
}

impl FileExistenceTest {
    /// The path to look at: as written, with `$VAR` expanded against `environment`
    /// ([`StructureFile::environment`](super::StructureFile::environment)), as the
    /// tool does for existence tests (and, surprisingly, not for content tests).
    pub fn path(&self, environment: &[String]) -> String {
        expand_env(&self.path, environment)
    }

    /// The tool's rules: a missing path fails when it should exist and passes when it
    /// should not; an existing one that should not exist fails and nothing more is
    /// looked at; then permissions (Go's mode string, exact), the execute bit for the
    /// class asked, and uid/gid (each only when set).
    pub fn judge(&self, facts: &FileFacts) -> CheckResult {
        let verdict = |passed: bool, detail: String| {
            CheckResult::new(&self.group, self.name.clone(), passed, detail)
        };
        let path = &facts.path;
        let Some(entry) = &facts.entry else {
            return if self.should_exist {
                verdict(false, format!("`{path}` should exist but does not"))
            } else {
                verdict(true, format!("`{path}` does not exist"))
            };
        };
        if !self.should_exist {
            return verdict(false, format!("`{path}` should not exist but does"));
        }
        let actual = go_mode(entry.mode);
        let mut failures = Vec::new();
        if let Some(permissions) = &self.permissions {
            if *permissions != actual {
                failures.push(format!(
                    "`{path}` has permissions {actual}, expected {permissions} (as Go prints modes)"
                ));
            }
        }
        if let Some(class) = self.executable_by {
            let (bits, name) = match class {
                ExecutableBy::Any => (0o111, "any"),
                ExecutableBy::Owner => (0o100, "owner"),
                ExecutableBy::Group => (0o010, "group"),
                ExecutableBy::Other => (0o001, "other"),
            };
            if entry.mode & bits == 0 {
                failures.push(format!("`{path}` is not executable by {name}: {actual}"));
            }
        }
        if let Some(uid) = self.uid.filter(|uid| *uid != entry.uid) {
            failures.push(format!(
                "`{path}` has owner uid {}, expected {uid}",
                entry.uid
            ));
        }
        if let Some(gid) = self.gid.filter(|gid| *gid != entry.gid) {
            failures.push(format!(
                "`{path}` has group gid {}, expected {gid}",
                entry.gid
            ));
        }
        if failures.is_empty() {
            return verdict(true, format!("`{path}` exists ({actual})"));
        }
        verdict(false, failures.join("\n"))
    }
}

/// `mode` as Go's `os.FileMode.String` prints what `archive/tar` makes of it: the
/// type and special bits as letters before the nine permission letters (`d`, `L`
/// for a symlink, `D` device, `p` pipe, `S` socket, `u` setuid, `g` setgid, `c`
/// character device, `t` sticky), `-` when there are none. So a setuid file is
/// `urwxr-xr-x`, `/tmp` is `dtrwxrwxrwx`, a symlink `Lrwxrwxrwx`, unlike `ls -l`.
pub(crate) fn go_mode(mode: u32) -> String {
    let kind = mode & TYPE_MASK;
    let letters = [
        (kind == 0o040_000, 'd'),
        (kind == 0o120_000, 'L'),
        (kind == 0o060_000 || kind == 0o020_000, 'D'),
        (kind == 0o010_000, 'p'),
        (kind == 0o140_000, 'S'),
        (mode & 0o4000 != 0, 'u'),
        (mode & 0o2000 != 0, 'g'),
        (kind == 0o020_000, 'c'),
        (mode & 0o1000 != 0, 't'),
    ];
    let mut text: String = letters
        .iter()
        .filter(|(set, _)| *set)
        .map(|(_, letter)| *letter)
        .collect();
    if text.is_empty() {
        text.push('-');
    }
    for (index, letter) in "rwxrwxrwx".chars().enumerate() {
        text.push(if mode & (1 << (8 - index)) != 0 {
            letter
        } else {
            '-'
        });
    }
    text
}
