//! The prompt templates: built in from `prompts/*.md`, replaceable per project through
//! `[prompts]` in `agent.toml`, filled by plain `{{name}}` substitution.

use std::path::Path;

use agent_spec::PromptSettings;

use crate::errors::LoopError;

/// The four templates a run uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompts {
    pub system: String,
    pub task: String,
    pub repair: String,
    pub judge: String,
}

impl Default for Prompts {
    fn default() -> Self {
        Prompts {
            system: include_str!("../prompts/system.md").to_string(),
            task: include_str!("../prompts/task.md").to_string(),
            repair: include_str!("../prompts/repair.md").to_string(),
            judge: include_str!("../prompts/judge.md").to_string(),
        }
    }
}

impl Prompts {
    /// The built-in templates with those named in `settings` read in their place.
    pub fn load(settings: &PromptSettings) -> Result<Prompts, LoopError> {
        let mut prompts = Prompts::default();
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|source| LoopError::Prompt {
                path: path.to_path_buf(),
                source,
            })
        };
        if let Some(path) = &settings.system {
            prompts.system = read(path)?;
        }
        if let Some(path) = &settings.task {
            prompts.task = read(path)?;
        }
        if let Some(path) = &settings.repair {
            prompts.repair = read(path)?;
        }
        if let Some(path) = &settings.judge {
            prompts.judge = read(path)?;
        }
        Ok(prompts)
    }
}

/// Replaces each `{{name}}` with its value in one pass, so a value that itself contains
/// `{{…}}` (say, a program's output) is never substituted again.
pub fn render(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let replaced = after.find("}}").and_then(|end| {
            let name = after[..end].trim();
            values
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value, end))
        });
        match replaced {
            Some((value, end)) => {
                out.push_str(value);
                rest = &after[end + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_substitutes_once_and_leaves_unknown_names() {
        let text = render(
            "a {{x}} b {{ y }} c {{unknown}} d {{",
            &[("x", "{{y}}"), ("y", "Y")],
        );
        assert_eq!(text, "a {{y}} b Y c {{unknown}} d {{");
    }

    #[test]
    fn builtin_templates_name_their_placeholders() {
        let prompts = Prompts::default();
        assert!(prompts.system.contains("{{base_image}}"));
        assert!(prompts.task.contains("{{prompt}}") && prompts.task.contains("{{conditions}}"));
        assert!(prompts.repair.contains("{{feedback}}") && prompts.repair.contains("{{bundle}}"));
        assert!(prompts.judge.contains("{{stdout}}"));
    }

    #[test]
    fn load_reads_replacements_and_names_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("system.md");
        std::fs::write(&path, "custom {{base_image}}").unwrap();
        let prompts = Prompts::load(&PromptSettings {
            system: Some(path),
            ..PromptSettings::default()
        })
        .unwrap();
        assert_eq!(prompts.system, "custom {{base_image}}");
        assert_eq!(prompts.task, Prompts::default().task);

        let missing = dir.path().join("nope.md");
        let error = Prompts::load(&PromptSettings {
            judge: Some(missing.clone()),
            ..PromptSettings::default()
        })
        .unwrap_err();
        assert!(error.to_string().contains("nope.md"), "{error}");
    }
}
