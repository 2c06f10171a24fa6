//! `agent schema spec|config`: the JSON Schema of `spec.toml` or `agent.toml` on
//! stdout, generated from the tables the parser reads (`docs/schema/` holds a copy).

use crate::args::{SchemaArgs, SchemaFile};
use crate::exit;
use crate::failure::Failure;

pub fn schema(args: SchemaArgs) -> Result<u8, Failure> {
    let schema = match args.file {
        SchemaFile::Spec => agent_spec::spec_schema(),
        SchemaFile::Config => agent_spec::config_schema(),
    };
    let text = serde_json::to_string_pretty(&schema)
        .map_err(|error| Failure::infrastructure(error.into()))?;
    println!("{text}");
    Ok(exit::VERIFIED)
}
