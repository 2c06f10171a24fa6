//! Labels put on an image without a build step: the image's config is read from the
//! engine, the labels added, and the new config loaded back (`POST /images/load`) in a
//! tar that holds only the config and its manifest. The engine already has every
//! layer the config names, so it loads none, diffs nothing and commits nothing: the
//! new image shares the layers of the first, and costs what a tag costs.

use std::collections::BTreeMap;

use bollard::models::{ImageHistoryResponseItem, ImageInspect};
use bollard::query_parameters::ImportImageOptionsBuilder;
use futures_util::StreamExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::deadline::{ENGINE_CALL_TIMEOUT, bounded};
use crate::engine::Sandbox;
use crate::errors::SandboxError;

impl Sandbox {
    /// A new image with the config of `image` (an id or reference) and `labels` added
    /// to its labels; returns the new image's id. No layer is built or copied.
    pub async fn relabel(
        &self,
        image: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<String, SandboxError> {
        let failed = |reason: String| SandboxError::Relabel {
            image: image.to_owned(),
            reason,
        };
        let inspected = self.inspect(image).await?;
        let history = bounded(self.docker.image_history(image))
            .await
            .map_err(|error| failed(format!("cannot read its history: {error}")))?;
        let steps = self.history_steps(&history).await;
        let config = image_config(&inspected, &history, &steps, labels).map_err(failed)?;
        let config = serde_json::to_vec(&config).map_err(|error| failed(error.to_string()))?;
        let archive = config_only_archive(&config, layer_count(&inspected))
            .map_err(|error| failed(error.to_string()))?;
        self.load_config(archive).await.map_err(failed)?;
        let id = format!("sha256:{:x}", Sha256::digest(&config));
        // The engine names an image by the digest of its config: loaded, it is there.
        match bounded(self.docker.inspect_image(&id)).await {
            Ok(_) => Ok(id),
            Err(error) => Err(failed(format!("the engine did not keep it: {error}"))),
        }
    }

    /// What the engine knows of each history entry's step image (newest first, as the
    /// engine lists them), when it is on the engine. The history API gives whole
    /// seconds and a size, but a builder's `cachefrom` takes an image's steps only when
    /// the history of the build's parent matches its own exactly, times included, and
    /// its layers line up with the entries that made one (a `WORKDIR` that made an
    /// empty folder is a layer of size 0).
    async fn history_steps(&self, history: &[ImageHistoryResponseItem]) -> Vec<Option<Step>> {
        let mut steps = Vec::with_capacity(history.len());
        for entry in history {
            let step = match entry.id.as_str() {
                "" | "<missing>" => None,
                id => bounded(self.docker.inspect_image(id))
                    .await
                    .ok()
                    .and_then(|step| {
                        let layers = layer_count(&step);
                        Some(Step {
                            created: step
                                .created?
                                .format(&time::format_description::well_known::Rfc3339)
                                .ok()?,
                            layers,
                        })
                    }),
            };
            steps.push(step);
        }
        steps
    }

    async fn load_config(&self, archive: Vec<u8>) -> Result<(), String> {
        let options = ImportImageOptionsBuilder::default().quiet(true).build();
        let body = bollard::body_full(archive.into());
        let loaded = tokio::time::timeout(ENGINE_CALL_TIMEOUT, async {
            let mut stream = self.docker.import_image(options, body, None);
            while let Some(item) = stream.next().await {
                item.map_err(|error| error.to_string())?;
            }
            Ok(())
        })
        .await;
        loaded.unwrap_or_else(|_elapsed| {
            Err(format!(
                "the load did not answer within {} s",
                ENGINE_CALL_TIMEOUT.as_secs()
            ))
        })
    }
}

/// A history entry's step image as the engine holds it.
struct Step {
    /// Its `Created`, to the nanosecond: the entry's own time.
    created: String,
    /// The layers of the image up to and including this step.
    layers: usize,
}

fn layer_count(inspected: &ImageInspect) -> usize {
    inspected
        .root_fs
        .as_ref()
        .and_then(|root_fs| root_fs.layers.as_ref())
        .map_or(0, Vec::len)
}

/// The image config (the JSON the image id is the digest of) of `inspected` with
/// `labels` added. The history comes from the engine's, oldest first, at the `created`
/// times given (else the engine's whole seconds); an entry that added no bytes is
/// marked as adding no layer, which the engine accepts because it only refuses a
/// history with more layers than the image has.
fn image_config(
    inspected: &ImageInspect,
    history: &[ImageHistoryResponseItem],
    steps: &[Option<Step>],
    labels: &BTreeMap<String, String>,
) -> Result<Value, String> {
    let mut config = serde_json::to_value(inspected.config.clone().unwrap_or_default())
        .map_err(|error| error.to_string())?;
    let all_labels = config
        .as_object_mut()
        .ok_or("its config is not an object")?
        .entry("Labels")
        .or_insert_with(|| json!({}));
    if all_labels.is_null() {
        *all_labels = json!({});
    }
    for (key, value) in labels {
        all_labels[key] = json!(value);
    }
    let diff_ids = inspected
        .root_fs
        .as_ref()
        .and_then(|root_fs| root_fs.layers.clone())
        .ok_or("the engine gave no layers for it")?;
    // Oldest first: an entry made a layer when its step image has more layers than
    // the one before it; without a step image, when it added bytes.
    let mut layers_before = 0;
    let history: Vec<Value> = history
        .iter()
        .enumerate()
        .rev()
        .map(|(index, entry)| {
            let step = steps.get(index).and_then(Option::as_ref);
            let empty = match step {
                Some(step) => step.layers == layers_before,
                None => entry.size == 0,
            };
            layers_before = step.map_or(layers_before + usize::from(!empty), |step| step.layers);
            json!({
                "created": step.map_or_else(|| rfc3339(entry.created), |step| step.created.clone()),
                "created_by": entry.created_by,
                "comment": entry.comment,
                "empty_layer": empty,
            })
        })
        .collect();
    let mut image = json!({
        "architecture": inspected.architecture.clone().unwrap_or_else(|| "amd64".into()),
        "os": inspected.os.clone().unwrap_or_else(|| "linux".into()),
        "created": rfc3339(time::OffsetDateTime::now_utc().unix_timestamp()),
        "config": config,
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "history": history,
    });
    if let Some(variant) = &inspected.variant {
        image["variant"] = json!(variant);
    }
    Ok(image)
}

fn rfc3339(unix_seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix_seconds)
        .ok()
        .and_then(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

/// A `docker save`-shaped tar with the config and a manifest naming `layers` layer
/// files it does not hold: the engine looks each layer up by its chain id first and
/// reads a file only for a layer it lacks.
fn config_only_archive(config: &[u8], layers: usize) -> std::io::Result<Vec<u8>> {
    let config_name = format!("{:x}.json", Sha256::digest(config));
    let layer_names: Vec<String> = (0..layers).map(|i| format!("{i}/layer.tar")).collect();
    let manifest = serde_json::to_vec(&json!([{
        "Config": config_name,
        "RepoTags": null,
        "Layers": layer_names,
    }]))?;
    let mut archive = tar::Builder::new(Vec::new());
    for (name, data) in [(config_name.as_str(), config), ("manifest.json", &manifest)] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        archive.append_data(&mut header, name, data)?;
    }
    archive.into_inner()
}

#[cfg(test)]
mod tests {
    use super::config_only_archive;

    #[test]
    fn the_archive_names_every_layer_and_holds_only_config_and_manifest() {
        let archive = config_only_archive(b"{}", 3).unwrap();
        let mut names = Vec::new();
        let mut manifest = String::new();
        let mut reader = tar::Archive::new(archive.as_slice());
        for entry in reader.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            if name == "manifest.json" {
                std::io::Read::read_to_string(&mut entry, &mut manifest).unwrap();
            }
            names.push(name);
        }
        assert_eq!(names.len(), 2, "{names:?}");
        let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
        assert_eq!(manifest[0]["Layers"].as_array().unwrap().len(), 3);
        assert!(names.contains(&manifest[0]["Config"].as_str().unwrap().to_string()));
    }
}
