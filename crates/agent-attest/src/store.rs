//! Attestations where cosign keeps them: the tag `sha256-<hex>.att` in the image's
//! repository, an OCI image manifest whose layers are DSSE envelopes
//! (`application/vnd.dsse.envelope.v1+json`, annotated with their `predicateType`).
//! Adding keeps every layer already there (another signer's included); reading keeps
//! every size bounded and checks each envelope's bytes against its digest.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::dsse::{Signed, sha256_digest};
use crate::errors::AttestError;
use crate::reference::ImageReference;
use crate::registry::{Call, Registry};

pub const ENVELOPE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Every manifest kind an image reference may resolve to.
const MANIFEST_KINDS: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";
const PREDICATE_ANNOTATION: &str = "predicateType";
/// cosign marks each layer of its signature and attestation images with this (empty for
/// attestations, whose signature is inside the envelope).
const COSIGN_SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The distribution registry's own bound on a manifest.
const MANIFEST_LIMIT: usize = 4 * 1024 * 1024;
/// The most one envelope may weigh, and how many are read.
const ENVELOPE_LIMIT: usize = 4 * 1024 * 1024;
const LAYER_LIMIT: usize = 256;

/// An envelope stored as a layer: its predicate type (the annotation) and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub predicate_type: Option<String>,
    pub digest: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    config: Descriptor,
    layers: Vec<Descriptor>,
    /// Whatever else a writer put there is kept as it was.
    #[serde(flatten)]
    rest: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
    #[serde(flatten)]
    rest: BTreeMap<String, serde_json::Value>,
}

/// cosign's tag for the attestations of `digest` (`sha256:<hex>`).
pub fn attestation_tag(digest: &str) -> String {
    format!("{}.att", digest.replacen(':', "-", 1))
}

/// The digest (`sha256:…`) of the manifest `reference` names: the hash of the bytes
/// the registry answered, which a digest reference must match.
pub async fn resolve(
    registry: &Registry,
    reference: &ImageReference,
) -> Result<String, AttestError> {
    let what = format!("the manifest of `{}`", reference.repository());
    let wanted = reference.manifest_reference();
    let Some(bytes) =
        manifest_bytes(registry, &reference.path, wanted, MANIFEST_KINDS, &what).await?
    else {
        return Err(AttestError::NotFound {
            reference: format!("{}:{wanted}", reference.repository()),
        });
    };
    let digest = sha256_digest(&bytes);
    if reference
        .digest
        .as_ref()
        .is_some_and(|asked| *asked != digest)
    {
        return Err(registry.malformed(&what, "its bytes are not the digest asked for"));
    }
    Ok(digest)
}

async fn manifest_bytes(
    registry: &Registry,
    path: &str,
    reference: &str,
    accept: &str,
    what: &str,
) -> Result<Option<Vec<u8>>, AttestError> {
    let url = format!("{path}/manifests/{reference}");
    let call = Call {
        method: Method::GET,
        path: &url,
        accept: Some(accept),
        content_type: None,
        body: None,
        what,
    };
    let response = registry.send(&call).await?;
    match response.status() {
        StatusCode::NOT_FOUND => Ok(None),
        status if status.is_success() => Ok(Some(
            registry
                .read_bounded(response, MANIFEST_LIMIT, what)
                .await?,
        )),
        _ => Err(registry.unexpected(what, response).await),
    }
}

/// The `.att` manifest of `digest` in `path`, `None` when there is no such tag.
async fn attestation_manifest(
    registry: &Registry,
    path: &str,
    digest: &str,
) -> Result<Option<Manifest>, AttestError> {
    let tag = attestation_tag(digest);
    let what = format!("the manifest of `{path}:{tag}`");
    let Some(bytes) = manifest_bytes(registry, path, &tag, OCI_MANIFEST, &what).await? else {
        return Ok(None);
    };
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|error| registry.malformed(&what, error))?;
    if manifest.layers.len() > LAYER_LIMIT {
        return Err(registry.malformed(&what, format!("more than {LAYER_LIMIT} layers")));
    }
    Ok(Some(manifest))
}

/// Every envelope stored for `digest` in `path`; `None` when there is no `.att` tag.
pub async fn fetch(
    registry: &Registry,
    path: &str,
    digest: &str,
) -> Result<Option<Vec<Stored>>, AttestError> {
    let Some(manifest) = attestation_manifest(registry, path, digest).await? else {
        return Ok(None);
    };
    let mut stored = Vec::new();
    for layer in manifest
        .layers
        .iter()
        .filter(|layer| layer.media_type == ENVELOPE_MEDIA_TYPE)
    {
        let bytes = blob(registry, path, &layer.digest).await?;
        stored.push(Stored {
            predicate_type: layer.annotations.get(PREDICATE_ANNOTATION).cloned(),
            digest: layer.digest.clone(),
            bytes,
        });
    }
    Ok(Some(stored))
}

/// A blob's bytes, bounded; bytes that are not `digest` are refused.
async fn blob(registry: &Registry, path: &str, digest: &str) -> Result<Vec<u8>, AttestError> {
    let what = format!("the envelope `{digest}`");
    if !digest.starts_with("sha256:") || digest.contains('/') {
        return Err(registry.malformed(&what, "its digest is not `sha256:…`"));
    }
    let url = format!("{path}/blobs/{digest}");
    let call = Call {
        method: Method::GET,
        path: &url,
        accept: None,
        content_type: None,
        body: None,
        what: &what,
    };
    let response = registry.send(&call).await?;
    if !response.status().is_success() {
        return Err(registry.unexpected(&what, response).await);
    }
    let bytes = registry
        .read_bounded(response, ENVELOPE_LIMIT, &what)
        .await?;
    if sha256_digest(&bytes) != digest {
        return Err(registry.malformed(&what, "its bytes are not its digest"));
    }
    Ok(bytes)
}

