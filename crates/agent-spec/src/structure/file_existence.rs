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
    /// Schema 2.0.0 expands `$VAR` in the path; 1.0.0 reads it as written.
    pub(crate) expand: bool,
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
    /// tool does for existence tests of schema 2.0.0 (and, surprisingly, not for
    /// content tests, nor in schema 1.0.0).
    pub fn path(&self, environment: &[String]) -> String {
        if self.expand {
            expand_env(&self.path, environment)
        } else {
            self.path.clone()
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::FileEntry;
    use crate::structure::testing::{refused, structure};

    fn facts(path: &str, mode: u32, uid: u64, gid: u64) -> FileFacts {
        FileFacts {
            path: path.to_owned(),
            entry: Some(FileEntry {
                mode,
                uid,
                gid,
                link_target: None,
                content: None,
                content_truncated: false,
            }),
        }
    }

    fn absent(path: &str) -> FileFacts {
        FileFacts {
            path: path.to_owned(),
            entry: None,
        }
    }

    #[test]
    fn go_mode_strings_differ_from_ls() {
        assert_eq!(go_mode(0o100_644), "-rw-r--r--");
        assert_eq!(go_mode(0o040_755), "drwxr-xr-x");
        assert_eq!(go_mode(0o041_777), "dtrwxrwxrwx");
        assert_eq!(go_mode(0o104_755), "urwxr-xr-x");
        assert_eq!(go_mode(0o102_755), "grwxr-xr-x");
        assert_eq!(go_mode(0o120_777), "Lrwxrwxrwx");
        assert_eq!(go_mode(0o020_666), "Dcrw-rw-rw-");
        assert_eq!(go_mode(0o060_660), "Drw-rw----");
        assert_eq!(go_mode(0o010_600), "prw-------");
        assert_eq!(go_mode(0o140_755), "Srwxr-xr-x");
    }

    #[test]
    fn every_key_parses_with_the_tools_defaults() {
        let file = structure(
            "schemaVersion: 2.0.0\nfileExistenceTests:\n  - name: main\n    path: $APP/main.py\n    shouldExist: yes\n    permissions: -rwxr-xr-x\n    uid: 1000\n    gid: 0\n    isExecutableBy: owner\n  - name: gone\n    path: /root/.cache\n    shouldExist: false\n    uid: -1\n",
        );
        let main = &file.file_existence_tests[0];
        assert_eq!(main.path(&["APP=/app".to_owned()]), "/app/main.py");
        assert!(main.should_exist);
        assert_eq!(main.permissions.as_deref(), Some("-rwxr-xr-x"));
        assert_eq!(
            (main.uid, main.gid, main.executable_by),
            (Some(1000), Some(0), Some(ExecutableBy::Owner))
        );
        let gone = &file.file_existence_tests[1];
        assert!(!gone.should_exist);
        assert_eq!(gone.uid, None, "-1 is the tool's unset");
        let defaults =
            structure("schemaVersion: 2.0.0\nfileExistenceTests:\n  - name: a\n    path: /a\n");
        assert!(
            defaults.file_existence_tests[0].should_exist,
            "shouldExist defaults to true"
        );
    }

    #[test]
    fn judging_follows_the_tool() {
        let file = structure(
            "schemaVersion: 2.0.0\nfileExistenceTests:\n  - name: main\n    path: /app/main.py\n    permissions: -rwxr-xr-x\n    uid: 1000\n    gid: 1000\n    isExecutableBy: group\n  - name: gone\n    path: /tmp/x\n    shouldExist: false\n    permissions: -rw-------\n",
        );
        let main = &file.file_existence_tests[0];
        let passed = main.judge(&facts("/app/main.py", 0o100_755, 1000, 1000));
        assert!(passed.passed, "{}", passed.detail);
        assert_eq!(
            (passed.group.as_str(), passed.name.as_str()),
            ("structure.yaml", "main")
        );
        let failed = main.judge(&facts("/app/main.py", 0o100_744, 0, 1000));
        assert!(!failed.passed);
        assert_eq!(
            failed.detail,
            "`/app/main.py` has permissions -rwxr--r--, expected -rwxr-xr-x (as Go prints modes)\n\
             `/app/main.py` is not executable by group: -rwxr--r--\n\
             `/app/main.py` has owner uid 0, expected 1000"
        );
        assert!(!main.judge(&absent("/app/main.py")).passed);
        let gone = &file.file_existence_tests[1];
        assert!(
            gone.judge(&absent("/tmp/x")).passed,
            "absent as asked; nothing else is looked at"
        );
        assert!(!gone.judge(&facts("/tmp/x", 0o100_600, 0, 0)).passed);
    }

    #[test]
    fn bad_values_are_refused_at_their_place() {
        let head = "schemaVersion: 2.0.0\nfileExistenceTests:\n  - name: a\n    path: /a\n";
        let cases = [
            (
                "    isExecutableBy: everyone\n",
                5,
                21,
                "`isExecutableBy: everyone` is not one of",
            ),
            ("    shouldExist: maybe\n", 5, 18, "must be true or false"),
            ("    uid: -5\n", 5, 10, "`uid` must be 0 or more"),
            ("    mode: 0644\n", 5, 5, "unknown key `mode`"),
        ];
        for (body, line, column, expected) in cases {
            let (found_line, found_column, message) = refused(&format!("{head}{body}"));
            assert_eq!(
                (found_line, found_column),
                (line, column),
                "{body}: {message}"
            );
            assert!(message.contains(expected), "{body}: {message}");
        }
        let (line, _, message) =
            refused("schemaVersion: 2.0.0\nfileExistenceTests:\n  - name: a\n");
        assert_eq!(line, 3);
        assert!(message.contains("test `a` has no `path`"), "{message}");
    }
}
