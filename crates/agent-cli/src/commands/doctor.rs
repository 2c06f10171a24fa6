//! `agent doctor`: is the engine reachable, which API version, is the base image
//! there, does the model endpoint answer.

use agent_spec::FlagOverrides;
use secrecy::SecretString;

use crate::args::ConfigArgs;
use crate::env;
use crate::exit;
use crate::failure::{Failure, engine_hint, model_hint};
use crate::settings;

pub async fn doctor(args: ConfigArgs) -> Result<u8, Failure> {
    let resolved = settings::resolve(args.config.as_deref(), FlagOverrides::default())?;
    let mut healthy = true;
    match agent_sandbox::Sandbox::connect(env::var(env::DOCKER_HOST).as_deref()).await {
        Ok(sandbox) => {
            let engine = sandbox.engine();
            println!(
                "ok    engine {} (API {})",
                engine.version, engine.api_version
            );
            match sandbox.image_present(&resolved.docker.base_image).await {
                Ok(true) => println!(
                    "ok    base image `{}` is present",
                    resolved.docker.base_image
                ),
                Ok(false) => println!(
                    "warn  base image `{}` is not present: builds will try to pull it",
                    resolved.docker.base_image
                ),
                Err(error) => {
                    healthy = false;
                    println!("fail  base image: {error}");
                }
            }
        }
        Err(error) => {
            healthy = false;
            println!("fail  engine: {error}");
            if let Some(hint) = engine_hint(&error) {
                println!("      hint: {hint}");
            }
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