/// Adds `signed` to the `.att` tag of `digest` in `path`: the layers already there
/// stay (an envelope already stored is not added twice); returns the tag.
pub async fn attach(
    registry: &Registry,
    path: &str,
    digest: &str,
    signed: &[Signed],
) -> Result<String, AttestError> {
    let mut layers = match attestation_manifest(registry, path, digest).await? {
        Some(manifest) => manifest.layers,
        None => Vec::new(),
    };
    for envelope in signed {
        upload(registry, path, &envelope.bytes, &envelope.digest).await?;
        if layers.iter().all(|layer| layer.digest != envelope.digest) {
            layers.push(Descriptor {
                media_type: ENVELOPE_MEDIA_TYPE.to_owned(),
                digest: envelope.digest.clone(),
                size: envelope.bytes.len() as u64,
                annotations: BTreeMap::from([
                    (
                        PREDICATE_ANNOTATION.to_owned(),
                        envelope.predicate_type.clone(),
                    ),
                    (COSIGN_SIGNATURE_ANNOTATION.to_owned(), String::new()),
                ]),
                rest: BTreeMap::new(),
            });
        }
    }
    let config = config_for(&layers);
    let config_digest = sha256_digest(&config);
    upload(registry, path, &config, &config_digest).await?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_owned()),
        config: Descriptor {
            media_type: OCI_CONFIG.to_owned(),
            digest: config_digest,
            size: config.len() as u64,
            annotations: BTreeMap::new(),
            rest: BTreeMap::new(),
        },
        layers,
        rest: BTreeMap::new(),
    };
    let tag = attestation_tag(digest);
    put_manifest(registry, path, &tag, &manifest).await?;
    Ok(tag)
}

/// The image config of an attestation image, as cosign writes one: no platform, and
/// the layers' digests as its `diff_ids` (the envelopes are not compressed).
fn config_for(layers: &[Descriptor]) -> Vec<u8> {
    let diff_ids: Vec<&str> = layers.iter().map(|layer| layer.digest.as_str()).collect();
    let config = json!({
        "architecture": "",
        "os": "",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    serde_json::to_vec(&config).unwrap_or_default()
}

/// Uploads `bytes` as the blob `digest` unless the registry has it: one `POST` for an
/// upload, one `PUT` with the whole blob.
async fn upload(
    registry: &Registry,
    path: &str,
    bytes: &[u8],
    digest: &str,
) -> Result<(), AttestError> {
    let what = format!("the upload of `{digest}` to `{path}`");
    let head_url = format!("{path}/blobs/{digest}");
    let head = Call {
        method: Method::HEAD,
        path: &head_url,
        accept: None,
        content_type: None,
        body: None,
        what: &what,
    };
    if registry.send(&head).await?.status().is_success() {
        return Ok(());
    }
    let start_url = format!("{path}/blobs/uploads/");
    let start = Call {
        method: Method::POST,
        path: &start_url,
        accept: None,
        content_type: None,
        body: Some(Vec::new()),
        what: &what,
    };
    let response = registry.send(&start).await?;
    if response.status() != StatusCode::ACCEPTED {
        return Err(registry.unexpected(&what, response).await);
    }
    let location = registry
        .location(response.headers())
        .ok_or_else(|| registry.malformed(&what, "the answer has no `Location`"))?;
    let separator = if location.contains('?') { '&' } else { '?' };
    let put_url = format!("{location}{separator}digest={digest}");
    let put = Call {
        method: Method::PUT,
        path: &put_url,
        accept: None,
        content_type: Some("application/octet-stream"),
        body: Some(bytes.to_vec()),
        what: &what,
    };
    let response = registry.send(&put).await?;
    if response.status() != StatusCode::CREATED {
        return Err(registry.unexpected(&what, response).await);
    }
    Ok(())
}

async fn put_manifest(
    registry: &Registry,
    path: &str,
    tag: &str,
    manifest: &Manifest,
) -> Result<(), AttestError> {
    let what = format!("the manifest `{path}:{tag}`");
    let body = serde_json::to_vec(manifest).unwrap_or_default();
    let url = format!("{path}/manifests/{tag}");
    let call = Call {
        method: Method::PUT,
        path: &url,
        accept: None,
        content_type: Some(OCI_MANIFEST),
        body: Some(body),
        what: &what,
    };
    let response = registry.send(&call).await?;
    if !response.status().is_success() {
        return Err(registry.unexpected(&what, response).await);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_is_cosigns() {
        assert_eq!(attestation_tag("sha256:ab12"), "sha256-ab12.att");
    }

    #[test]
    fn unknown_fields_of_another_writer_survive_a_round_trip() {
        let text = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:c","size":2},
            "layers":[{"mediaType":"application/vnd.dsse.envelope.v1+json","digest":"sha256:l","size":3,
              "annotations":{"predicateType":"x","dev.sigstore.cosign/bundle":"{}"},"urls":["u"]}],
            "annotations":{"org.example":"kept"}}"#;
        let manifest: Manifest = serde_json::from_str(text).unwrap();
        let again = serde_json::to_value(&manifest).unwrap();
        assert_eq!(again["annotations"]["org.example"], "kept");
        assert_eq!(again["layers"][0]["urls"][0], "u");
        assert_eq!(
            again["layers"][0]["annotations"]["dev.sigstore.cosign/bundle"],
            "{}"
        );
    }
}
