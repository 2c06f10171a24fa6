//! `agent doctor`: is every engine reachable, which version and API version, how many
//! slots, which storage driver, is each base image there, and, for an engine no
//! setting named, why it is the one (the variable, context or socket that chose it);
//! does the model endpoint answer.

use agent_sandbox::ImageRole;
use agent_spec::FlagOverrides;
use secrecy::SecretString;

use crate::args::DoctorArgs;
use crate::engines;
use crate::env;
use crate::exit;
use crate::failure::{Failure, engine_hint, model_hint};
use crate::settings;

pub async fn doctor(args: DoctorArgs) -> Result<u8, Failure> {
    let flags = FlagOverrides {
        engines: args.engine.engines,
        ..FlagOverrides::default()
    };
    let resolved = settings::resolve(args.config.config.as_deref(), flags)?;
    let mut healthy = true;
    let targets = engines::targets(&resolved)?;
    let found_by = found_by(&targets);
    let (answered, failed) = engines::connect(targets, &resolved.docker).await;
    for (sandbox, slots) in &answered {
        healthy &= report_engine(sandbox, *slots, &resolved.docker, &found_by).await;
    }
    for (host, error) in &failed {
        healthy = false;
        println!("fail  engine {host}: {}", agent_model::error_chain(error));
        print_found_by(&found_by, host);
        if let Some(hint) = engine_hint(error) {
            println!("      hint: {hint}");
        }
    }
    let api_key = env::var(&resolved.model.api_key_env).map(SecretString::from);
    let model = agent_model::Model::live(&resolved.model, api_key)
        .map_err(|error| Failure::model(error, &resolved.model.api_key_env))?;
    match model.probe().await {
        Ok(()) => {
            println!(
                "ok    model endpoint {} answers (model `{}`)",
                resolved.model.base_url, resolved.model.name
            );
            match model.probe_structured_output().await {
                Ok(mode) => println!("ok    structured output: `{}`", mode.unwrap_or("recorded")),
                // The endpoint answers; a model that cannot answer a chat request
                // yet is worth a warning, not a failed check.
                Err(error) => {
                    println!("warn  structured output: {error}");
                    if let Some(hint) = model_hint(&error, &resolved.model.api_key_env) {
                        println!("      hint: {hint}");
                    }
                }
            }
        }
        Err(error) => {
            healthy = false;
            println!("fail  model endpoint: {error}");
            if let Some(hint) = model_hint(&error, &resolved.model.api_key_env) {
                println!("      hint: {hint}");
            }
        }
    }
    Ok(if healthy {
        exit::VERIFIED
    } else {
        exit::INFRASTRUCTURE
    })
}

/// The address of the engine found as the Docker CLI finds one, and why it was.
fn found_by(targets: &[engines::Target]) -> Option<(String, String)> {
    targets.iter().find_map(|target| {
        let why = target.found_by.as_ref()?;
        Some((target.address.url.clone(), why.to_string()))
    })
}

/// `found by …` under the line of the engine at `host`, when it was found, not named.
fn print_found_by(found_by: &Option<(String, String)>, host: &str) {
    if let Some((_, why)) = found_by.as_ref().filter(|(url, _)| url == host) {
        println!("      found by {why}");
    }
}

/// One engine's lines: who it is, and each base image. Whether nothing failed.
async fn report_engine(
    sandbox: &agent_sandbox::Sandbox,
    slots: Option<usize>,
    docker: &agent_spec::DockerSettings,
    found_by: &Option<(String, String)>,
) -> bool {
    let engine = sandbox.engine();
    let slots = slots.unwrap_or(engine.cpus);
    println!(
        "ok    engine {} {} (API {}) at {}: {slots} slots, storage driver {}, builder {}",
        engine.product,
        engine.version,
        engine.api_version,
        engine.host,
        engine.storage_driver,
        engine.builder
    );
    print_found_by(found_by, &engine.host);
    let mut healthy = true;
    for image in engines::base_images(docker) {
        healthy &= report_image(sandbox, ImageRole::Base, image, "builds").await;
    }
    healthy &= report_image(
        sandbox,
        ImageRole::Probe,
        &docker.probe_image,
        "specs with [service]",
    )
    .await;
    if docker.build_network == agent_spec::BuildNetwork::Allowlist {
        let hosts = docker.build_allowed_hosts();
        let why = match docker.builder {
            agent_spec::BuilderChoice::Auto => {
                " (auto picks it: BuildKit through the engine API cannot join the egress gate)"
            }
            _ => "",
        };
        println!(
            "ok    build egress: allow-list, enforced through the classic builder{why}; RUN steps reach only {}",
            hosts.join(", ")
        );
        healthy &= report_image(sandbox, ImageRole::Egress, &docker.egress_image, "builds").await;
    } else if let Some(warning) = docker.open_build_network_warning() {
        println!("warn  build egress: {warning}");
    } else {
        println!(
            "ok    build egress: `[docker] build_network = \"none\"`: RUN steps reach nothing"
        );
    }
    healthy
}

/// One line on whether `image` (a `role`) is on the engine; false when the engine
/// cannot say. A missing image is a warning: `needed_by` will try to pull it.
async fn report_image(
    sandbox: &agent_sandbox::Sandbox,
    role: ImageRole,
    image: &str,
    needed_by: &str,
) -> bool {
    let host = &sandbox.engine().host;
    match sandbox.image_present(image).await {
        Ok(true) => println!("ok    {role} `{image}` is present on {host}"),
        Ok(false) => println!(
            "warn  {role} `{image}` is not present on {host}: {needed_by} will try to pull it"
        ),
        Err(error) => {
            println!("fail  {role} `{image}` on {host}: {error}");
            return false;
        }
    }
    true
}
