//! Errors for reading specs and config files: each names the file, and the line and
//! column where the problem is.

use std::path::PathBuf;

/// Where in a file a problem sits (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.path.display(), self.line, self.column)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read spec `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A syntax error, an unknown key, a wrong type, two matchers in one check, a bad
    /// regex, a bad name: `message` says which, `location` says where.
    #[error("{location}: {message}")]
    Invalid { location: Location, message: String },
    /// An `inputs` entry that does not exist or escapes the spec's folder.
    #[error("{location}: input `{input}` {problem}")]
    Input {
        location: Location,
        input: String,
        problem: String,
    },
    /// A `files` entry of a `[[suite]]` that does not exist, escapes the spec's folder,
    /// is also an input, or lands where another of the suite's files does.
    #[error("{location}: suite `{suite}` file `{file}` {problem}")]
    SuiteFile {
        location: Location,
        suite: String,
        file: String,
        problem: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{location}: {message}")]
    Invalid { location: Location, message: String },
    /// A value from the environment or the command line that does not parse.
    #[error("{origin}: {message}")]
    Override { origin: String, message: String },
}

/// Every problem found in one file, in file order: `agent check` reports them all
/// at once. Shown one per line.
#[derive(Debug)]
pub struct Problems<E>(Vec<E>);

impl<E> Problems<E> {
    pub(crate) fn new(problems: Vec<E>) -> Problems<E> {
        Problems(problems)
    }

    pub fn iter(&self) -> std::slice::Iter<'_, E> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<E> IntoIterator for Problems<E> {
    type Item = E;
    type IntoIter = std::vec::IntoIter<E>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<E: std::fmt::Display> std::fmt::Display for Problems<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lines: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&lines.join("\n"))
    }
}

impl<E: std::error::Error> std::error::Error for Problems<E> {}
