//! `[docker] engines` and `--engine`: engine addresses as the Docker CLI writes them,
//! each a string or a table with its slots:
//!
//! ```toml
//! [docker]
//! engines = ["unix:///var/run/docker.sock", { url = "tcp://builder-2:2376", slots = 8 }]
//! ```
//!
//! An `ssh://user@host` engine may name the private key to log in with:
//! `{ url = "ssh://ci@builder-3", identity = "~/.ssh/builder_ed25519" }`.

use crate::spanned::Spanned;

use crate::config::settings::EngineSetting;
use crate::errors::ConfigError;
use crate::validate::Source;

/// An engine address `agent` can reach: `unix://` (or a socket path), `tcp://`,
/// `http://`, `https://` or `ssh://[user@]host`.
pub fn engine_url(value: &str) -> Result<String, String> {
    let value = value.trim();
    let known = ["unix://", "tcp://", "http://", "https://", "ssh://", "/"];
    if !known.iter().any(|scheme| value.starts_with(scheme)) {
        return Err(format!(
            "`{value}` is not an engine address; expected `unix:///path/to/docker.sock`, \
             `tcp://host:port` or `ssh://user@host`"
        ));
    }
    if let Some(rest) = value.strip_prefix("ssh://") {
        return ssh_url(value, rest);
    }
    let address = value.split_once("://").map_or(value, |(_, rest)| rest);
    if address.trim_matches('/').is_empty() {
        return Err(format!("`{value}` names no socket or host"));
    }
    Ok(value.to_owned())
}

/// `ssh://[user@]host`: a host, and neither a path (the remote `docker` reaches its
/// own default engine) nor a port (bollard 0.21.1 hands `ssh` the host with the port
/// glued on, which `ssh` cannot resolve; `~/.ssh/config` gives the port instead).
fn ssh_url(value: &str, rest: &str) -> Result<String, String> {
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    if host.is_empty() || host.starts_with(':') {
        return Err(format!("`{value}` names no host"));
    }
    if let Some((name, port)) = host.trim_end_matches('/').rsplit_once(':') {
        return Err(format!(
            "`{value}`: the Docker client library passes no port to `ssh` (bollard 0.21); \
             set it in `~/.ssh/config` (`Host {name}` with `Port {port}`) and leave it out of \
             the address"
        ));
    }
    if host.contains('/') && !host.ends_with('/') {
        return Err(format!(
            "`{value}`: an `ssh://` engine is `ssh://user@host`, without a path (the \
             remote `docker` uses its own default engine)"
        ));
    }
    Ok(value.trim_end_matches('/').to_owned())
}

/// An entry of `[docker] engines` as written: an address or a table, read by
/// [`read`] with messages of its own; the schema says the same.
#[derive(serde::Deserialize)]
#[serde(transparent)]
pub(crate) struct EngineEntry(toml::Value);

impl schemars::JsonSchema for EngineEntry {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "EngineEntry".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "An engine address (`unix://`, `tcp://`, `http(s)://`, `ssh://user@host`), or a table with `url`, `slots` (builds and runs at once) and `identity` (the key of an `ssh://` engine).",
            "anyOf": [
                {"type": "string"},
                {
                    "type": "object",
                    "properties": {
                        "url": {"type": "string"},
                        "slots": {"type": "integer", "minimum": 1},
                        "identity": {"type": "string"}
                    },
                    "required": ["url"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

/// The `engines` array of `agent.toml`'s `[docker]`.
pub(crate) fn read(
    source: &Source<'_>,
    list: Spanned<Vec<Spanned<EngineEntry>>>,
) -> Result<Vec<EngineSetting>, ConfigError> {
    let mut engines = Vec::new();
    for entry in list.into_inner() {
        let span = entry.span();
        let engine = match entry.into_inner().0 {
            toml::Value::String(url) => EngineSetting {
                url,
                slots: None,
                identity: None,
            },
            toml::Value::Table(table) => from_table(table).map_err(|problem| {
                source.invalid::<ConfigError>(span.clone(), format!("`engines`: {problem}"))
            })?,
            _ => {
                return Err(source.invalid(
                    span,
                    "`engines` entries are addresses (\"tcp://host:2376\") or tables \
                     ({ url = \"tcp://host:2376\", slots = 4 }, or \
                     { url = \"ssh://user@host\", identity = \"~/.ssh/key\" })"
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
    let mut identity = None;
    for (key, value) in table {
        match (key.as_str(), value) {
            ("url", toml::Value::String(text)) => url = Some(text),
            ("slots", toml::Value::Integer(count)) if count >= 1 => {
                slots = Some(usize::try_from(count).map_err(|_| "`slots` is too large")?);
            }
            ("slots", _) => return Err("`slots` must be a whole number of at least 1".to_owned()),
            ("url", _) => return Err("`url` must be a string".to_owned()),
            ("identity", toml::Value::String(path)) if !path.trim().is_empty() => {
                identity = Some(path);
            }
            ("identity", _) => return Err("`identity` must be the path of a key".to_owned()),
            (other, _) => {
                return Err(format!(
                    "unknown key `{other}` in an engine; expected `url`, `slots` or `identity`"
                ));
            }
        }
    }
    let url: String = url.ok_or("an engine table needs `url`")?;
    if identity.is_some() && !url.trim().starts_with("ssh://") {
        return Err(format!(
            "`identity` is the key of an `ssh://` engine; `{url}` is not one"
        ));
    }
    Ok(EngineSetting {
        url,
        slots,
        identity,
    })
}

#[cfg(test)]
mod tests {
    use super::engine_url;

    #[test]
    fn engine_addresses_as_the_docker_cli_writes_them() {
        assert!(engine_url("unix:///var/run/docker.sock").is_ok());
        assert!(engine_url("tcp://builder-2:2376").is_ok());
        assert_eq!(engine_url("ssh://ci@builder").unwrap(), "ssh://ci@builder");
        assert!(
            engine_url("ssh://ci@builder:2222")
                .unwrap_err()
                .contains("`Host builder` with `Port 2222`")
        );
        assert_eq!(engine_url("ssh://builder/").unwrap(), "ssh://builder");
        assert!(
            engine_url("ssh://ci@")
                .unwrap_err()
                .contains("names no host")
        );
        assert!(
            engine_url("ssh://builder/var/run/docker.sock")
                .unwrap_err()
                .contains("without a path")
        );
        assert!(
            engine_url("builder:2376")
                .unwrap_err()
                .contains("not an engine address")
        );
        assert!(engine_url("tcp://").unwrap_err().contains("names no"));
    }
}
