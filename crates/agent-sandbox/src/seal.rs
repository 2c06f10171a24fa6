//! The verified image's labels, put on in the cheapest way the engine accepts: the
//! config-only load (`relabel`: no layer, no step; Docker's engine only), a commit of
//! a created, never-started container (one call; kept only when the image's config
//! comes out as it went in), a build `FROM <image id>` of one `ARG` and one `LABEL`
//! step. The way that worked is remembered per engine (first guess: the one its
//! product accepts), so a later seal on it goes there first. Labels always travel as
//! JSON (container config, build args), never as Dockerfile text, so quotes, `$` and
//! newlines stay as they are.
//! An image BuildKit built here is sealed first by its rebuild (`rebuild`), which
//! keeps BuildKit's inline cache in the image.
//! Whatever a way leaves on the engine when it fails (a container, an image, a build
//! step's image) is removed before the next way is tried.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bollard::models::{ContainerConfig, ContainerCreateBody, ImageInspect};
use bollard::query_parameters::CommitContainerOptionsBuilder;

use crate::deadline::bounded;
use crate::engine::Sandbox;
use crate::errors::SandboxError;
use crate::outcome::{BuildStatus, SealMethod, Sealed};
use crate::request::BuildRequest;

/// How long the label build may take: two committed steps, about 2 s each on a slow
/// storage driver.
const LABEL_BUILD_TIMEOUT: Duration = Duration::from_secs(300);

