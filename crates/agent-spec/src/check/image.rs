//! `[image]`: what a spec asks of the built image's configuration, judged from the
//! engine's inspect without starting a container.

use std::collections::BTreeMap;

use crate::check::CheckResult;
use crate::check::text::quote;

/// The group of every `[image]` result.
pub const IMAGE_GROUP: &str = "image";

/// What the engine says of an image (from its inspect), as checks see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageFacts {
    /// `Config.User` as set by `USER`; empty when unset.
    pub user: String,
    /// `Config.WorkingDir`; empty when unset.
    pub workdir: String,
    /// "8080/tcp", as the config has them.
    pub exposed_ports: Vec<String>,
    /// "KEY=value", as the config has them.
    pub env: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub volumes: Vec<String>,
    pub size_bytes: u64,
}

/// A spec's `[image]`: each set field is one check.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImageChecks {
    /// `USER` is set and is neither `root` nor `0` (a `uid:gid` form is judged by its
    /// user part).
    pub non_root: bool,
    pub user: Option<String>,
    pub workdir: Option<String>,
    /// Each as "8080/tcp" or "53/udp": a bare number in the spec means tcp.
    pub exposed_ports: Vec<String>,
    /// Each key set to exactly this value.
    pub env: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub max_size_mb: Option<u64>,
}

/// Decimal megabytes, as `docker images` shows sizes.
const MEGABYTE: u64 = 1_000_000;

impl ImageChecks {
    /// One result per set field, one per port, env var and label.
    pub fn judge(&self, facts: &ImageFacts) -> Vec<CheckResult> {
        let mut results = Vec::new();
        let mut push = |name: String, (passed, detail): (bool, String)| {
            results.push(CheckResult::new(IMAGE_GROUP, name, passed, detail));
        };
        if self.non_root {
            push("non_root".to_owned(), non_root(&facts.user));
        }
        if let Some(user) = &self.user {
            push("user".to_owned(), same("USER", user, &facts.user));
        }
        if let Some(workdir) = &self.workdir {
            push(
                "workdir".to_owned(),
                same("WORKDIR", workdir, &facts.workdir),
            );
        }
        for port in &self.exposed_ports {
            push(
                format!("exposed_ports {port}"),
                exposed(port, &facts.exposed_ports),
            );
        }
        let env = facts
            .env
            .iter()
            .filter_map(|pair| pair.split_once('='))
            .collect::<BTreeMap<_, _>>();
        for (key, value) in &self.env {
            let actual = env.get(key.as_str()).copied();
            push(format!("env {key}"), keyed("env var", key, value, actual));
        }
        for (key, value) in &self.labels {
            let actual = facts.labels.get(key).map(String::as_str);
            push(format!("labels {key}"), keyed("label", key, value, actual));
        }
        if let Some(entrypoint) = &self.entrypoint {
            push(
                "entrypoint".to_owned(),
                list("ENTRYPOINT", entrypoint, &facts.entrypoint),
            );
        }
        if let Some(cmd) = &self.cmd {
            push("cmd".to_owned(), list("CMD", cmd, &facts.cmd));
        }
        if let Some(limit) = self.max_size_mb {
            push("max_size_mb".to_owned(), size(limit, facts.size_bytes));
        }
        results
    }
}

/// The user part of `USER` (`app`, `1000`, `app:staff`) is neither root's name nor 0.
fn non_root(user: &str) -> (bool, String) {
    let name = user.split(':').next().unwrap_or_default();
    if name.is_empty() {
        return (false, "USER is not set, so the image runs as root; add `USER <name>` after creating that user".to_owned());
    }
    if name == "root" || name.trim_start_matches('0').is_empty() {
        return (
            false,
            format!(
                "USER is {}, which is root; set a non-root user",
                quote(user)
            ),
        );
    }
    (true, format!("USER is {}", quote(user)))
}

fn same(what: &str, expected: &str, actual: &str) -> (bool, String) {
    if expected == actual {
        return (true, format!("{what} is {}", quote(actual)));
    }
    let found = if actual.is_empty() {
        "the image does not set it".to_owned()
    } else {
        format!("the image has {}", quote(actual))
    };
    (
        false,
        format!("expected {what} {}, {found}", quote(expected)),
    )
}

fn exposed(port: &str, exposed: &[String]) -> (bool, String) {
    if exposed.iter().any(|candidate| candidate == port) {
        return (true, format!("{port} is exposed"));
    }
    let actual = if exposed.is_empty() {
        "none".to_owned()
    } else {
        exposed.join(", ")
    };
    (
        false,
        format!("expected `EXPOSE {port}`; the image exposes {actual}"),
    )
}

fn keyed(what: &str, key: &str, expected: &str, actual: Option<&str>) -> (bool, String) {
    match actual {
        Some(actual) if actual == expected => (true, format!("{what} {key} is {}", quote(actual))),
        Some(actual) => (
            false,
            format!(
                "expected {what} {key} = {}, the image has {}",
                quote(expected),
                quote(actual)
            ),
        ),
        None => (
            false,
            format!(
                "expected {what} {key} = {}, the image does not set it",
                quote(expected)
            ),
        ),
    }
}

