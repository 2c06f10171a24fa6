//! `[docker] engines` and `--engine`: engine addresses as the Docker CLI writes them,
//! each a string or a table with its slots:
//!
//! ```toml
//! [docker]
//! engines = ["unix:///var/run/docker.sock", { url = "tcp://builder-2:2376", slots = 8 }]
//! ```

use toml::Spanned;

use crate::errors::ConfigError;
use crate::settings::EngineSetting;
use crate::validate::Source;

/// An engine address `agent` can reach: `unix://` (or a socket path), `tcp://`,
/// `http://` or `https://`. `ssh://` is refused with what to use instead.
pub fn engine_url(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.starts_with("ssh://") {
        return Err(format!(
            "`{value}`: `ssh://` engines are not supported (the Docker client library is built \
             without ssh); use `tcp://` with TLS (`DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`), or an \
             ssh tunnel to the engine's socket: `ssh -nNT -L /tmp/engine.sock:/var/run/docker.sock \
             host` and `unix:///tmp/engine.sock`"
        ));
    }
    let known = ["unix://", "tcp://", "http://", "https://", "/"];
    if !known.iter().any(|scheme| value.starts_with(scheme)) {
        return Err(format!(
            "`{value}` is not an engine address; expected `unix:///path/to/docker.sock` or \
             `tcp://host:port`"
        ));
    }
    let address = value.split_once("://").map_or(value, |(_, rest)| rest);
    if address.trim_matches('/').is_empty() {
        return Err(format!("`{value}` names no socket or host"));
    }
    Ok(value.to_owned())
}

/// The `engines` array of `agent.toml`'s `[docker]`.
pub(crate) fn read(
    source: &Source<'_>,
    list: Spanned<Vec<Spanned<toml::Value>>>,
) -> Result<Vec<EngineSetting>, ConfigError> {
    let mut engines = Vec::new();
    for entry in list.into_inner() {
        let span = entry.span();
        let engine = match entry.into_inner() {
            toml::Value::String(url) => EngineSetting { url, slots: None },
            toml::Value::Table(table) => from_table(table).map_err(|problem| {
                source.invalid::<ConfigError>(span.clone(), format!("`engines`: {problem}"))
            })?,
            _ => {
                return Err(source.invalid(
                    span,
                    "`engines` entries are addresses (\"tcp://host:2376\") or tables \
                     ({ url = \"tcp://host:2376\", slots = 4 })"
                        .to_owned(),
                ));
            }
        };
        let url = engine_url(&engine.url).map_err(|problem| {
            source.invalid::<ConfigError>(span.clone(), format!("`engines`: {problem}"))
        })?;
        if engines.iter().any(|known: &EngineSetting| known.url == url) {
            return Err(source.invalid(span, format!("`engines`: `{url}` is listed twice")));
        }
        engines.push(EngineSetting { url, ..engine });
    }
    Ok(engines)
}

fn from_table(table: toml::Table) -> Result<EngineSetting, String> {
    let mut url = None;
    let mut slots = None;
    for (key, value) in table {
        match (key.as_str(), value) {
            ("url", toml::Value::String(text)) => url = Some(text),
            ("slots", toml::Value::Integer(count)) if count >= 1 => {
                slots = Some(usize::try_from(count).map_err(|_| "`slots` is too large")?);
            }
            ("slots", _) => return Err("`slots` must be a whole number of at least 1".to_owned()),
            ("url", _) => return Err("`url` must be a string".to_owned()),
            (other, _) => {
                return Err(format!(
                    "unknown key `{other}` in an engine; expected `url` or `slots`"
                ));
            }
        }
    }
    let url = url.ok_or("an engine table needs `url`")?;
    Ok(EngineSetting { url, slots })
}

#[cfg(test)]
mod tests {
    use super::engine_url;

    #[test]
    fn engine_addresses_as_the_docker_cli_writes_them() {
        assert!(engine_url("unix:///var/run/docker.sock").is_ok());
        assert!(engine_url("tcp://builder-2:2376").is_ok());
        assert!(
            engine_url("ssh://builder")
                .unwrap_err()
                .contains("ssh tunnel")
        );
        assert!(
            engine_url("builder:2376")
                .unwrap_err()
                .contains("not an engine address")
        );
        assert!(engine_url("tcp://").unwrap_err().contains("names no"));
    }
}
