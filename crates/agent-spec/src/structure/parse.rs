//! Reading a structure-test file: YAML into [`StructureFile`], as strictly as the
//! real tool reads it (`yaml.UnmarshalStrict`: unknown and repeated keys refused,
//! the keys of the file's schema only), and refusing at once what the tool would only
//! report as a failed test (a test without a name or command, an empty setup command,
//! an unknown `isExecutableBy`, a regex that does not compile) or what is not
//! supported here.

mod options;

use std::path::Path;

use crate::errors::{Location, SpecError};
use crate::structure::file_existence::ExecutableBy;
use crate::structure::metadata::ValueMatcher;
use crate::structure::yaml::{self, Node, Value};
use crate::structure::{
    CommandTest, FileContentTest, FileExistenceTest, GoRegex, MetadataTest, RunOptions, Schema,
    StructureFile, StructureSettings, go_pattern,
};
use crate::validate;

/// The schema new files are told to use; the tool reads 1.0.0 too.
const SCHEMA_VERSION: &str = "2.0.0";

/// Parses a structure-test file: `written` is its path as the spec names it (the
/// group of its results), `path` where it was read from (for errors and the place
/// an `envFile` is relative to), `settings` the spec's.
pub(crate) fn parse_structure(
    written: &str,
    path: &Path,
    text: &str,
    settings: StructureSettings,
) -> Result<StructureFile, SpecError> {
    let mut decoder = Decoder {
        path,
        group: written,
        schema: Schema::V2,
        settings,
    };
    let root = yaml::parse(text)
        .map_err(|error| {
            decoder.at(
                error.line,
                error.column,
                format!("YAML syntax error: {}", error.message),
            )
        })?
        .ok_or_else(|| {
            decoder.at(
                1,
                1,
                "the file is empty; it needs `schemaVersion: \"2.0.0\"` and tests".to_owned(),
            )
        })?;
    decoder.file(&root, text)
}

/// Every top-level key of schema 2.0.0; 1.0.0 has all but the last two
/// (`metadataTest`, `containerRunOptions`).
const KEYS_V2: [&str; 8] = [
    "schemaVersion",
    "globalEnvVars",
    "commandTests",
    "fileExistenceTests",
    "fileContentTests",
    "licenseTests",
    "metadataTest",
    "containerRunOptions",
];
/// A command test's keys; 1.0.0 has all but `args` (the last).
const COMMAND_KEYS: [&str; 11] = [
    "name",
    "setup",
    "teardown",
    "command",
    "expectedOutput",
    "excludedOutput",
    "expectedError",
    "excludedError",
    "exitCode",
    "envVars",
    "args",
];
/// A file existence test's keys; 1.0.0 has the first four.
const EXISTENCE_KEYS: [&str; 7] = [
    "name",
    "path",
    "shouldExist",
    "permissions",
    "uid",
    "gid",
    "isExecutableBy",
];

struct Decoder<'a> {
    path: &'a Path,
    group: &'a str,
    /// Read from `schemaVersion` before anything else.
    schema: Schema,
    settings: StructureSettings,
}