fn list(what: &str, expected: &[String], actual: &[String]) -> (bool, String) {
    let shown = |items: &[String]| serde_json::to_string(items).unwrap_or_default();
    if expected == actual {
        return (true, format!("{what} is {}", shown(actual)));
    }
    (
        false,
        format!(
            "expected {what} {}, the image has {}",
            shown(expected),
            shown(actual)
        ),
    )
}

fn size(limit_mb: u64, actual_bytes: u64) -> (bool, String) {
    let actual_mb = actual_bytes.div_ceil(MEGABYTE);
    if actual_bytes <= limit_mb.saturating_mul(MEGABYTE) {
        return (true, format!("{actual_mb} MB, within {limit_mb} MB"));
    }
    (
        false,
        format!(
            "the image is {actual_mb} MB ({actual_bytes} bytes), over the limit of {limit_mb} MB; use a smaller base or fewer layers"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> ImageFacts {
        ImageFacts {
            user: "app".to_owned(),
            workdir: "/app".to_owned(),
            exposed_ports: vec!["8080/tcp".to_owned()],
            env: vec![
                "PATH=/usr/bin".to_owned(),
                "PYTHONUNBUFFERED=1".to_owned(),
                "EQ=a=b".to_owned(),
            ],
            labels: BTreeMap::from([(
                "org.opencontainers.image.licenses".to_owned(),
                "MIT".to_owned(),
            )]),
            entrypoint: vec!["python3".to_owned()],
            cmd: vec!["main.py".to_owned()],
            volumes: Vec::new(),
            size_bytes: 150_000_000,
        }
    }

    fn checks() -> ImageChecks {
        ImageChecks {
            non_root: true,
            user: Some("app".to_owned()),
            workdir: Some("/app".to_owned()),
            exposed_ports: vec!["8080/tcp".to_owned()],
            env: BTreeMap::from([
                ("PYTHONUNBUFFERED".to_owned(), "1".to_owned()),
                ("EQ".to_owned(), "a=b".to_owned()),
            ]),
            labels: BTreeMap::from([(
                "org.opencontainers.image.licenses".to_owned(),
                "MIT".to_owned(),
            )]),
            entrypoint: Some(vec!["python3".to_owned()]),
            cmd: Some(vec!["main.py".to_owned()]),
            max_size_mb: Some(150),
        }
    }

    fn failed(results: &[CheckResult]) -> Vec<(&str, &str)> {
        results
            .iter()
            .filter(|result| !result.passed)
            .map(|result| (result.name.as_str(), result.detail.as_str()))
            .collect()
    }

    #[test]
    fn a_matching_image_passes_every_check_in_the_image_group() {
        let results = checks().judge(&facts());
        assert_eq!(results.len(), 10);
        assert!(
            results
                .iter()
                .all(|result| result.passed && result.group == "image"),
            "{results:?}"
        );
    }

    #[test]
    fn each_mismatch_says_expected_against_actual() {
        let facts = ImageFacts {
            user: "root".to_owned(),
            workdir: String::new(),
            exposed_ports: vec!["8080/udp".to_owned()],
            env: vec!["PYTHONUNBUFFERED=0".to_owned()],
            labels: BTreeMap::new(),
            entrypoint: Vec::new(),
            cmd: vec!["app.py".to_owned()],
            volumes: Vec::new(),
            size_bytes: 150_000_001,
        };
        let results = checks().judge(&facts);
        assert_eq!(
            failed(&results),
            [
                (
                    "non_root",
                    "USER is \"root\", which is root; set a non-root user"
                ),
                ("user", "expected USER \"app\", the image has \"root\""),
                (
                    "workdir",
                    "expected WORKDIR \"/app\", the image does not set it"
                ),
                (
                    "exposed_ports 8080/tcp",
                    "expected `EXPOSE 8080/tcp`; the image exposes 8080/udp"
                ),
                (
                    "env EQ",
                    "expected env var EQ = \"a=b\", the image does not set it"
                ),
                (
                    "env PYTHONUNBUFFERED",
                    "expected env var PYTHONUNBUFFERED = \"1\", the image has \"0\""
                ),
                (
                    "labels org.opencontainers.image.licenses",
                    "expected label org.opencontainers.image.licenses = \"MIT\", the image does not set it"
                ),
                (
                    "entrypoint",
                    "expected ENTRYPOINT [\"python3\"], the image has []"
                ),
                (
                    "cmd",
                    "expected CMD [\"main.py\"], the image has [\"app.py\"]"
                ),
                (
                    "max_size_mb",
                    "the image is 151 MB (150000001 bytes), over the limit of 150 MB; use a smaller base or fewer layers"
                ),
            ]
        );
    }

    #[test]
    fn non_root_judges_the_user_part() {
        let judge = |user: &str| {
            let facts = ImageFacts {
                user: user.to_owned(),
                ..ImageFacts::default()
            };
            let checks = ImageChecks {
                non_root: true,
                ..ImageChecks::default()
            };
            checks.judge(&facts)[0].passed
        };
        assert!(judge("app"));
        assert!(judge("1000:1000"));
        assert!(judge("10"));
        assert!(!judge(""));
        assert!(!judge("root"));
        assert!(!judge("0"));
        assert!(!judge("0:0"));
        assert!(!judge("root:app"));
        assert!(!judge("000"));
    }
}
