//! What the engine says of an image, read from its inspect, as image checks see it.

use bollard::Docker;

use agent_spec::ImageFacts;

use crate::deadline::bounded;
use crate::errors::SandboxError;

pub(crate) async fn image_facts(docker: &Docker, image: &str) -> Result<ImageFacts, SandboxError> {
    let inspected = bounded(docker.inspect_image(image))
        .await
        .map_err(|source| SandboxError::InspectImage {
            image: image.to_owned(),
            source,
        })?;
    let config = inspected.config.unwrap_or_default();
    Ok(ImageFacts {
        user: config.user.unwrap_or_default(),
        workdir: config.working_dir.unwrap_or_default(),
        // The engine keeps ports and volumes in maps: sorted, so facts do not vary.
        exposed_ports: sorted(config.exposed_ports.unwrap_or_default()),
        env: config.env.unwrap_or_default(),
        labels: config.labels.unwrap_or_default().into_iter().collect(),
        entrypoint: config.entrypoint.unwrap_or_default(),
        cmd: config.cmd.unwrap_or_default(),
        volumes: sorted(config.volumes.unwrap_or_default()),
        size_bytes: inspected
            .size
            .and_then(|size| u64::try_from(size).ok())
            .unwrap_or(0),
    })
}

fn sorted(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items
}