impl Decoder<'_> {
    fn at(&self, line: usize, column: usize, message: String) -> SpecError {
        SpecError::Invalid {
            location: Location {
                path: self.path.to_path_buf(),
                line,
                column,
            },
            message,
        }
    }

    fn fail(&self, node: &Node, message: String) -> SpecError {
        self.at(node.line, node.column, message)
    }

    fn file(&mut self, root: &Node, text: &str) -> Result<StructureFile, SpecError> {
        // The tool reads the version before anything else, and refuses the rest of a
        // file whose version it does not know.
        if !matches!(root.value, Value::Mapping(_)) {
            return Err(self.fail(
                root,
                format!("the file must be a mapping, not {}", root.kind()),
            ));
        }
        self.schema = self.version(root)?;
        let (keys, what): (&[&str], &str) = match self.schema {
            Schema::V1 => (&KEYS_V2[..KEYS_V2.len() - 2], "the file (schema 1.0.0)"),
            Schema::V2 => (&KEYS_V2, "the file"),
        };
        let fields = self.fields(root, what, keys)?;
        let mut file = StructureFile {
            path: self.group.to_owned(),
            contents: text.to_owned(),
            global_env: Vec::new(),
            command_tests: Vec::new(),
            file_existence_tests: Vec::new(),
            file_content_tests: Vec::new(),
            metadata_test: None,
            license_tests: Vec::new(),
            schema: self.schema,
            run_options: RunOptions::default(),
            settings: self.settings,
        };
        for (key, value) in fields {
            match key.as_str() {
                "globalEnvVars" => {
                    file.global_env = self.env_vars(value, "globalEnvVars", false)?
                }
                "commandTests" => {
                    for test in self.items(value, "commandTests")? {
                        file.command_tests.push(self.command_test(test)?);
                    }
                }
                "fileExistenceTests" => {
                    for test in self.items(value, "fileExistenceTests")? {
                        file.file_existence_tests
                            .push(self.file_existence_test(test)?);
                    }
                }
                "fileContentTests" => {
                    for test in self.items(value, "fileContentTests")? {
                        file.file_content_tests.push(self.file_content_test(test)?);
                    }
                }
                "metadataTest" => file.metadata_test = self.metadata_test(value)?,
                "containerRunOptions" => file.run_options = self.run_options(value)?,
                "licenseTests" => file.license_tests = self.license_tests(value)?,
                _ => {}
            }
        }
        if file.command_tests.is_empty()
            && file.file_existence_tests.is_empty()
            && file.file_content_tests.is_empty()
            && file.metadata_test.is_none()
            && file.license_tests.is_empty()
        {
            // The tool fails a run that has no test at all.
            return Err(self.at(
                root.line,
                root.column,
                "the file has no tests; add `commandTests`, `fileExistenceTests`, \
                 `fileContentTests`, `licenseTests` or `metadataTest`"
                    .to_owned(),
            ));
        }
        for test in &mut file.command_tests {
            test.user.clone_from(&file.run_options.user);
            test.run_options_set = file.run_options.is_set();
        }
        Ok(file)
    }

    fn version(&self, root: &Node) -> Result<Schema, SpecError> {
        let Some(node) = value_node(root, "schemaVersion") else {
            return Err(self.at(
                root.line,
                root.column,
                format!("`schemaVersion` is missing; add `schemaVersion: \"{SCHEMA_VERSION}\"`"),
            ));
        };
        // The tool's own words, when it knows no such version.
        match self.string(node, "schemaVersion")?.as_str() {
            "1.0.0" => Ok(Schema::V1),
            "2.0.0" => Ok(Schema::V2),
            "" => Err(self.fail(
                node,
                format!("`schemaVersion` is empty; write `schemaVersion: \"{SCHEMA_VERSION}\"`"),
            )),
            version => Err(self.fail(
                node,
                format!(
                    "unsupported schema version `{version}`: container-structure-test reads `1.0.0` and `2.0.0`; use `{SCHEMA_VERSION}`"
                ),
            )),
        }
    }

    fn command_test(&self, node: &Node) -> Result<CommandTest, SpecError> {
        let keys: &[&str] = match self.schema {
            Schema::V1 => &COMMAND_KEYS[..COMMAND_KEYS.len() - 1],
            Schema::V2 => &COMMAND_KEYS,
        };
        let fields = self.fields(node, "a command test", keys)?;
        let mut test = CommandTest {
            name: String::new(),
            setup: Vec::new(),
            teardown: Vec::new(),
            command: String::new(),
            args: Vec::new(),
            env: Vec::new(),
            group: self.group.to_owned(),
            user: None,
            run_options_set: false,
            expected_output: Vec::new(),
            excluded_output: Vec::new(),
            expected_error: Vec::new(),
            excluded_error: Vec::new(),
            exit_code: 0,
        };
        for (key, value) in fields {
            match key.as_str() {
                "name" => test.name = self.string(value, "name")?,
                "setup" => test.setup = self.commands(value, "setup")?,
                "teardown" => test.teardown = self.commands(value, "teardown")?,
                // 1.0.0 has the command and its args in one list.
                "command" if self.schema == Schema::V1 => {
                    let mut words = self.strings(value, "command")?.into_iter();
                    test.command = words.next().unwrap_or_default();
                    test.args = words.collect();
                }
                "command" => test.command = self.string(value, "command")?,
                "args" => test.args = self.strings(value, "args")?,
                "envVars" => test.env = self.env_vars(value, "envVars", true)?,
                "expectedOutput" => test.expected_output = self.regexes(value, "expectedOutput")?,
                "excludedOutput" => test.excluded_output = self.regexes(value, "excludedOutput")?,
                "expectedError" => test.expected_error = self.regexes(value, "expectedError")?,
                "excludedError" => test.excluded_error = self.regexes(value, "excludedError")?,
                _ => test.exit_code = self.integer(value, "exitCode")?,
            }
        }
        self.named(node, &test.name, "command test")?;
        if test.command.is_empty() {
            return Err(self.fail(
                node,
                format!("command test `{}` has no `command`", test.name),
            ));
        }
        Ok(test)
    }

    fn file_existence_test(&self, node: &Node) -> Result<FileExistenceTest, SpecError> {
        let keys: &[&str] = match self.schema {
            Schema::V1 => &EXISTENCE_KEYS[..4],
            Schema::V2 => &EXISTENCE_KEYS,
        };
        let fields = self.fields(node, "a file existence test", keys)?;
        let mut test = FileExistenceTest {
            name: String::new(),
            group: self.group.to_owned(),
            path: String::new(),
            should_exist: true,
            permissions: None,
            uid: None,
            gid: None,
            executable_by: None,
            expand: self.schema == Schema::V2,
        };
        for (key, value) in fields {
            match key.as_str() {
                "name" => test.name = self.string(value, "name")?,
                "path" => test.path = self.string(value, "path")?,
                "shouldExist" => test.should_exist = self.boolean(value, "shouldExist")?,
                "permissions" => {
                    let text = self.string(value, "permissions")?;
                    test.permissions = (!text.is_empty()).then_some(text);
                }
                "uid" => test.uid = self.owner(value, "uid")?,
                "gid" => test.gid = self.owner(value, "gid")?,
                _ => test.executable_by = self.executable_by(value)?,
            }
        }
        self.named(node, &test.name, "file existence test")?;
        self.has_path(node, &test.path, &test.name)?;
        Ok(test)
    }

    fn file_content_test(&self, node: &Node) -> Result<FileContentTest, SpecError> {
        let keys = ["name", "path", "expectedContents", "excludedContents"];
        let fields = self.fields(node, "a file content test", &keys)?;
        let mut test = FileContentTest {
            name: String::new(),
            group: self.group.to_owned(),
            path: String::new(),
            expected_contents: Vec::new(),
            excluded_contents: Vec::new(),
        };
        for (key, value) in fields {
            match key.as_str() {
                "name" => test.name = self.string(value, "name")?,
                "path" => test.path = self.string(value, "path")?,
                "expectedContents" => {
                    test.expected_contents = self.regexes(value, "expectedContents")?
                }
                _ => test.excluded_contents = self.regexes(value, "excludedContents")?,
            }
        }
        self.named(node, &test.name, "file content test")?;
        self.has_path(node, &test.path, &test.name)?;
        Ok(test)
    }
}

