//! `[docker] build_allow`: what a build's `RUN` steps may reach under
//! `build_network = "allowlist"`. An entry is an ecosystem's name (its package
//! registries, on ports 80 and 443), a host (`example.com`, `10.0.0.5`), a host and
//! port (`host:8080`, `[::1]:8080`) or every name under a domain (`*.example.com`).
//! Only a host the user wrote itself may be a loopback, private or link-local
//! address: a name reached through an ecosystem or a wildcard never resolves there.

use crate::position::closest;

/// Each ecosystem and the hosts its package tools download from.
pub(crate) const ECOSYSTEMS: &[(&str, &[&str])] = &[
    ("python", &["pypi.org", "files.pythonhosted.org"]),
    ("debian", &["deb.debian.org", "security.debian.org"]),
    (
        "ubuntu",
        &[
            "archive.ubuntu.com",
            "security.ubuntu.com",
            "ports.ubuntu.com",
        ],
    ),
    ("alpine", &["dl-cdn.alpinelinux.org"]),
    ("node", &["registry.npmjs.org", "registry.yarnpkg.com"]),
    (
        "rust",
        &[
            "crates.io",
            "index.crates.io",
            "static.crates.io",
            "static.rust-lang.org",
        ],
    ),
    ("go", &["proxy.golang.org", "sum.golang.org"]),
    ("ruby", &["rubygems.org", "index.rubygems.org"]),
    ("java", &["repo.maven.apache.org", "repo1.maven.org"]),
];

/// The ports an ecosystem's hosts are reached on.
const ECOSYSTEM_PORTS: [u16; 2] = [80, 443];

/// What `build_allow` is when unset: Python's and Debian's registries, as the
/// default base image needs, and those of the base image's own ecosystem.
const DEFAULT_ECOSYSTEMS: [&str; 2] = ["python", "debian"];

/// One host (or `*.domain`) a step may reach, on one port or any.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AllowEntry {
    pub host: String,
    pub port: Option<u16>,
    /// Written by the user as this host: it may resolve to a private address.
    pub exact: bool,
}

/// `build_allow` as written: each entry checked, for the file's error.
pub(crate) fn check(entry: &str) -> Result<String, String> {
    entries(entry).map(|_| entry.to_owned())
}

/// The hosts `build_allow` (or, unset, the default for `base_image`) lets a build
/// reach. Entries were checked when they were read.
pub(crate) fn allowed(build_allow: Option<&[String]>, base_image: &str) -> Vec<AllowEntry> {
    let written: Vec<String> = match build_allow {
        Some(list) => list.to_vec(),
        None => default_entries(base_image),
    };
    let mut allowed: Vec<AllowEntry> = Vec::new();
    for entry in written
        .iter()
        .flat_map(|entry| entries(entry).unwrap_or_default())
    {
        if !allowed.contains(&entry) {
            allowed.push(entry);
        }
    }
    allowed
}

/// The hosts of `allowed` as a reader wants them: `pypi.org`, `host:8080`.
pub(crate) fn describe(allowed: &[AllowEntry]) -> Vec<String> {
    let mut hosts: Vec<String> = Vec::new();
    for entry in allowed {
        let text = match entry.port {
            Some(port) if !entry.exact && ECOSYSTEM_PORTS.contains(&port) => entry.host.clone(),
            Some(port) if entry.host.contains(':') => format!("[{}]:{port}", entry.host),
            Some(port) => format!("{}:{port}", entry.host),
            None => entry.host.clone(),
        };
        if !hosts.contains(&text) {
            hosts.push(text);
        }
    }
    hosts
}

/// The ecosystems a build on `base_image` needs beside the default ones.
fn default_entries(base_image: &str) -> Vec<String> {
    let name = base_image
        .rsplit('/')
        .next()
        .unwrap_or(base_image)
        .to_ascii_lowercase();
    let (repository, tag) = name.split_once(':').unwrap_or((&name, ""));
    let mut wanted: Vec<&str> = DEFAULT_ECOSYSTEMS.to_vec();
    let own = match repository {
        "node" => Some("node"),
        "golang" | "go" => Some("go"),
        "rust" => Some("rust"),
        "ruby" => Some("ruby"),
        "openjdk" | "eclipse-temurin" | "maven" | "gradle" | "amazoncorretto" => Some("java"),
        "ubuntu" => Some("ubuntu"),
        "alpine" => Some("alpine"),
        _ if tag.contains("alpine") => Some("alpine"),
        _ => None,
    };
    wanted.extend(own);
    wanted.into_iter().map(str::to_owned).collect()
}