impl Sandbox {
    /// `image` (an id) with `labels` added, as a new image, by the first way this
    /// engine accepts; the ways it refused are logged, the last refusal is the error.
    pub async fn seal(
        &self,
        image: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<Sealed, SandboxError> {
        let started = Instant::now();
        match self.seal_by_rebuild(image, labels).await {
            Ok(Some(image_id)) => {
                return Ok(Sealed {
                    image_id,
                    method: SealMethod::Rebuild,
                    duration: started.elapsed(),
                });
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "the BuildKit rebuild for the seal failed"),
        }
        let mut refusal = None;
        for method in self.seal_memory().order() {
            match self.seal_by(method, image, labels).await {
                Ok(image_id) => {
                    self.seal_memory().remember(method);
                    return Ok(Sealed {
                        image_id,
                        method,
                        duration: started.elapsed(),
                    });
                }
                Err(error) => {
                    tracing::debug!(method = method.name(), %error, "the engine refused this way of labelling");
                    refusal = Some(error);
                }
            }
        }
        Err(SandboxError::Seal {
            image: image.to_owned(),
            source: Box::new(refusal.expect("at least one way was tried")),
        })
    }

    /// `image` with `labels` added by `method` alone; the new image's id. On failure
    /// nothing it made is left on the engine.
    pub async fn seal_by(
        &self,
        method: SealMethod,
        image: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<String, SandboxError> {
        let before = self.inspect(image).await?;
        // A created container of the image, carrying every label the new image gets,
        // held while the way works: the commit's source, and what keeps Podman (which
        // prunes an untagged parent with its child, whatever `noprune` says) from
        // taking `image` along when a refused way's image or a build step is removed.
        let holder = self.create_holder(image, &before, labels).await?;
        let sealed = match method {
            SealMethod::ConfigLoad => self.relabel(image, labels).await,
            SealMethod::Commit => self.seal_by_commit(image, &before, &holder).await,
            SealMethod::Build => self.seal_by_build(image, labels).await,
            SealMethod::Rebuild => self
                .seal_by_rebuild(image, labels)
                .await
                .and_then(|rebuilt| {
                    rebuilt.ok_or_else(|| SandboxError::Relabel {
                        image: image.to_owned(),
                        reason: "BuildKit did not build it on this engine, or built it anew"
                            .to_owned(),
                    })
                }),
        };
        crate::cleanup::force_remove_container(&self.docker, &holder).await;
        sealed
    }

    async fn create_holder(
        &self,
        image: &str,
        inspected: &ImageInspect,
        labels: &BTreeMap<String, String>,
    ) -> Result<String, SandboxError> {
        let mut all_labels = inspected
            .config
            .as_ref()
            .and_then(|config| config.labels.clone())
            .unwrap_or_default();
        all_labels.extend(
            labels
                .iter()
                .map(|(key, value)| (key.clone(), value.clone())),
        );
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            labels: Some(all_labels),
            ..ContainerCreateBody::default()
        };
        Ok(bounded(self.docker.create_container(None, body))
            .await
            .map_err(|source| SandboxError::CreateContainer {
                image: image.to_owned(),
                source,
            })?
            .id)
    }

    async fn seal_by_commit(
        &self,
        image: &str,
        before: &ImageInspect,
        container: &str,
    ) -> Result<String, SandboxError> {
        let options = CommitContainerOptionsBuilder::default()
            .container(container)
            .pause(false)
            .build();
        let committed = bounded(
            self.docker
                .commit_container(options, ContainerConfig::default()),
        )
        .await
        .map_err(|source| SandboxError::Commit {
            container: container.to_owned(),
            source,
        })?
        .id;
        let difference = match self.inspect(&committed).await {
            Ok(after) => match crate::dialect::same_run_config(before, &after) {
                Ok(()) => return Ok(committed),
                Err(difference) => SandboxError::SealChangedConfig {
                    image: image.to_owned(),
                    difference,
                },
            },
            Err(error) => error,
        };
        self.discard_image(&committed).await;
        Err(difference)
    }

    async fn seal_by_build(
        &self,
        image: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<String, SandboxError> {
        let (dockerfile, build_args) = label_dockerfile(image, labels);
        let files = BTreeMap::from([("Dockerfile".to_owned(), dockerfile.into_bytes())]);
        let context = crate::context::build_context(&files)?;
        // Built afresh: a cached label step would carry another seal's labels.
        let request = BuildRequest {
            context: &context,
            labels: &BTreeMap::new(),
            timeout: LABEL_BUILD_TIMEOUT,
            network: "none",
            egress: None,
            cache_repository: None,
            cache_from: &[],
            no_cache: true,
        };
        // The classic builder, which every engine has: BuildKit would not take the
        // image by its id.
        let built = crate::build::build(
            &self.docker,
            crate::outcome::Builder::Classic,
            request,
            &build_args,
            &mut |_| {},
        )
        .await?;
        // The `ARG` step leaves an image; only the last is wanted (on Docker the
        // other stays its parent, and goes with it).
        let mut steps = built.intermediate_images();
        let built_id = match &built.status {
            BuildStatus::Built { image_id } => Some(image_id.clone()),
            _ => None,
        };
        if let Some(built_id) = &built_id {
            steps.retain(|step| !crate::cleanup::same_image(built_id, step));
        }
        if let Err(error) = self.remove_untagged_images(&steps).await {
            tracing::warn!(%error, "cannot remove the label build's steps");
        }
        match (built_id, built.status) {
            (Some(image_id), _) => Ok(image_id),
            (None, BuildStatus::Failed { error, .. }) => Err(SandboxError::LabelBuild {
                image: image.to_owned(),
                error,
            }),
            (None, _) => Err(SandboxError::LabelBuild {
                image: image.to_owned(),
                error: format!(
                    "it did not finish within {} s",
                    LABEL_BUILD_TIMEOUT.as_secs()
                ),
            }),
        }
    }

    async fn discard_image(&self, image: &str) {
        if let Err(error) = self.remove_untagged_images(&[image.to_owned()]).await {
            tracing::warn!(image, %error, "cannot remove an image the seal made");
        }
    }
}

/// `FROM image`, one `ARG` naming a key and a value per label, one `LABEL` made of
/// them; and the build args that hold the labels. Keys and values reach the builder
/// as JSON build args, never as Dockerfile text, so nothing in them is parsed (the
/// builder substitutes an argument's value once, verbatim), and the build has two
/// steps however many labels there are (the build's `labels` parameter would add one
/// step per label). Public so that tests can leave on an engine what another seal's
/// label build leaves there.
pub fn label_dockerfile(
    image: &str,
    labels: &BTreeMap<String, String>,
) -> (String, BTreeMap<String, String>) {
    let mut names = Vec::new();
    let mut pairs = Vec::new();
    let mut build_args = BTreeMap::new();
    for (index, (key, value)) in labels.iter().enumerate() {
        names.push(format!("AGENT_LABEL_KEY_{index} AGENT_LABEL_VALUE_{index}"));
        pairs.push(format!(
            "\"${{AGENT_LABEL_KEY_{index}}}\"=\"${{AGENT_LABEL_VALUE_{index}}}\""
        ));
        build_args.insert(format!("AGENT_LABEL_KEY_{index}"), key.clone());
        build_args.insert(format!("AGENT_LABEL_VALUE_{index}"), value.clone());
    }
    let dockerfile = if labels.is_empty() {
        format!("FROM {image}\n")
    } else {
        format!(
            "FROM {image}\nARG {}\nLABEL {}\n",
            names.join(" "),
            pairs.join(" ")
        )
    };
    (dockerfile, build_args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_travel_as_build_args_and_never_as_dockerfile_text() {
        let labels = BTreeMap::from([
            ("a".to_owned(), "x\"y $HOME\nRUN rm -rf /".to_owned()),
            ("b".to_owned(), "2".to_owned()),
        ]);
        let (dockerfile, args) = label_dockerfile("sha256:abc", &labels);
        assert_eq!(
            dockerfile,
            "FROM sha256:abc\nARG AGENT_LABEL_KEY_0 AGENT_LABEL_VALUE_0 AGENT_LABEL_KEY_1 AGENT_LABEL_VALUE_1\nLABEL \"${AGENT_LABEL_KEY_0}\"=\"${AGENT_LABEL_VALUE_0}\" \"${AGENT_LABEL_KEY_1}\"=\"${AGENT_LABEL_VALUE_1}\"\n"
        );
        assert_eq!(args["AGENT_LABEL_VALUE_0"], labels["a"]);
        assert_eq!(args["AGENT_LABEL_KEY_1"], "b");
        assert!(!dockerfile.contains("rm -rf"));
    }
}