impl Decoder<'_> {
    /// `None` for an empty `metadataTest`, which the tool skips.
    fn metadata_test(&self, node: &Node) -> Result<Option<MetadataTest>, SpecError> {
        let keys = [
            "envVars",
            "unboundEnvVars",
            "exposedPorts",
            "unexposedPorts",
            "entrypoint",
            "cmd",
            "workdir",
            "volumes",
            "unmountedVolumes",
            "labels",
            "user",
        ];
        let fields = self.fields(node, "metadataTest", &keys)?;
        let mut test = MetadataTest {
            group: self.group.to_owned(),
            env: Vec::new(),
            unbound_env: Vec::new(),
            labels: Vec::new(),
            exposed_ports: Vec::new(),
            unexposed_ports: Vec::new(),
            volumes: Vec::new(),
            unmounted_volumes: Vec::new(),
            entrypoint: None,
            cmd: None,
            workdir: None,
            user: None,
        };
        let nonempty = |text: String| (!text.is_empty()).then_some(text);
        for (key, value) in fields {
            match key.as_str() {
                "envVars" => test.env = self.matched_pairs(value, "envVars")?,
                "unboundEnvVars" => {
                    test.unbound_env = self
                        .env_vars(value, "unboundEnvVars", false)?
                        .into_iter()
                        .map(|(key, _)| key)
                        .collect();
                }
                "labels" => test.labels = self.matched_pairs(value, "labels")?,
                "exposedPorts" => {
                    test.exposed_ports = self.nonempty_strings(value, "exposedPorts")?
                }
                "unexposedPorts" => test.unexposed_ports = self.strings(value, "unexposedPorts")?,
                "volumes" => test.volumes = self.nonempty_strings(value, "volumes")?,
                "unmountedVolumes" => {
                    test.unmounted_volumes = self.strings(value, "unmountedVolumes")?
                }
                // A pointer in the tool: absent or null checks nothing, `[]` asks for none.
                "entrypoint" if !value.is_null() => {
                    test.entrypoint = Some(self.strings(value, "entrypoint")?)
                }
                "cmd" if !value.is_null() => test.cmd = Some(self.strings(value, "cmd")?),
                "workdir" => test.workdir = nonempty(self.string(value, "workdir")?),
                "user" => test.user = nonempty(self.string(value, "user")?),
                _ => {}
            }
        }
        let empty = test.env.is_empty()
            && test.unbound_env.is_empty()
            && test.labels.is_empty()
            && test.exposed_ports.is_empty()
            && test.unexposed_ports.is_empty()
            && test.volumes.is_empty()
            && test.unmounted_volumes.is_empty()
            && test.entrypoint.is_none()
            && test.cmd.is_none()
            && test.workdir.is_none()
            && test.user.is_none();
        Ok((!empty).then_some(test))
    }

    /// The keys of a mapping with their values, in order; null is an empty mapping.
    /// A key outside `allowed`, or written twice, is refused.
    fn fields<'n>(
        &self,
        node: &'n Node,
        what: &str,
        allowed: &[&str],
    ) -> Result<Vec<(String, &'n Node)>, SpecError> {
        let entries: &[(Node, Node)] = match &node.value {
            Value::Mapping(entries) => entries,
            _ if node.is_null() => &[],
            _ => {
                return Err(self.fail(
                    node,
                    format!("{what} must be a mapping, not {}", node.kind()),
                ));
            }
        };
        let mut fields: Vec<(String, &Node)> = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let Value::Scalar { text, .. } = &key.value else {
                return Err(self.fail(key, format!("a key in {what} must be a plain name")));
            };
            if fields.iter().any(|(seen, _)| seen == text) {
                return Err(self.fail(key, format!("`{text}` is set twice in {what}")));
            }
            if !allowed.contains(&text.as_str()) {
                let listed: Vec<String> = allowed.iter().map(|key| format!("`{key}`")).collect();
                return Err(self.fail(
                    key,
                    format!(
                        "unknown key `{text}` in {what}; expected one of {}",
                        listed.join(", ")
                    ),
                ));
            }
            fields.push((text.clone(), value));
        }
        Ok(fields)
    }

    /// A list's items; null is an empty list.
    fn items<'n>(&self, node: &'n Node, key: &str) -> Result<&'n [Node], SpecError> {
        match &node.value {
            Value::Sequence(items) => Ok(items),
            _ if node.is_null() => Ok(&[]),
            _ => Err(self.fail(node, format!("`{key}` must be a list, not {}", node.kind()))),
        }
    }

    /// Any scalar as its text, as `yaml.v2` decodes into a Go string (`8080` is
    /// "8080"); null is "".
    fn string(&self, node: &Node, key: &str) -> Result<String, SpecError> {
        match &node.value {
            _ if node.is_null() => Ok(String::new()),
            Value::Scalar { text, .. } => Ok(text.clone()),
            _ => Err(self.fail(
                node,
                format!("`{key}` must be a string, not {}", node.kind()),
            )),
        }
    }

    fn strings(&self, node: &Node, key: &str) -> Result<Vec<String>, SpecError> {
        self.items(node, key)?
            .iter()
            .map(|item| self.string(item, key))
            .collect()
    }

    /// Strings of which none may be empty: the tool refuses empty ports and volumes.
    fn nonempty_strings(&self, node: &Node, key: &str) -> Result<Vec<String>, SpecError> {
        let items = self.items(node, key)?;
        let mut values = Vec::with_capacity(items.len());
        for item in items {
            let value = self.string(item, key)?;
            if value.is_empty() {
                return Err(self.fail(item, format!("an entry of `{key}` is empty")));
            }
            values.push(value);
        }
        Ok(values)
    }

    /// `setup` and `teardown`: lists of commands, each a non-empty list of strings.
    fn commands(&self, node: &Node, key: &str) -> Result<Vec<Vec<String>>, SpecError> {
        let mut commands = Vec::new();
        for item in self.items(node, key)? {
            let command = self.strings(item, key)?;
            if command.is_empty() {
                return Err(self.fail(item, format!("a command in `{key}` is empty; write it as a list such as [\"touch\", \"/tmp/ready\"]")));
            }
            commands.push(command);
        }
        Ok(commands)
    }

    fn integer(&self, node: &Node, key: &str) -> Result<i64, SpecError> {
        match &node.value {
            _ if node.is_null() => Ok(0),
            Value::Scalar { text, plain: true } => yaml::integer(text).ok_or_else(|| {
                self.fail(node, format!("`{key}` must be an integer, not `{text}`"))
            }),
            _ => Err(self.fail(node, format!("`{key}` must be an unquoted integer"))),
        }
    }

    /// A uid or gid: the tool's -1 (or null) checks nothing.
    fn owner(&self, node: &Node, key: &str) -> Result<Option<u64>, SpecError> {
        if node.is_null() {
            return Ok(None);
        }
        match self.integer(node, key)? {
            -1 => Ok(None),
            id => u64::try_from(id)
                .map(Some)
                .map_err(|_| self.fail(node, format!("`{key}` must be 0 or more"))),
        }
    }

    fn boolean(&self, node: &Node, key: &str) -> Result<bool, SpecError> {
        match &node.value {
            _ if node.is_null() => Ok(false),
            Value::Scalar { text, plain: true } => yaml::boolean(text).ok_or_else(|| {
                self.fail(node, format!("`{key}` must be true or false, not `{text}`"))
            }),
            _ => Err(self.fail(node, format!("`{key}` must be an unquoted true or false"))),
        }
    }

    fn executable_by(&self, node: &Node) -> Result<Option<ExecutableBy>, SpecError> {
        match self.string(node, "isExecutableBy")?.as_str() {
            "" => Ok(None),
            "any" => Ok(Some(ExecutableBy::Any)),
            "owner" => Ok(Some(ExecutableBy::Owner)),
            "group" => Ok(Some(ExecutableBy::Group)),
            "other" => Ok(Some(ExecutableBy::Other)),
            other => Err(self.fail(
                node,
                format!("`isExecutableBy: {other}` is not one of `any`, `owner`, `group`, `other`"),
            )),
        }
    }

    /// A list of `{key, value, isRegex}`: (key, value) pairs. The tool refuses an
    /// empty key, and for a command test's `envVars` an empty value too.
    fn env_vars(
        &self,
        node: &Node,
        key: &str,
        value_required: bool,
    ) -> Result<Vec<(String, String)>, SpecError> {
        Ok(self
            .pairs(node, key, value_required)?
            .into_iter()
            .map(|(name, value, _)| (name, value))
            .collect())
    }

    /// `envVars` and `labels` of the metadata test: each value equal, or a regex.
    fn matched_pairs(
        &self,
        node: &Node,
        key: &str,
    ) -> Result<Vec<(String, ValueMatcher)>, SpecError> {
        let mut pairs = Vec::new();
        for (item, (name, value, is_regex)) in self
            .items(node, key)?
            .iter()
            .zip(self.pairs(node, key, false)?)
        {
            let matcher = if is_regex {
                ValueMatcher::Matches(self.compile(item, key, &value)?)
            } else {
                ValueMatcher::Equals(value)
            };
            pairs.push((name, matcher));
        }
        Ok(pairs)
    }

    fn pairs(
        &self,
        node: &Node,
        key: &str,
        value_required: bool,
    ) -> Result<Vec<(String, String, bool)>, SpecError> {
        let mut pairs = Vec::new();
        for item in self.items(node, key)? {
            let (mut name, mut value, mut is_regex) = (String::new(), String::new(), false);
            for (field, field_value) in self.fields(
                item,
                &format!("an entry of `{key}`"),
                &["key", "value", "isRegex"],
            )? {
                match field.as_str() {
                    "key" => name = self.string(field_value, "key")?,
                    "value" => value = self.string(field_value, "value")?,
                    _ => is_regex = self.boolean(field_value, "isRegex")?,
                }
            }
            if name.is_empty() {
                return Err(self.fail(item, format!("an entry of `{key}` has no `key`")));
            }
            if value_required && value.is_empty() {
                return Err(self.fail(
                    item,
                    format!("`{name}` in `{key}` has no `value`; the tool refuses empty values"),
                ));
            }
            pairs.push((name, value, is_regex));
        }
        Ok(pairs)
    }

    fn regexes(&self, node: &Node, key: &str) -> Result<Vec<GoRegex>, SpecError> {
        let mut regexes = Vec::new();
        for item in self.items(node, key)? {
            regexes.push(self.compile(item, key, &self.string(item, key)?)?);
        }
        Ok(regexes)
    }

    /// As Go's `regexp.Compile`: not multi-line, so `^`/`$` are the text's ends unless
    /// the pattern says `(?m)`; Go's ASCII classes kept ASCII. The pattern as written
    /// is what a detail shows.
    fn compile(&self, node: &Node, key: &str, pattern: &str) -> Result<GoRegex, SpecError> {
        validate::regex(&go_pattern(pattern), false)
            .map(|regex| GoRegex {
                written: pattern.to_owned(),
                regex,
            })
            .map_err(|reason| self.fail(node, format!("bad regex in `{key}`: {reason}")))
    }

    fn named(&self, node: &Node, name: &str, what: &str) -> Result<(), SpecError> {
        if name.is_empty() {
            return Err(self.fail(
                node,
                format!("a {what} has no `name`; every test needs one"),
            ));
        }
        Ok(())
    }

    fn has_path(&self, node: &Node, path: &str, name: &str) -> Result<(), SpecError> {
        if path.is_empty() {
            return Err(self.fail(node, format!("test `{name}` has no `path`")));
        }
        Ok(())
    }
}

