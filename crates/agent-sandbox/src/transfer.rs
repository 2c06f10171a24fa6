//! An image copied from one engine to another, as `docker save | docker -H … load`
//! does, streamed through this process: how base images reach a second engine that
//! no registry can fill.

use std::time::Duration;

use bollard::query_parameters::ImportImageOptionsBuilder;
use futures_util::StreamExt;

use crate::engine::Sandbox;
use crate::errors::SandboxError;

impl Sandbox {
    /// Copies `image` (a reference, kept with its tag) from this engine to `other`;
    /// `timeout` bounds the whole copy.
    pub async fn copy_image_to(
        &self,
        other: &Sandbox,
        image: &str,
        timeout: Duration,
    ) -> Result<(), SandboxError> {
        let failure = |source| SandboxError::CopyImage {
            image: image.to_owned(),
            target: other.engine().host.clone(),
            source,
        };
        let exported = self.docker.export_image(image);
        let options = ImportImageOptionsBuilder::default().quiet(true).build();
        let copied = tokio::time::timeout(timeout, async {
            let mut loaded = other.docker.import_image_stream(options, exported, None);
            while let Some(item) = loaded.next().await {
                if let Some(error) = item?.error_detail.and_then(|detail| detail.message) {
                    return Err(bollard::errors::Error::DockerStreamError { error });
                }
            }
            Ok(())
        })
        .await;
        match copied {
            Ok(result) => result.map_err(failure),
            Err(_elapsed) => Err(failure(bollard::errors::Error::RequestTimeoutError)),
        }
    }
}
