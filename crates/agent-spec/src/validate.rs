//! The checks every settings source shares (`agent.toml`, a spec, the environment,
//! the flags), and [`Source`], which points a failed check at its value in a file.
//!
//! Each check returns the problem as a lowercase fragment ("must be at least 1"); the
//! caller adds the key, the file position or the variable the value came from.

use std::ops::Range;
use std::path::Path;

use crate::spanned::Spanned;

use crate::errors::{ConfigError, Location, SpecError};
use crate::position::locate;

/// Regexes in a spec or a structure-test file are written by the user, but still get a
/// size limit so a typo cannot make compiling them eat the machine.
const REGEX_SIZE_LIMIT: usize = 10 * 1024 * 1024;

/// A regex from a user's file, `multi_line` or not, or why it does not compile.
pub(crate) fn regex(pattern: &str, multi_line: bool) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(pattern)
        .multi_line(multi_line)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|error| {
            // The regex crate draws the pattern with a caret over several lines; the
            // caller's location already points at the pattern, so keep its last line.
            let text = error.to_string();
            text.lines()
                .rev()
                .map(str::trim)
                .find(|line| !line.is_empty())
                .unwrap_or("invalid")
                .trim_start_matches("error: ")
                .to_owned()
        })
}

/// An error type with a "problem at a place in a file" variant.
pub(crate) trait Invalid {
    fn invalid(location: Location, message: String) -> Self;
}

impl Invalid for SpecError {
    fn invalid(location: Location, message: String) -> Self {
        SpecError::Invalid { location, message }
    }
}

impl Invalid for ConfigError {
    fn invalid(location: Location, message: String) -> Self {
        ConfigError::Invalid { location, message }
    }
}

/// The text being parsed, for pointing errors at spans.
#[derive(Clone, Copy)]
pub(crate) struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl Source<'_> {
    pub fn location(&self, span: Range<usize>) -> Location {
        locate(self.path, self.text, span.start)
    }

    pub fn invalid<E: Invalid>(&self, span: Range<usize>, message: String) -> E {
        E::invalid(self.location(span), message)
    }

    /// A value passed through `check`; its problem, worded by `message`, points at the
    /// value.
    pub fn value<T, U, E: Invalid>(
        &self,
        value: Option<Spanned<T>>,
        check: impl FnOnce(T) -> Result<U, String>,
        message: impl FnOnce(String) -> String,
    ) -> Result<Option<U>, E> {
        let Some(value) = value else {
            return Ok(None);
        };
        let span = value.span();
        check(value.into_inner())
            .map(Some)
            .map_err(|problem| self.invalid(span, message(problem)))
    }

    /// A number: "`key` must be …".
    pub fn number<T, U, E: Invalid>(
        &self,
        key: &str,
        value: Option<Spanned<T>>,
        check: impl FnOnce(T) -> Result<U, String>,
    ) -> Result<Option<U>, E> {
        self.value(value, check, |problem| format!("`{key}` {problem}"))
    }

    /// A text: "`key`: …".
    pub fn text<U, E: Invalid>(
        &self,
        key: &str,
        value: Option<Spanned<String>>,
        check: impl FnOnce(&str) -> Result<U, String>,
    ) -> Result<Option<U>, E> {
        self.value(
            value,
            |value| check(&value),
            |problem| format!("`{key}`: {problem}"),
        )
    }

    /// A value read by `read`, which words and places its own problems.
    pub fn with<R, U, E>(
        &self,
        key: &str,
        value: Option<R>,
        read: impl FnOnce(&Self, &str, R) -> Result<U, E>,
    ) -> Result<Option<U>, E> {
        value.map(|value| read(self, key, value)).transpose()
    }
}

/// `check` for a number that needs at least `minimum`.
pub(crate) fn at_least<T: PartialOrd + std::fmt::Display>(
    minimum: T,
) -> impl FnOnce(T) -> Result<T, String> {
    move |value| {
        if value < minimum {
            Err(format!("must be at least {minimum}"))
        } else {
            Ok(value)
        }
    }
}

/// For values with no constraint beyond their type.
pub(crate) fn any<T>(value: T) -> Result<T, String> {
    Ok(value)
}

/// The most bundles a first generation may ask for: each is a model call, a build and
/// a run.
pub(crate) const MAX_CANDIDATES: u32 = 16;

pub(crate) fn candidates(value: u32) -> Result<u32, String> {
    if (1..=MAX_CANDIDATES).contains(&value) {
        Ok(value)
    } else {
        Err(format!("must be between 1 and {MAX_CANDIDATES}"))
    }
}

pub(crate) fn cpus(value: f64) -> Result<f64, String> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err("must be a number above 0, e.g. `0.5` or `2`".to_owned())
    }
}

pub(crate) fn temperature(value: f64) -> Result<f64, String> {
    if (0.0..=2.0).contains(&value) {
        Ok(value)
    } else {
        Err("must be between 0 and 2".to_owned())
    }
}