/// The value of the key named `key` in a mapping (the last, as a Go decoder keeps).
fn value_node<'n>(mapping: &'n Node, key: &str) -> Option<&'n Node> {
    let Value::Mapping(entries) = &mapping.value else {
        return None;
    };
    entries
        .iter()
        .rev()
        .find(|(found, _)| matches!(&found.value, Value::Scalar { text, .. } if text == key))
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use crate::structure::testing::{refused, structure};

    #[test]
    fn the_file_needs_a_known_schema_and_a_test() {
        let (line, column, message) = refused("commandTests: []\n");
        assert_eq!((line, column), (1, 1));
        assert!(message.contains("`schemaVersion` is missing"), "{message}");
        let (line, column, message) = refused("schemaVersion: '3.0.0'\n");
        assert_eq!((line, column), (1, 16));
        assert!(
            message.contains("unsupported schema version `3.0.0`"),
            "{message}"
        );
        let (line, _, message) = refused("metadataTst: []\nschemaVersion: '4'\n");
        assert_eq!(line, 2, "the version is read first: {message}");
        let (_, _, message) = refused("schemaVersion: '2.0.0'\ncommandTests: ~\n");
        assert!(message.contains("has no tests"), "{message}");
        let (_, _, message) = refused("");
        assert!(message.contains("the file is empty"), "{message}");
        let (_, _, message) = refused("- a\n");
        assert!(
            message.contains("the file must be a mapping, not a list"),
            "{message}"
        );
    }

    #[test]
    fn schema_1_has_its_own_keys_and_a_command_list() {
        let file = structure(
            "schemaVersion: 1.0.0\nglobalEnvVars: [{key: G, value: g}]\ncommandTests:\n  - name: a\n    command: [sh, -c, 'echo $G']\n    setup: [[true]]\nfileExistenceTests:\n  - name: f\n    path: $HOME\n    permissions: drwx------\nlicenseTests:\n  - files: [/l]\n",
        );
        let test = &file.command_tests[0];
        assert_eq!(
            (test.command.as_str(), test.args.as_slice()),
            ("sh", &["-c".to_owned(), "echo $G".to_owned()][..])
        );
        let plan = file.command_env(test, &["HOME=/root".to_owned()]);
        assert_eq!(plan.setup, ["G=g"], "1.0.0 gives the globals to setup");
        assert!(plan.run.is_empty(), "and not to the test command");
        assert_eq!(
            file.file_existence_tests[0].path(&["HOME=/root".to_owned()]),
            "$HOME",
            "1.0.0 never expands a path"
        );
        assert_eq!(file.license_tests[0].files, ["/l"]);
        for (body, key) in [
            ("metadataTest: {user: a}\n", "metadataTest"),
            ("containerRunOptions: {user: a}\n", "containerRunOptions"),
            (
                "commandTests: [{name: a, command: [x], args: [y]}]\n",
                "args",
            ),
            ("fileExistenceTests: [{name: a, path: /a, uid: 0}]\n", "uid"),
        ] {
            let (_, _, message) = refused(&format!("schemaVersion: 1.0.0\n{body}"));
            assert!(
                message.contains(&format!("unknown key `{key}`")),
                "{message}"
            );
        }
        let (_, _, message) =
            refused("schemaVersion: 1.0.0\ncommandTests: [{name: a, command: []}]\n");
        assert!(message.contains("has no `command`"), "{message}");
    }

    #[test]
    fn unknown_keys_are_named_with_their_place() {
        let (line, column, message) = refused("schemaVersion: 2.0.0\ncommandTest: []\n");
        assert_eq!((line, column), (2, 1));
        assert!(
            message.contains("unknown key `commandTest` in the file"),
            "{message}"
        );
        let (line, column, message) =
            refused("schemaVersion: 2.0.0\ncontainerRunOptions:\n  envVar: [HOME]\n");
        assert_eq!((line, column), (3, 3));
        assert!(
            message.contains("unknown key `envVar` in containerRunOptions"),
            "{message}"
        );
    }

    #[test]
    fn yaml_syntax_errors_have_their_place() {
        let (line, column, message) = refused("schemaVersion: 2.0.0\ncommandTests: [\n");
        assert_eq!(line, 3);
        assert!(column >= 1);
        assert!(message.starts_with("YAML syntax error"), "{message}");
    }

    #[test]
    fn anchors_and_yaml_1_1_scalars_read_as_the_tool_reads_them() {
        let file = structure(
            "schemaVersion: 2.0.0\ncommandTests:\n  - &base\n    name: a\n    command: 123\n    exitCode: 0x2\n  - *base\nfileExistenceTests:\n  - name: f\n    path: /f\n    shouldExist: off\n    uid: 0o17\n",
        );
        assert_eq!(file.command_tests.len(), 2);
        assert_eq!(
            file.command_tests[1].command, "123",
            "a number decodes into a string field"
        );
        assert_eq!(file.command_tests[1].exit_code, 2);
        assert!(!file.file_existence_tests[0].should_exist);
        assert_eq!(file.file_existence_tests[0].uid, Some(15));
        assert_eq!(file.path, "structure.yaml");
    }

    #[test]
    fn merge_keys_apply_in_order_as_in_yaml_v2() {
        let file = structure(
            "schemaVersion: 2.0.0\ncommandTests:\n  - &base\n    name: base\n    command: echo\n    exitCode: 1\n  - <<: *base\n    name: a\n    exitCode: 0\n  - exitCode: 3\n    <<: *base\n    name: b\n",
        );
        let tests = &file.command_tests;
        assert_eq!(
            (tests[1].name.as_str(), tests[1].command.as_str()),
            ("a", "echo")
        );
        assert_eq!(
            tests[1].exit_code, 0,
            "a key after the merge replaces the merged one"
        );
        assert_eq!(
            (tests[2].name.as_str(), tests[2].exit_code),
            ("b", 1),
            "a merge after a key replaces it"
        );
    }

    #[test]
    fn the_readme_example_reads_as_it_says() {
        let blocks = crate::spec::testing::readme_blocks("yaml", "schemaVersion");
        assert_eq!(blocks.len(), 1);
        let file = structure(&blocks[0]);
        assert_eq!(
            file.global_env,
            [("PYTHONDONTWRITEBYTECODE".to_owned(), "1".to_owned())]
        );
        assert_eq!(file.command_tests[0].name, "adds");
        assert_eq!(file.command_tests[0].expected_output[0].as_str(), "^7\n$");
        assert_eq!(file.file_existence_tests[0].name, "app folder");
        assert_eq!(
            file.file_content_tests[0].excluded_contents[0].as_str(),
            "breakpoint\\(\\)"
        );
        assert!(file.metadata_test.is_some());
    }
}
