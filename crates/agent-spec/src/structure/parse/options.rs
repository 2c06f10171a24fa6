//! `containerRunOptions` and `licenseTests`: the keys that reach beyond a test's own
//! container, each read as the tool reads it, or refused when it would hand the
//! container the host without the spec saying so, or is not supported.

use crate::errors::SpecError;
use crate::structure::yaml::Node;
use crate::structure::{LicenseTest, RunOptions};

use super::Decoder;

/// The keys of `containerRunOptions`, all the tool's.
const RUN_OPTION_KEYS: [&str; 7] = [
    "user",
    "privileged",
    "allocateTty",
    "envVars",
    "envFile",
    "capabilities",
    "bindMounts",
];

impl Decoder<'_> {
    /// `containerRunOptions`: `privileged` and `bindMounts` only with the spec's
    /// `structure_allow_host = true`; `allocateTty: true` is not supported.
    pub(super) fn run_options(&self, node: &Node) -> Result<RunOptions, SpecError> {
        let fields = self.fields(node, "containerRunOptions", &RUN_OPTION_KEYS)?;
        let mut options = RunOptions::default();
        for (key, value) in fields {
            match key.as_str() {
                "user" => {
                    let user = self.string(value, "user")?;
                    options.user = (!user.is_empty()).then_some(user);
                }
                "privileged" => {
                    options.privileged = self.boolean(value, "privileged")?;
                    if options.privileged {
                        self.host_allowed(
                            value,
                            "privileged: true",
                            "runs the container privileged",
                        )?;
                    }
                }
                "allocateTty" => {
                    if self.boolean(value, "allocateTty")? {
                        return Err(self.fail(
                            value,
                            "`allocateTty: true` in containerRunOptions is not supported: a terminal \
                             merges stderr into stdout and rewrites line ends, so expectedError and \
                             expectedOutput would judge other text; remove it"
                                .to_owned(),
                        ));
                    }
                }
                "envVars" => options.env_vars = self.nonempty_strings(value, "envVars")?,
                "envFile" => {
                    let written = self.string(value, "envFile")?;
                    options.env_file = (!written.is_empty())
                        .then(|| crate::validate::folder_of(self.path).join(written));
                }
                "capabilities" => {
                    options.capabilities = self.nonempty_strings(value, "capabilities")?
                }
                _ => {
                    options.bind_mounts = self.nonempty_strings(value, "bindMounts")?;
                    if !options.bind_mounts.is_empty() {
                        self.host_allowed(
                            value,
                            "bindMounts",
                            "mounts host paths into the container",
                        )?;
                    }
                }
            }
        }
        Ok(options)
    }

    /// Options that hand the container the host run only when the spec opts in.
    fn host_allowed(&self, node: &Node, key: &str, what: &str) -> Result<(), SpecError> {
        if self.settings.allow_host {
            return Ok(());
        }
        let name = key.split(':').next().unwrap_or(key);
        Err(self.fail(
            node,
            format!(
                "`{name}` in containerRunOptions is run only with `structure_allow_host = true` in the spec: \
                 `{key}` {what}, which gives a model-built image the host; add \
                 `structure_allow_host = true` to the spec to allow it, or remove `{name}`"
            ),
        ))
    }

    /// `licenseTests`: each entry's `files`; `debian: true` (every package's
    /// copyright file) is not supported.
    pub(super) fn license_tests(&self, node: &Node) -> Result<Vec<LicenseTest>, SpecError> {
        let mut tests = Vec::new();
        for item in self.items(node, "licenseTests")? {
            let mut test = LicenseTest {
                group: self.group.to_owned(),
                files: Vec::new(),
            };
            for (key, value) in self.fields(item, "a license test", &["debian", "files"])? {
                if key == "files" {
                    test.files = self.nonempty_strings(value, "files")?;
                } else if self.boolean(value, "debian")? {
                    return Err(self.fail(
                        value,
                        "`debian: true` in licenseTests is not supported; write `debian: false` \
                         and list the copyright files to check under `files` \
                         (e.g. /usr/share/doc/<package>/copyright)"
                            .to_owned(),
                    ));
                }
            }
            tests.push(test);
        }
        Ok(tests)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::structure::testing::{refused, structure};
    use crate::structure::{StructureSettings, parse_structure};

    #[test]
    fn every_run_option_reads_and_the_env_file_is_beside_the_file() {
        let text = "schemaVersion: 2.0.0\ncontainerRunOptions:\n  user: app\n  envVars: [FOO, BAR]\n  envFile: env/list\n  capabilities: [CAP_NET_ADMIN]\n  allocateTty: false\ncommandTests:\n  - name: a\n    command: id\n";
        let file = structure(text);
        let options = &file.run_options;
        assert_eq!(options.user.as_deref(), Some("app"));
        assert_eq!(options.env_vars, ["FOO", "BAR"]);
        assert_eq!(
            options.env_file.as_deref(),
            Some(Path::new("/specs/env/list"))
        );
        assert_eq!(options.capabilities, ["CAP_NET_ADMIN"]);
        assert!(options.is_set());
        assert!(file.command_tests[0].run_env().is_empty());
    }

    #[test]
    fn host_options_need_the_specs_opt_in_and_a_tty_is_not_supported() {
        let head =
            "schemaVersion: 2.0.0\ncommandTests: [{name: a, command: id}]\ncontainerRunOptions:\n";
        let mounts = format!("{head}  bindMounts: [/tmp:/host]\n");
        let (line, column, message) = refused(&mounts);
        assert_eq!((line, column), (4, 15));
        assert!(
            message.contains("add `structure_allow_host = true` to the spec"),
            "{message}"
        );
        let allowed = StructureSettings {
            allow_host: true,
            ..StructureSettings::default()
        };
        let path = Path::new("/specs/structure.yaml");
        let file = parse_structure("structure.yaml", path, &mounts, allowed).unwrap();
        assert_eq!(file.run_options.bind_mounts, ["/tmp:/host"]);
        let privileged = format!("{head}  privileged: true\n");
        assert!(
            parse_structure("s.yaml", path, &privileged, allowed)
                .unwrap()
                .run_options
                .privileged
        );
        let (_, _, message) = refused(&format!("{head}  allocateTty: true\n"));
        assert!(
            message.contains("`allocateTty: true` in containerRunOptions is not supported"),
            "{message}"
        );
        // Off, they ask for nothing.
        assert!(
            !structure(&format!("{head}  privileged: false\n"))
                .run_options
                .is_set()
        );
    }

    #[test]
    fn license_tests_read_their_files_and_debian_is_not_supported() {
        let file = structure(
            "schemaVersion: 2.0.0\nlicenseTests:\n  - debian: false\n    files: [/usr/share/doc/a/copyright]\n",
        );
        assert_eq!(file.license_tests[0].files, ["/usr/share/doc/a/copyright"]);
        let (line, column, message) =
            refused("schemaVersion: 2.0.0\nlicenseTests:\n  - debian: true\n");
        assert_eq!((line, column), (3, 13));
        assert!(
            message.contains("`debian: true` in licenseTests is not supported"),
            "{message}"
        );
    }
}
