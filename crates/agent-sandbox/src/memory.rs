//! What a [`crate::Sandbox`] remembers between calls: the way of labelling that last
//! worked on its engine (see `seal`) and what its recent BuildKit builds were made of
//! (see `rebuild`). Kept apart from both so that the engine holds them without
//! depending on the modules that use them.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use crate::context::BuildContext;
use crate::outcome::{BuildOutcome, BuildStatus, Builder, SealMethod};
use crate::request::BuildRequest;

/// How many recent builds are kept: more than the specs in flight on one engine...
const KEPT_RECIPES: usize = 64;
/// ...and at most this much of their contexts (a bundle may weigh 4 MiB), the oldest
/// going first.
const KEPT_CONTEXT_BYTES: usize = 64 * 1024 * 1024;

/// The way that last worked on one engine; before any seal, the way its product is
/// known to accept.
#[derive(Debug)]
pub(crate) struct SealMemory(Mutex<Option<SealMethod>>);

impl SealMemory {
    pub(crate) fn starting_with(method: SealMethod) -> SealMemory {
        SealMemory(Mutex::new(Some(method)))
    }

    pub(crate) fn order(&self) -> Vec<SealMethod> {
        let remembered = *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut order: Vec<SealMethod> = remembered.into_iter().collect();
        order.extend(
            SealMethod::ALL
                .iter()
                .filter(|way| Some(**way) != remembered),
        );
        order
    }

    pub(crate) fn remember(&self, method: SealMethod) {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(method);
    }
}

/// What one BuildKit build was asked, by the image it made.
#[derive(Debug, Clone)]
pub(crate) struct Recipe {
    image_id: String,
    pub(crate) context: BuildContext,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) network: String,
    pub(crate) cache_from: Vec<String>,
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

    pub(crate) fn find(&self, image_id: &str) -> Option<Recipe> {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
            egress: None,
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
            egress: Default::default(),
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
