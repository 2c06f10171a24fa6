//! The seal of a BuildKit image: the same build again with the labels added. BuildKit
//! takes every step from its cache, makes no layer, and writes the labels and its
//! inline cache into the new image's config, so a pushed copy still serves another
//! engine's build as a cache source (a config-only relabel would drop that cache,
//! which the engine's image API does not show). What each recent BuildKit build was
//! made of is kept here for that; the rebuilt image is kept only when its layers are
//! the verified image's.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::engine::Sandbox;
use crate::errors::SandboxError;
use crate::outcome::{BuildStatus, Builder};
use crate::request::BuildRequest;

/// A rebuild takes every step from the cache; this bounds one that does not.
const REBUILD_TIMEOUT: Duration = Duration::from_secs(120);

impl Sandbox {
    /// `image` rebuilt by BuildKit with `labels` added, when this engine built it with
    /// BuildKit; `None` when it did not (another way labels it), or when the rebuild
    /// did not come out with the same layers (the image is then labelled another way,
    /// without its inline cache).
    pub(crate) async fn seal_by_rebuild(
        &self,
        image: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<Option<String>, SandboxError> {
        let Some(recipe) = self.recipes().find(image) else {
            return Ok(None);
        };
        let mut all_labels = recipe.labels.clone();
        all_labels.extend(
            labels
                .iter()
                .map(|(key, value)| (key.clone(), value.clone())),
        );
        let request = BuildRequest {
            context: &recipe.context,
            labels: &all_labels,
            timeout: REBUILD_TIMEOUT,
            network: &recipe.network,
            egress: None,
            cache_repository: None,
            cache_from: &recipe.cache_from,
            no_cache: false,
        };
        let built = crate::build::build(
            &self.docker,
            Builder::BuildKit,
            request,
            &BTreeMap::new(),
            &mut |_| {},
        )
        .await?;
        let BuildStatus::Built { image_id } = built.status else {
            tracing::warn!(
                image,
                "the BuildKit rebuild for the seal failed; labelling another way"
            );
            return Ok(None);
        };
        if self.layers(&image_id).await? == self.layers(image).await? {
            return Ok(Some(image_id));
        }
        tracing::warn!(
            image,
            "the BuildKit rebuild for the seal ran steps anew; labelling another way"
        );
        if let Err(error) = self.remove_untagged_images(&[image_id]).await {
            tracing::warn!(%error, "cannot remove the rebuilt image");
        }
        Ok(None)
    }

    async fn layers(&self, image: &str) -> Result<Vec<String>, SandboxError> {
        Ok(self
            .inspect(image)
            .await?
            .root_fs
            .and_then(|root| root.layers)
            .unwrap_or_default())
    }
}