/// What one entry allows.
fn entries(entry: &str) -> Result<Vec<AllowEntry>, String> {
    let entry = entry.trim();
    if let Some((_, hosts)) = ECOSYSTEMS.iter().find(|(name, _)| *name == entry) {
        return Ok(hosts
            .iter()
            .flat_map(|host| {
                ECOSYSTEM_PORTS.map(|port| AllowEntry {
                    host: (*host).to_owned(),
                    port: Some(port),
                    exact: false,
                })
            })
            .collect());
    }
    if let Some(domain) = entry.strip_prefix("*.") {
        check_name(domain, entry)?;
        return Ok(vec![AllowEntry {
            host: format!("*.{}", domain.to_ascii_lowercase()),
            port: None,
            exact: false,
        }]);
    }
    let (host, port) = split_port(entry)?;
    if host.parse::<std::net::IpAddr>().is_err() {
        check_name(host, entry)?;
    }
    Ok(vec![AllowEntry {
        host: host.to_ascii_lowercase(),
        port,
        exact: true,
    }])
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_port(entry: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("`{entry}`: an IPv6 address is written `[::1]:8080`"))?;
        (host, after.strip_prefix(':'))
    } else if entry.matches(':').count() > 1 {
        (entry, None)
    } else {
        match entry.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (entry, None),
        }
    };
    let port = port
        .map(|port| {
            port.parse::<u16>()
                .ok()
                .filter(|port| *port > 0)
                .ok_or_else(|| format!("`{entry}`: `{port}` is not a port (1 to 65535)"))
        })
        .transpose()?;
    Ok((host, port))
}

/// A host name: dotted labels of letters, digits and `-`. A bare word is taken for
/// a misspelt ecosystem: a host is written with its domain.
fn check_name(name: &str, entry: &str) -> Result<(), String> {
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if name.is_empty() || !name.split('.').all(label_ok) {
        return Err(format!(
            "`{entry}` is neither an ecosystem nor a host (`example.com`, `host:8080`, `*.example.com`)"
        ));
    }
    if !name.contains('.') {
        let names = ECOSYSTEMS.iter().map(|(name, _)| *name);
        let suggestion = closest(name, names)
            .map_or_else(String::new, |close| format!("did you mean `{close}`? "));
        let known: Vec<&str> = ECOSYSTEMS.iter().map(|(name, _)| *name).collect();
        return Err(format!(
            "`{entry}` is not an ecosystem; {suggestion}ecosystems: {}; a host is written with its domain (`example.com`) or a port (`host:8080`)",
            known.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecosystems_hosts_ports_and_domains_are_read() {
        let python = entries("python").unwrap();
        assert!(python.contains(&AllowEntry {
            host: "pypi.org".into(),
            port: Some(443),
            exact: false
        }));
        assert_eq!(
            entries("172.17.0.1:8080").unwrap(),
            [AllowEntry {
                host: "172.17.0.1".into(),
                port: Some(8080),
                exact: true
            }]
        );
        assert_eq!(entries("[::1]:81").unwrap()[0].port, Some(81));
        assert_eq!(entries("Example.COM").unwrap()[0].host, "example.com");
        assert!(!entries("*.example.com").unwrap()[0].exact);
    }

    #[test]
    fn a_misspelt_ecosystem_and_bad_ports_are_named() {
        let error = entries("pythn").unwrap_err();
        assert!(error.contains("did you mean `python`?"), "{error}");
        assert!(
            entries("host.example:0")
                .unwrap_err()
                .contains("not a port")
        );
        assert!(
            entries("host.example:http")
                .unwrap_err()
                .contains("not a port")
        );
        assert!(entries("a b.example").is_err());
        assert!(entries("").is_err());
    }

    #[test]
    fn the_default_follows_the_base_image() {
        let hosts = |image| describe(&allowed(None, image));
        assert!(hosts("python:3.10-slim").contains(&"pypi.org".to_owned()));
        assert!(hosts("python:3.10-slim").contains(&"deb.debian.org".to_owned()));
        assert!(hosts("node:20").contains(&"registry.npmjs.org".to_owned()));
        assert!(hosts("python:3.12-alpine").contains(&"dl-cdn.alpinelinux.org".to_owned()));
        assert!(!hosts("python:3.10-slim").contains(&"registry.npmjs.org".to_owned()));
        let written = vec!["10.1.2.3:8080".to_owned()];
        assert_eq!(
            describe(&allowed(Some(&written), "node:20")),
            ["10.1.2.3:8080"]
        );
    }
}
