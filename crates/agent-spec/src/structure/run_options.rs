//! `containerRunOptions` and the spec's settings for structure tests: how the
//! containers of a structure-test file are run (`structure_defaults`), what they may
//! take from the host (`structure_allow_host`), and the environment the tool gives a
//! test command when the options are set.

use std::path::PathBuf;

/// `structure_defaults` in the spec: whose run options the structure tests get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StructureDefaults {
    /// The spec's limits and run network, every capability dropped.
    #[default]
    Agent,
    /// As `docker run` (and so the real tool) runs a container: the engine's default
    /// capabilities and a bridge network; the spec's resource limits still hold.
    Cst,
}

/// The spec's settings every structure-test file is read and run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StructureSettings {
    pub defaults: StructureDefaults,
    /// `structure_allow_host = true`: `privileged` and `bindMounts` are honoured.
    pub allow_host: bool,
}

/// `containerRunOptions` of a schema 2.0.0 file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// The user setup and test commands run as; `None`: the image's.
    pub user: Option<String>,
    pub privileged: bool,
    /// Names of host variables passed to each test command.
    pub env_vars: Vec<String>,
    /// A dotenv file of variables passed to each test command, relative to the spec.
    pub env_file: Option<PathBuf>,
    /// The exact capability set of every container; empty: the defaults.
    pub capabilities: Vec<String>,
    /// `host:container[:options]`, as `docker run -v` takes them.
    pub bind_mounts: Vec<String>,
}

impl RunOptions {
    /// The tool's `IsSet`: any option given. When set, a test command's own
    /// `envVars` are replaced by the options' env (see [`RunOptions::container_env`]).
    pub fn is_set(&self) -> bool {
        self.user.is_some()
            || self.privileged
            || self.env_file.is_some()
            || !self.env_vars.is_empty()
            || !self.capabilities.is_empty()
            || !self.bind_mounts.is_empty()
    }

    /// The pairs of `envFile`, read as a dotenv file (`KEY=value` lines, `#`
    /// comments, quotes, `export`); empty when there is none or it cannot be read or
    /// parsed, as the tool then only warns (the reason is the error).
    pub fn read_env_file(&self) -> Result<Vec<(String, String)>, String> {
        let Some(path) = &self.env_file else {
            return Ok(Vec::new());
        };
        dotenvy::from_path_iter(path)
            .and_then(|pairs| pairs.collect::<Result<Vec<_>, _>>())
            .map_err(|error| format!("cannot read the envFile `{}`: {error}", path.display()))
    }

    /// `KEY=value` for a test command's container when the options are set: the env
    /// file's pairs with a value (an unreadable file is skipped, as the tool only
    /// warns), then each of `envVars` from `host`. A host variable that is unset or
    /// empty is an error: the tool passes an empty entry, which the engine refuses,
    /// so every command test fails.
    pub fn container_env(
        &self,
        env_file: &[(String, String)],
        host: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<(String, String)>, String> {
        let mut env: Vec<(String, String)> = env_file
            .iter()
            .filter(|(key, value)| !key.is_empty() && !value.is_empty())
            .cloned()
            .collect();
        for name in &self.env_vars {
            match host(name).filter(|value| !value.is_empty()) {
                Some(value) => env.push((name.clone(), value)),
                None => {
                    return Err(format!(
                        "the host variable `{name}` named in `containerRunOptions.envVars` is unset or empty; \
                         container-structure-test then passes an empty entry, which the engine refuses \
                         (`invalid environment variable`); set it where `agent` runs"
                    ));
                }
            }
        }
        Ok(env)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_options_env_is_the_files_then_the_hosts_and_an_unset_name_fails() {
        let options = RunOptions {
            env_vars: vec!["FOO".to_owned()],
            ..RunOptions::default()
        };
        assert!(options.is_set());
        let file = [
            ("A".to_owned(), "1".to_owned()),
            ("EMPTY".to_owned(), String::new()),
        ];
        let host = |name: &str| (name == "FOO").then(|| "secret".to_owned());
        assert_eq!(
            options.container_env(&file, &host).unwrap(),
            [
                ("A".to_owned(), "1".to_owned()),
                ("FOO".to_owned(), "secret".to_owned())
            ]
        );
        let nothing = |_: &str| None;
        let error = options.container_env(&[], &nothing).unwrap_err();
        assert!(error.contains("`FOO`"), "{error}");
        assert!(!RunOptions::default().is_set());
    }

    #[test]
    fn the_env_file_reads_as_dotenv_and_a_missing_one_is_an_error() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("env");
        std::fs::write(&path, "# comment\nexport A=1\nB=\"two words\"\nC='x'\n").unwrap();
        let options = RunOptions {
            env_file: Some(path),
            ..RunOptions::default()
        };
        let pairs = options.read_env_file().unwrap();
        let expected = [("A", "1"), ("B", "two words"), ("C", "x")]
            .map(|(key, value)| (key.to_owned(), value.to_owned()));
        assert_eq!(pairs, expected);
        let missing = RunOptions {
            env_file: Some(folder.path().join("none")),
            ..RunOptions::default()
        };
        assert!(
            missing
                .read_env_file()
                .unwrap_err()
                .contains("cannot read the envFile")
        );
    }
}
