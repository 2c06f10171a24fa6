//! `agent gc`: removes containers and images that earlier runs left, by label.

use crate::args::GcArgs;
use crate::env;
use crate::exit;
use crate::failure::Failure;

pub async fn gc(args: GcArgs) -> Result<u8, Failure> {
    let sandbox = agent_sandbox::Sandbox::connect(env::var(env::DOCKER_HOST).as_deref())
        .await
        .map_err(Failure::engine)?;
    let report = sandbox.gc(args.all).await.map_err(Failure::engine)?;
    for container in &report.containers {
        println!("removed container {container}");
    }
    for image in &report.images {
        println!("removed image {image}");
    }
    eprintln!(
        "gc: removed {} containers and {} images",
        report.containers.len(),
        report.images.len()
    );
    Ok(exit::VERIFIED)
}
