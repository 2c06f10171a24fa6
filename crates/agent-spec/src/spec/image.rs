//! `[image]`: what the built image's configuration must say.

use std::collections::BTreeMap;

use crate::spanned::Spanned;
use serde::Deserialize;

use crate::check::ImageChecks;
use crate::errors::SpecError;
use crate::spec::run::{build_env, build_list};
use crate::validate::Source;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Image")]
pub(crate) struct RawImage {
    non_root: Option<Spanned<bool>>,
    user: Option<Spanned<String>>,
    workdir: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(schema_with = "port_list")]
    exposed_ports: Vec<Spanned<toml::Value>>,
    #[serde(default)]
    env: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    entrypoint: Option<Vec<Spanned<String>>>,
    cmd: Option<Vec<Spanned<String>>>,
    max_size_mb: Option<Spanned<u64>>,
}

pub(crate) fn build_image(
    source: &Source<'_>,
    table: &Spanned<RawImage>,
) -> Result<ImageChecks, SpecError> {
    let raw = table.get_ref();
    let non_root = match &raw.non_root {
        Some(value) if !*value.get_ref() => {
            return Err(source.invalid(
                value.span(),
                "`non_root = false` checks nothing; remove it (the image may then run as \
                 any user)"
                    .to_owned(),
            ));
        }
        value => value.is_some(),
    };
    let workdir = raw.workdir.as_ref().map(|workdir| {
        if workdir.get_ref().starts_with('/') {
            Ok(workdir.get_ref().clone())
        } else {
            Err(source.invalid(
                workdir.span(),
                format!(
                    "`workdir` `{}` is not absolute; write it as WORKDIR leaves it, e.g. \"/app\"",
                    workdir.get_ref()
                ),
            ))
        }
    });
    let mut exposed_ports = Vec::with_capacity(raw.exposed_ports.len());
    for port in &raw.exposed_ports {
        let normalized = exposed_port(port.get_ref()).map_err(|problem| {
            source.invalid(port.span(), format!("`exposed_ports`: {problem}"))
        })?;
        if exposed_ports.contains(&normalized) {
            return Err(source.invalid(
                port.span(),
                format!("`exposed_ports`: {normalized} is listed twice"),
            ));
        }
        exposed_ports.push(normalized);
    }
    let max_size_mb = source.number("max_size_mb", raw.max_size_mb.clone(), |size| {
        if size == 0 {
            Err("must be at least 1".to_owned())
        } else {
            Ok(size)
        }
    })?;
    let list = |key, value: &Option<Vec<Spanned<String>>>| {
        value
            .as_ref()
            .map(|items| build_list(source, key, items))
            .transpose()
    };
    let image = ImageChecks {
        non_root,
        user: raw.user.as_ref().map(|user| user.get_ref().clone()),
        workdir: workdir.transpose()?,
        exposed_ports,
        env: build_env(source, &raw.env)?,
        labels: raw.labels.clone(),
        entrypoint: list("entrypoint", &raw.entrypoint)?,
        cmd: list("cmd", &raw.cmd)?,
        max_size_mb,
    };
    if image == ImageChecks::default() {
        return Err(source.invalid(
            table.span(),
            "[image] asks for nothing; give it a key such as `non_root = true`, or remove it"
                .to_owned(),
        ));
    }
    Ok(image)
}

/// A port as the image's config lists it: `8080` is `8080/tcp`; a text may name the
/// protocol (`53/udp`).
/// `exposed_ports`: numbers, or `"8080/tcp"`-like texts.
fn port_list(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "items": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 65535}, {"type": "string"}]}
    })
}

fn exposed_port(value: &toml::Value) -> Result<String, String> {
    let (number, protocol) = match value {
        toml::Value::Integer(number) => (*number, "tcp"),
        toml::Value::String(text) => {
            let (number, protocol) = text.split_once('/').unwrap_or((text, "tcp"));
            let number = number
                .parse::<i64>()
                .map_err(|_| format!("`{text}` is no port; write 8080 or \"8080/udp\""))?;
            (number, protocol)
        }
        other => {
            return Err(format!(
                "{} is no port; write 8080 or \"8080/udp\"",
                other.type_str()
            ));
        }
    };
    if !(1..=65535).contains(&number) {
        return Err(format!("port {number} is outside 1..65535"));
    }
    if !matches!(protocol, "tcp" | "udp" | "sctp") {
        return Err(format!(
            "protocol `{protocol}` is not one of tcp, udp, sctp"
        ));
    }
    Ok(format!("{number}/{protocol}"))
}

#[cfg(test)]
mod tests {
    use crate::spec::testing::{MINIMAL, invalid, parse};

    #[test]
    fn every_image_key_parses() {
        let spec = parse(&format!(
            "{MINIMAL}[image]\nnon_root = true\nuser = \"app\"\nworkdir = \"/app\"\n\
             exposed_ports = [8080, \"53/udp\", \"9000\"]\nenv = {{ PYTHONUNBUFFERED = \"1\" }}\n\
             labels = {{ \"org.opencontainers.image.licenses\" = \"MIT\" }}\n\
             entrypoint = [\"python3\"]\ncmd = [\"main.py\"]\nmax_size_mb = 300\n"
        ))
        .unwrap();
        let image = spec.image.unwrap();
        assert!(image.non_root);
        assert_eq!(image.user.as_deref(), Some("app"));
        assert_eq!(image.workdir.as_deref(), Some("/app"));
        assert_eq!(image.exposed_ports, ["8080/tcp", "53/udp", "9000/tcp"]);
        assert_eq!(image.env["PYTHONUNBUFFERED"], "1");
        assert_eq!(image.labels["org.opencontainers.image.licenses"], "MIT");
        assert_eq!(image.entrypoint, Some(vec!["python3".to_owned()]));
        assert_eq!(image.cmd, Some(vec!["main.py".to_owned()]));
        assert_eq!(image.max_size_mb, Some(300));
        assert!(!spec.judge, "image checks are deterministic");
    }

    #[test]
    fn bad_image_values_point_at_themselves() {
        let cases = [
            ("exposed_ports = [0]", 4, 18, "port 0 is outside 1..65535"),
            ("exposed_ports = [\"80/icmp\"]", 4, 18, "protocol `icmp`"),
            ("exposed_ports = [\"http\"]", 4, 18, "`http` is no port"),
            ("exposed_ports = [true]", 4, 18, "boolean is no port"),
            (
                "exposed_ports = [80, \"80/tcp\"]",
                4,
                22,
                "80/tcp is listed twice",
            ),
            ("workdir = \"app\"", 4, 11, "is not absolute"),
            ("non_root = false", 4, 12, "checks nothing"),
            ("max_size_mb = 0", 4, 15, "must be at least 1"),
            ("users = \"app\"", 4, 1, "did you mean `user`?"),
        ];
        for (line_text, line, column, expected) in cases {
            let (found_line, found_column, message) =
                invalid(&format!("{MINIMAL}[image]\n{line_text}\n"));
            assert_eq!(
                (found_line, found_column),
                (line, column),
                "{line_text}: {message}"
            );
            assert!(message.contains(expected), "{line_text}: {message}");
        }
        let (line, _, message) = invalid(&format!("{MINIMAL}[image]\n"));
        assert_eq!(line, 3);
        assert!(message.contains("asks for nothing"), "{message}");
    }
}
