//! The seal of a BuildKit image: the same build again with the labels added. BuildKit
//! takes every step from its cache, makes no layer, and writes the labels and its
//! inline cache into the new image's config, so a pushed copy still serves another
//! engine's build as a cache source (a config-only relabel would drop that cache,
//! which the engine's image API does not show). What each recent BuildKit build was
//! made of is kept here for that; the rebuilt image is kept only when its layers are
//! the verified image's.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use crate::context::BuildContext;
use crate::engine::Sandbox;
use crate::errors::SandboxError;
use crate::outcome::{BuildOutcome, BuildStatus, Builder};
use crate::request::BuildRequest;

/// How many recent builds are kept: more than the specs in flight on one engine...
const KEPT_RECIPES: usize = 64;
/// ...and at most this much of their contexts (a bundle may weigh 4 MiB), the oldest
/// going first.
const KEPT_CONTEXT_BYTES: usize = 64 * 1024 * 1024;
/// A rebuild takes every step from the cache; this bounds one that does not.
const REBUILD_TIMEOUT: Duration = Duration::from_secs(120);

/// What one BuildKit build was asked, by the image it made.
#[derive(Debug, Clone)]
struct Recipe {
    image_id: String,
    context: BuildContext,
    labels: BTreeMap<String, String>,
    network: String,
    cache_from: Vec<String>,
}

#[derive(Debug, Default)]
pub(crate) struct Recipes(Mutex<VecDeque<Recipe>>);

impl Recipes {
    /// Keeps what made `outcome`'s image, when BuildKit built one.
    pub(crate) fn keep(
        &self,
        builder: Builder,
        request: &BuildRequest<'_>,
        outcome: &BuildOutcome,
    ) {
        let BuildStatus::Built { image_id } = &outcome.status else {
            return;
        };
        if builder != Builder::BuildKit {
            return;
        }
        let mut recipes = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        recipes.retain(|recipe| &recipe.image_id != image_id);
        recipes.push_back(Recipe {
            image_id: image_id.clone(),
            context: request.context.clone(),
            labels: request.labels.clone(),
            network: request.network.to_owned(),
            cache_from: request.cache_from.to_vec(),
        });
        let mut bytes: usize = recipes
            .iter()
            .map(|recipe| recipe.context.bytes.len())
            .sum();
        while recipes.len() > KEPT_RECIPES || (bytes > KEPT_CONTEXT_BYTES && recipes.len() > 1) {
            if let Some(oldest) = recipes.pop_front() {
                bytes -= oldest.context.bytes.len();
            }
        }
    }

    fn find(&self, image_id: &str) -> Option<Recipe> {
        let recipes = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        recipes
            .iter()
            .find(|recipe| recipe.image_id == image_id)
            .cloned()
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn keep(recipes: &Recipes, builder: Builder, image_id: &str, context_bytes: usize) {
        let context = BuildContext {
            bytes: vec![0; context_bytes],
            digest: String::new(),
        };
        let labels = BTreeMap::new();
        let request = BuildRequest {
            context: &context,
            labels: &labels,
            timeout: Duration::from_secs(1),
            network: "none",
            cache_repository: None,
            cache_from: &[],
            no_cache: false,
        };
        let outcome = BuildOutcome {
            status: BuildStatus::Built {
                image_id: image_id.to_owned(),
            },
            log: String::new(),
            duration: Duration::ZERO,
        };
        recipes.keep(builder, &request, &outcome);
    }

    #[test]
    fn recent_buildkit_builds_are_kept_within_a_count_and_a_size() {
        let recipes = Recipes::default();
        keep(&recipes, Builder::Classic, "classic", 10);
        assert!(
            recipes.find("classic").is_none(),
            "only BuildKit images are rebuilt"
        );
        for index in 0..KEPT_RECIPES + 6 {
            keep(&recipes, Builder::BuildKit, &format!("image-{index}"), 10);
        }
        assert!(recipes.find("image-5").is_none(), "the oldest go first");
        assert!(recipes.find("image-6").is_some());
        assert!(
            recipes
                .find(&format!("image-{}", KEPT_RECIPES + 5))
                .is_some()
        );
        keep(&recipes, Builder::BuildKit, "large", KEPT_CONTEXT_BYTES);
        assert!(
            recipes.find("large").is_some(),
            "the newest stays, however large"
        );
        assert!(
            recipes.find("image-6").is_none(),
            "the others make room for it"
        );
    }
}
