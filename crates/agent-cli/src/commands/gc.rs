//! `agent gc`: removes containers and images that earlier runs left, by label, and
//! with `--cache` the build cache kept under `agent-cache/…` tags; on every engine.

use crate::args::GcArgs;
use crate::exit;
use crate::failure::Failure;

pub async fn gc(args: GcArgs) -> Result<u8, Failure> {
    let flags = agent_spec::FlagOverrides {
        engines: args.engine.engines.clone(),
        ..agent_spec::FlagOverrides::default()
    };
    let resolved = crate::settings::resolve(args.config.config.as_deref(), flags)?;
    let pool = crate::engines::pool(&resolved, &[]).await?;
    for (sandbox, _) in pool.engines() {
        gc_engine(&args, &sandbox).await?;
    }
    Ok(exit::VERIFIED)
}

/// What earlier runs left on one engine.
async fn gc_engine(args: &GcArgs, sandbox: &agent_sandbox::Sandbox) -> Result<(), Failure> {
    let report = sandbox.gc(args.all).await.map_err(Failure::engine)?;
    for container in &report.containers {
        println!("removed container {container}");
    }
    for image in &report.images {
        println!("removed image {image}");
    }
    for volume in &report.volumes {
        println!("removed volume {volume}");
    }
    eprintln!(
        "gc: removed {} containers, {} images and {} volumes",
        report.containers.len(),
        report.images.len(),
        report.volumes.len()
    );
    if args.cache {
        let removed = sandbox.remove_cache().await.map_err(Failure::engine)?;
        for image in &removed {
            println!("removed image {image}");
        }
        eprintln!("gc: removed the build cache ({} images)", removed.len());
    } else {
        let usage = sandbox.cache_usage().await.map_err(Failure::engine)?;
        if usage.entries > 0 {
            eprintln!(
                "gc: the build cache keeps {} entries, {:.1} MiB (`agent gc --cache` removes it)",
                usage.entries,
                usage.bytes as f64 / (1024.0 * 1024.0)
            );
        }
    }
    Ok(())
}