/// A repository as Docker accepts it: an optional `host[:port]/`, then lowercase path
/// components separated by `/` (a trailing `/` is dropped).
pub(crate) fn repository(value: &str) -> Result<String, String> {
    static PATTERN: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        let host = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?";
        let component = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
        regex::Regex::new(&format!("^(?:{host}/)?{component}(?:/{component})*$"))
            .expect("a valid pattern")
    });
    let trimmed = value.trim_end_matches('/');
    if trimmed.len() <= 200 && PATTERN.is_match(trimmed) {
        Ok(trimmed.to_owned())
    } else {
        Err(format!(
            "`{value}` is not a repository Docker accepts; expected `[host[:port]/]path` in lowercase, e.g. `ghcr.io/acme/tools` or `127.0.0.1:5000/team`"
        ))
    }
}

/// An image reference as Docker pulls it: a [`repository`], then an optional
/// `:tag` or `@sha256:<64 hex>`.
pub(crate) fn image_reference(value: &str) -> Result<String, String> {
    let (name, suffix) = match value.split_once('@') {
        Some((name, digest)) => {
            let hex = digest.strip_prefix("sha256:").unwrap_or_default();
            if hex.len() != 64 || !hex.bytes().all(|byte| byte.is_ascii_hexdigit()) {
                return Err(format!(
                    "`{value}` has no digest Docker accepts; expected `@sha256:` and 64 hex"
                ));
            }
            (name, format!("@{digest}"))
        }
        None => match value.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name, format!(":{}", image_tag(tag)?)),
            _ => (value, String::new()),
        },
    };
    Ok(format!("{}{suffix}", repository(name)?))
}

/// An image tag as Docker accepts it.
pub(crate) fn image_tag(value: &str) -> Result<String, String> {
    let mut characters = value.chars();
    let first_ok = characters
        .next()
        .is_some_and(|first| first.is_ascii_alphanumeric() || first == '_');
    let rest_ok = characters.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok && value.len() <= 128 {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "`{value}` is not a tag Docker accepts: up to 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`"
        ))
    }
}

pub(crate) fn non_empty(value: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        Err("is empty".to_owned())
    } else {
        Ok(value.to_owned())
    }
}

/// An `http://` or `https://` URL with a host; a trailing `/` is dropped so that
/// `<base_url>/chat/completions` has a single slash. The value is never echoed, since
/// a URL may carry credentials.
pub(crate) fn base_url(value: &str) -> Result<String, String> {
    let lowercase = value.to_ascii_lowercase();
    let rest = if lowercase.starts_with("https://") {
        &value["https://".len()..]
    } else if lowercase.starts_with("http://") {
        &value["http://".len()..]
    } else {
        return Err("the base URL must start with `http://` or `https://`".to_owned());
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err("the base URL has no host".to_owned());
    }
    if value
        .chars()
        .any(|character| character.is_whitespace() || character.is_control())
    {
        return Err("the base URL contains whitespace or control characters".to_owned());
    }
    Ok(value.trim_end_matches('/').to_owned())
}

pub(crate) fn model_name(value: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        Err("the model name is empty".to_owned())
    } else {
        Ok(value.to_owned())
    }
}

/// What the engine accepts as a variable name in a container's environment (and the
/// C library in the process's own): non-empty, without `=` or NUL.
pub(crate) fn is_variable_name(value: &str) -> bool {
    !value.is_empty() && !value.contains(['=', '\0'])
}

pub(crate) fn variable_name(value: &str) -> Result<String, String> {
    if is_variable_name(value) {
        Ok(value.to_owned())
    } else {
        Err("must name an environment variable: non-empty, without `=` or NUL".to_owned())
    }
}

/// Names become image tags, labels and folder names, hence the narrow alphabet.
const NAME_LIMIT: usize = 128;

/// A spec, case, probe or suite name: `[a-z0-9][a-z0-9_.-]*`, at most
/// [`NAME_LIMIT`] bytes.
pub(crate) fn name(name: &str) -> Result<(), String> {
    let mut characters = name.chars();
    let Some(first) = characters.next() else {
        return Err("is empty".to_owned());
    };
    let allowed_first = first.is_ascii_lowercase() || first.is_ascii_digit();
    let allowed_rest = characters.all(|character| {
        character.is_ascii_lowercase()
            || character.is_ascii_digit()
            || matches!(character, '_' | '.' | '-')
    });
    if !allowed_first || !allowed_rest {
        return Err(
            "is not allowed: use lowercase letters, digits, `_`, `.` and `-`, \
                    starting with a letter or digit"
                .to_owned(),
        );
    }
    if name.len() > NAME_LIMIT {
        return Err(format!("is longer than {NAME_LIMIT} characters"));
    }
    Ok(())
}

/// The folder a file's relative paths are resolved against.
pub(crate) fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}
