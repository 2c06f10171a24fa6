//! Image references as the Docker CLI reads them: `[host[:port]/]path[:tag][@digest]`,
//! Docker Hub when the first component names no host.

use crate::errors::AttestError;

/// Where Docker Hub's registry API answers.
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// A parsed reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference {
    /// `host[:port]` of the registry's API.
    pub registry: String,
    /// The repository's path in that registry.
    pub path: String,
    pub tag: Option<String>,
    /// `sha256:<hex>`.
    pub digest: Option<String>,
}

impl ImageReference {
    pub fn parse(text: &str) -> Result<ImageReference, AttestError> {
        let invalid = |reason: &str| AttestError::Reference {
            reference: text.to_owned(),
            reason: reason.to_owned(),
        };
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => {
                let hex = digest
                    .strip_prefix("sha256:")
                    .filter(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
                    .ok_or_else(|| invalid("its digest is not `sha256:` and 64 hex digits"))?;
                (rest, Some(format!("sha256:{}", hex.to_ascii_lowercase())))
            }
            None => (text, None),
        };
        let (name, tag) = match rest.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name, Some(tag.to_owned())),
            _ => (rest, None),
        };
        let (registry, path) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_owned(), path.to_owned())
            }
            Some(_) => (DOCKER_HUB_API.to_owned(), name.to_owned()),
            None => (DOCKER_HUB_API.to_owned(), format!("library/{name}")),
        };
        let registry = match registry.as_str() {
            "docker.io" | "index.docker.io" => DOCKER_HUB_API.to_owned(),
            _ => registry,
        };
        let path_ok = !path.is_empty()
            && path.split('/').all(|part| {
                !part.is_empty()
                    && part.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                    })
            });
        if !path_ok {
            return Err(invalid(
                "its repository path is not lowercase `a-z0-9._-` parts",
            ));
        }
        let tag_ok = tag.as_deref().is_none_or(|tag| {
            !tag.is_empty()
                && tag.len() <= 128
                && tag
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        });
        if !tag_ok {
            return Err(invalid("its tag is not `A-Za-z0-9._-`, at most 128"));
        }
        Ok(ImageReference {
            registry,
            path,
            tag,
            digest,
        })
    }

    /// What the manifest is asked for by: the digest when given, else the tag.
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// `registry/path`, the subject's name.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.registry, self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_read_as_the_docker_cli_reads_them() {
        let local = ImageReference::parse("127.0.0.1:5000/team/hello:0123abcd").unwrap();
        assert_eq!(local.registry, "127.0.0.1:5000");
        assert_eq!(local.path, "team/hello");
        assert_eq!(local.manifest_reference(), "0123abcd");
        let hub = ImageReference::parse("python").unwrap();
        assert_eq!(
            (hub.registry.as_str(), hub.path.as_str()),
            (DOCKER_HUB_API, "library/python")
        );
        let digest = format!("ghcr.io/acme/x@sha256:{}", "A".repeat(64));
        let pinned = ImageReference::parse(&digest).unwrap();
        assert_eq!(
            pinned.manifest_reference(),
            format!("sha256:{}", "a".repeat(64))
        );
        for bad in ["", "Host/UPPER", "a//b", "x@sha256:12", "x:bad tag"] {
            assert!(ImageReference::parse(bad).is_err(), "{bad}");
        }
    }
}
