//! `[service]` and `[[probe]]`: the image as a long-running service, when it is ready,
//! how long it may take to stop, and the HTTP requests made to it once it is ready.

use std::collections::{BTreeMap, HashSet};

use crate::spanned::Spanned;
use regex::Regex;
use serde::Deserialize;

use crate::check::{BodyExpectation, Probe};
use crate::errors::SpecError;
use crate::spec::checks::compile;
use crate::validate::{self, Source, at_least};

/// `[service]`, validated.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Service {
    /// Where it listens inside the container.
    pub port: u16,
    pub readiness: Readiness,
    pub ready_timeout_secs: u64,
    pub stop_timeout_secs: u64,
}

/// When the service counts as ready.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    /// `GET` of this path (it starts with `/`) answers a 2xx.
    Http(String),
    /// A line of either stream matches.
    Log(#[serde(serialize_with = "crate::check::text::pattern")] Regex),
    /// The port accepts a connection.
    Tcp,
}

pub(crate) const DEFAULT_READY_TIMEOUT_SECS: u64 = 60;
pub(crate) const DEFAULT_STOP_TIMEOUT_SECS: u64 = 10;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Service")]
pub(crate) struct RawService {
    port: Spanned<i64>,
    ready_http: Option<Spanned<String>>,
    ready_log: Option<Spanned<String>>,
    ready_tcp: Option<Spanned<bool>>,
    ready_timeout_secs: Option<Spanned<u64>>,
    stop_timeout_secs: Option<Spanned<u64>>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Probe")]
pub(crate) struct RawProbe {
    name: Option<Spanned<String>>,
    method: Option<Spanned<String>>,
    path: Spanned<String>,
    #[serde(default)]
    headers: BTreeMap<Spanned<String>, Spanned<String>>,
    body: Option<String>,
    status: Option<Spanned<i64>>,
    body_contains: Option<Spanned<String>>,
    body_equals: Option<Spanned<String>>,
    body_matches: Option<Spanned<String>>,
    #[schemars(with = "Option<serde_json::Value>")]
    json: Option<Spanned<toml::Value>>,
}

pub(crate) fn build_service(
    source: &Source<'_>,
    table: &Spanned<RawService>,
) -> Result<Service, SpecError> {
    let raw = table.get_ref();
    let port = u16::try_from(*raw.port.get_ref())
        .ok()
        .filter(|port| *port != 0)
        .ok_or_else(|| {
            source.invalid(
                raw.port.span(),
                format!("`port` {} is no port; use 1 to 65535", raw.port.get_ref()),
            )
        })?;
    let readiness = readiness(source, table)?;
    let timeout = |key, value: &Option<Spanned<u64>>, default| {
        source
            .number(key, value.clone(), at_least(1))
            .map(|secs| secs.unwrap_or(default))
    };
    Ok(Service {
        port,
        readiness,
        ready_timeout_secs: timeout(
            "ready_timeout_secs",
            &raw.ready_timeout_secs,
            DEFAULT_READY_TIMEOUT_SECS,
        )?,
        stop_timeout_secs: timeout(
            "stop_timeout_secs",
            &raw.stop_timeout_secs,
            DEFAULT_STOP_TIMEOUT_SECS,
        )?,
    })
}

/// Exactly one of `ready_http`, `ready_log`, `ready_tcp = true`.
fn readiness(source: &Source<'_>, table: &Spanned<RawService>) -> Result<Readiness, SpecError> {
    let raw = table.get_ref();
    let mut found: Vec<(&str, std::ops::Range<usize>)> = Vec::new();
    if let Some(path) = &raw.ready_http {
        found.push(("ready_http", path.span()));
    }
    if let Some(pattern) = &raw.ready_log {
        found.push(("ready_log", pattern.span()));
    }
    if let Some(tcp) = &raw.ready_tcp {
        if !*tcp.get_ref() {
            return Err(source.invalid(
                tcp.span(),
                "`ready_tcp = false` says nothing; use `ready_tcp = true`, `ready_http` or \
                 `ready_log`"
                    .to_owned(),
            ));
        }
        found.push(("ready_tcp", tcp.span()));
    }
    match found.as_slice() {
        [] => Err(source.invalid(
            table.span(),
            "[service] says nothing of readiness; give it one of `ready_http = \"/health\"`, \
             `ready_log = \"regex\"` or `ready_tcp = true`"
                .to_owned(),
        )),
        [(first, _), (second, span), ..] => Err(source.invalid(
            span.clone(),
            format!("[service] has two readiness keys, `{first}` and `{second}`: keep one"),
        )),
        [_] => {
            if let Some(path) = &raw.ready_http {
                request_path(source, "ready_http", path)?;
                Ok(Readiness::Http(path.get_ref().clone()))
            } else if let Some(pattern) = &raw.ready_log {
                Ok(Readiness::Log(compile(source, "ready_log", pattern)?))
            } else {
                Ok(Readiness::Tcp)
            }
        }
    }
}

/// The `[[probe]]` tables; they need a `[service]` to reach.
pub(crate) fn build_probes(
    source: &Source<'_>,
    raw: &[Spanned<RawProbe>],
    service: Option<&Service>,
) -> Result<Vec<Probe>, SpecError> {
    if let (Some(first), None) = (raw.first(), service) {
        return Err(source.invalid(
            first.span(),
            "[[probe]] without [service]: a probe is a request to a running service; add \
             [service] with its `port` and readiness"
                .to_owned(),
        ));
    }
    let mut names = HashSet::new();
    raw.iter()
        .map(|table| build_probe(source, table, &mut names))
        .collect()
}

fn build_probe(
    source: &Source<'_>,
    table: &Spanned<RawProbe>,
    names: &mut HashSet<String>,
) -> Result<Probe, SpecError> {
    let raw = table.get_ref();
    let Some(name) = &raw.name else {
        return Err(source.invalid(
            table.span(),
            "[[probe]] has no `name`; give each probe a short unique name".to_owned(),
        ));
    };
    validate::name(name.get_ref())
        .map_err(|problem| source.invalid(name.span(), format!("probe name {problem}")))?;
    if !names.insert(name.get_ref().clone()) {
        return Err(source.invalid(
            name.span(),
            format!("probe name `{}` is used twice", name.get_ref()),
        ));
    }
    let method = match &raw.method {
        Some(method) if !is_token(method.get_ref()) => {
            return Err(source.invalid(
                method.span(),
                format!(
                    "`method` `{}` is no HTTP method; write e.g. \"POST\"",
                    method.get_ref()
                ),
            ));
        }
        Some(method) => method.get_ref().clone(),
        None => "GET".to_owned(),
    };
    request_path(source, "path", &raw.path)?;
    let status = source.number("status", raw.status.clone(), |status: i64| {
        u16::try_from(status)
            .ok()
            .filter(|status| (100..=599).contains(status))
            .ok_or_else(|| "must be an HTTP status, 100 to 599".to_owned())
    })?;
    Ok(Probe {
        name: name.get_ref().clone(),
        method,
        path: raw.path.get_ref().clone(),
        headers: headers(source, &raw.headers)?,
        body: raw.body.clone(),
        status,
        expect: expectation(source, raw)?,
    })
}

/// Header names are HTTP tokens; values may not break the request's lines.
fn headers(
    source: &Source<'_>,
    raw: &BTreeMap<Spanned<String>, Spanned<String>>,
) -> Result<BTreeMap<String, String>, SpecError> {
    let mut headers = BTreeMap::new();
    for (name, value) in raw {
        if !is_token(name.get_ref()) {
            return Err(source.invalid(
                name.span(),
                format!("header name `{}` is no HTTP token", name.get_ref()),
            ));
        }
        if value.get_ref().chars().any(|c| c.is_control() && c != '\t') {
            return Err(source.invalid(
                value.span(),
                format!(
                    "header `{}` has a line break or control character in its value",
                    name.get_ref()
                ),
            ));
        }
        headers.insert(name.get_ref().clone(), value.get_ref().clone());
    }
    Ok(headers)
}

/// At most one of `body_contains`, `body_equals`, `body_matches`, `json`.
fn expectation(source: &Source<'_>, raw: &RawProbe) -> Result<Option<BodyExpectation>, SpecError> {
    let mut found: Vec<(BodyExpectation, std::ops::Range<usize>)> = Vec::new();
    if let Some(text) = &raw.body_contains {
        found.push((
            BodyExpectation::Contains(text.get_ref().clone()),
            text.span(),
        ));
    }
    if let Some(text) = &raw.body_equals {
        found.push((BodyExpectation::Equals(text.get_ref().clone()), text.span()));
    }
    if let Some(pattern) = &raw.body_matches {
        let regex = compile(source, "body_matches", pattern)?;
        found.push((BodyExpectation::Matches(regex), pattern.span()));
    }
    if let Some(value) = &raw.json {
        let json = to_json(value.get_ref())
            .map_err(|problem| source.invalid(value.span(), format!("`json`: {problem}")))?;
        found.push((BodyExpectation::Json(json), value.span()));
    }
    match found.len() {
        0 | 1 => Ok(found.pop().map(|(expect, _)| expect)),
        _ => Err(source.invalid(
            found[1].1.clone(),
            format!(
                "probe has two body expectations, `{}` and `{}`: keep one (add another \
                 [[probe]] for the other)",
                found[0].0.key(),
                found[1].0.key()
            ),
        )),
    }
}

/// A TOML value as the JSON it stands for; dates have no JSON form.
fn to_json(value: &toml::Value) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    Ok(match value {
        toml::Value::String(text) => Value::String(text.clone()),
        toml::Value::Integer(number) => Value::from(*number),
        toml::Value::Float(number) => serde_json::Number::from_f64(*number)
            .map(Value::Number)
            .ok_or_else(|| format!("{number} has no JSON form"))?,
        toml::Value::Boolean(flag) => Value::Bool(*flag),
        toml::Value::Datetime(date) => {
            return Err(format!(
                "{date} is a TOML date, which JSON has not; write it as a string"
            ));
        }
        toml::Value::Array(items) => {
            Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?)
        }
        toml::Value::Table(table) => Value::Object(
            table
                .iter()
                .map(|(key, value)| Ok((key.clone(), to_json(value)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

/// A request target: starts with `/`, and no whitespace or control character that
/// would break the request line.
fn request_path(source: &Source<'_>, key: &str, path: &Spanned<String>) -> Result<(), SpecError> {
    let text = path.get_ref();
    if !text.starts_with('/') {
        return Err(source.invalid(
            path.span(),
            format!("`{key}` `{text}` must start with `/`, e.g. \"/health\""),
        ));
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(source.invalid(
            path.span(),
            format!("`{key}` has a space or control character; percent-encode it (`%20`)"),
        ));
    }
    Ok(())
}

/// An HTTP token (RFC 9110): methods and header names.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Matcher;
    use crate::spec::testing::{MINIMAL, invalid, parse};

    const SERVICE: &str = "[service]\nport = 8080\nready_http = \"/health\"\n";

    #[test]
    fn the_readme_example_reads_as_it_says() {
        let blocks = crate::spec::testing::readme_blocks("toml", "[[probe]]");
        assert_eq!(blocks.len(), 1);
        let spec = parse(&format!("{MINIMAL}{}", blocks[0])).unwrap();
        let service = spec.service.unwrap();
        assert_eq!(service.port, 8080);
        assert!(matches!(&service.readiness, Readiness::Http(path) if path == "/health"));
        assert_eq!(
            (service.ready_timeout_secs, service.stop_timeout_secs),
            (60, 10)
        );
        let probe = &spec.probes[0];
        assert_eq!(
            (probe.name.as_str(), probe.method.as_str()),
            ("add", "POST")
        );
        assert_eq!(probe.headers["content-type"], "application/json");
        assert_eq!(probe.status, Some(200));
        assert_eq!(probe.expect.as_ref().unwrap().key(), "json");
        assert!(!spec.judge);
    }

    #[test]
    fn design_example_parses_with_defaults() {
        let text = format!(
            "{MINIMAL}[[check]]\nstdout_contains = \"listening\"\n{SERVICE}\
             [[probe]]\nname = \"add\"\nmethod = \"POST\"\npath = \"/add?a=2&b=3\"\n\
             headers = {{ \"content-type\" = \"application/json\" }}\n\
             body = '{{\"a\": 2, \"b\": 3}}'\nstatus = 200\njson = {{ sum = 5 }}\n\
             [[probe]]\nname = \"health\"\npath = \"/health\"\n"
        );
        let spec = parse(&text).unwrap();
        let service = spec.service.as_ref().unwrap();
        assert_eq!(service.port, 8080);
        assert!(matches!(&service.readiness, Readiness::Http(path) if path == "/health"));
        assert_eq!(service.ready_timeout_secs, 60);
        assert_eq!(service.stop_timeout_secs, 10);
        assert!(!spec.judge, "a service is deterministic");
        assert!(spec.cases_to_run().is_empty(), "a service runs no case");
        assert!(matches!(spec.checks[0].matcher, Matcher::StdoutContains(_)));
        let add = &spec.probes[0];
        assert_eq!(add.method, "POST");
        assert_eq!(add.headers["content-type"], "application/json");
        assert_eq!(add.body.as_deref(), Some("{\"a\": 2, \"b\": 3}"));
        assert_eq!(add.status, Some(200));
        assert!(
            matches!(&add.expect, Some(BodyExpectation::Json(json)) if *json == serde_json::json!({"sum": 5}))
        );
        let health = &spec.probes[1];
        assert_eq!((health.method.as_str(), health.status), ("GET", None));
        assert!(health.expect.is_none());
    }

    #[test]
    fn readiness_by_log_or_tcp_and_timeouts() {
        let text = format!(
            "{MINIMAL}[service]\nport = 1\nready_log = \"^listening on \\\\d+\"\n\
             ready_timeout_secs = 5\nstop_timeout_secs = 2\n"
        );
        let service = parse(&text).unwrap().service.unwrap();
        let Readiness::Log(regex) = &service.readiness else {
            panic!("expected log readiness");
        };
        assert!(regex.is_match("booting\nlistening on 80\n"));
        assert_eq!(
            (service.ready_timeout_secs, service.stop_timeout_secs),
            (5, 2)
        );
        let tcp = format!("{MINIMAL}[service]\nport = 65535\nready_tcp = true\n");
        assert!(matches!(
            parse(&tcp).unwrap().service.unwrap().readiness,
            Readiness::Tcp
        ));
    }

    #[test]
    fn service_errors_point_at_the_value() {
        let cases = [
            (
                "port = 0\nready_tcp = true",
                (4, 8),
                "`port` 0 is no port; use 1 to 65535",
            ),
            (
                "port = 65536\nready_tcp = true",
                (4, 8),
                "`port` 65536 is no port",
            ),
            (
                "port = 1\nready_http = \"/\"\nready_tcp = true",
                (6, 13),
                "[service] has two readiness keys, `ready_http` and `ready_tcp`",
            ),
            ("port = 1", (3, 1), "[service] says nothing of readiness"),
            (
                "port = 1\nready_tcp = false",
                (5, 13),
                "`ready_tcp = false` says nothing",
            ),
            (
                "port = 1\nready_log = \"(\"",
                (5, 13),
                "bad regex in `ready_log`",
            ),
            (
                "port = 1\nready_http = \"health\"",
                (5, 14),
                "`ready_http` `health` must start with `/`",
            ),
            (
                "port = 1\nready_tcp = true\nready_timeout_secs = 0",
                (6, 22),
                "`ready_timeout_secs` must be at least 1",
            ),
            (
                "port = 1\nready_tcp = true\nreadiness = 1",
                (6, 1),
                "unknown key `readiness` in [service]",
            ),
        ];
        for (body, position, expected) in cases {
            let (line, column, message) = invalid(&format!("{MINIMAL}[service]\n{body}\n"));
            assert_eq!((line, column), position, "{body}");
            assert!(message.starts_with(expected), "{body}: {message}");
        }
    }

    #[test]
    fn exit_codes_and_cases_are_refused_with_a_service() {
        let (line, column, message) =
            invalid(&format!("{MINIMAL}[[check]]\nexit_code = 0\n{SERVICE}"));
        assert_eq!((line, column), (4, 13));
        assert!(
            message.starts_with("`exit_code` with [service]"),
            "{message}"
        );
        let (line, _, message) = invalid(&format!(
            "{MINIMAL}{SERVICE}[[case]]\nname = \"a\"\n[[case.check]]\nstdout_contains = \"x\"\n"
        ));
        assert_eq!(line, 6);
        assert!(message.starts_with("[[case]] with [service]"), "{message}");
    }

    #[test]
    fn probe_errors_point_at_the_value() {
        let (line, _, message) =
            invalid(&format!("{MINIMAL}[[probe]]\nname = \"a\"\npath = \"/\"\n"));
        assert_eq!(line, 3);
        assert!(
            message.starts_with("[[probe]] without [service]"),
            "{message}"
        );
        let cases = [
            ("path = \"/\"", "[[probe]] has no `name`"),
            ("name = \"A\"\npath = \"/\"", "probe name is not allowed"),
            (
                "name = \"a\"\npath = \"x\"",
                "`path` `x` must start with `/`",
            ),
            ("name = \"a\"\npath = \"/a b\"", "`path` has a space"),
            (
                "name = \"a\"\npath = \"/\"\nmethod = \"GE T\"",
                "`method` `GE T` is no HTTP method",
            ),
            (
                "name = \"a\"\npath = \"/\"\nheaders = { \"a b\" = \"x\" }",
                "header name `a b` is no HTTP token",
            ),
            (
                "name = \"a\"\npath = \"/\"\nheaders = { x = \"a\\r\\nHost: evil\" }",
                "header `x` has a line break",
            ),
            (
                "name = \"a\"\npath = \"/\"\nstatus = 99",
                "`status` must be an HTTP status",
            ),
            (
                "name = \"a\"\npath = \"/\"\nbody_matches = \"(\"",
                "bad regex in `body_matches`",
            ),
            (
                "name = \"a\"\npath = \"/\"\nbody_contains = \"x\"\njson = { a = 1 }",
                "probe has two body expectations, `body_contains` and `json`",
            ),
            (
                "name = \"a\"\npath = \"/\"\njson = { at = 1979-05-27 }",
                "`json`: 1979-05-27 is a TOML date",
            ),
            (
                "name = \"a\"\npath = \"/\"\nbody_has = \"x\"",
                "unknown key `body_has` in [[probe]]",
            ),
        ];
        for (body, expected) in cases {
            let (_, _, message) = invalid(&format!("{MINIMAL}{SERVICE}[[probe]]\n{body}\n"));
            assert!(message.starts_with(expected), "{body}: {message}");
        }
        let twice = format!(
            "{MINIMAL}{SERVICE}[[probe]]\nname = \"a\"\npath = \"/\"\n[[probe]]\nname = \"a\"\npath = \"/\"\n"
        );
        let (line, column, message) = invalid(&twice);
        assert_eq!((line, column), (10, 8));
        assert_eq!(message, "probe name `a` is used twice");
    }
}
