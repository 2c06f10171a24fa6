//! The two reply schemas, `code_bundle` and `verdict`, as Rust types and as the JSON
//! schemas sent with `response_format`, and the lenient reading of a reply's text
//! into them (fenced blocks, prose around the object, missing optional fields).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The answer to the first request and to every repair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodeBundle {
    pub summary: String,
    /// `None` in a repair: unchanged.
    pub dockerfile: Option<String>,
    pub files: Vec<BundleFile>,
    pub delete: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleFile {
    pub filename: String,
    pub content: String,
}

/// The judge's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub pass: bool,
    pub reason: String,
}

impl CodeBundle {
    /// The schema's name in `response_format` and in transcripts.
    pub const SCHEMA_NAME: &'static str = "code_bundle";

    /// The strict JSON schema: every property required, no others allowed.
    pub fn json_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "summary": {
                    "type": "string",
                    "description": "What this version does, or what it changes.",
                },
                "dockerfile": {
                    "type": ["string", "null"],
                    "description": "The full Dockerfile; null in a repair keeps it unchanged.",
                },
                "files": {
                    "type": "array",
                    "description": "Files to write, each with its full text.",
                    "items": {
                        "type": "object",
                        "properties": {
                            "filename": {
                                "type": "string",
                                "description": "A relative path inside the build context.",
                            },
                            "content": {"type": "string", "description": "The full text of the file."},
                        },
                        "required": ["filename", "content"],
                        "additionalProperties": false,
                    },
                },
                "delete": {
                    "type": "array",
                    "description": "Files of the previous version to remove.",
                    "items": {"type": "string"},
                },
            },
            "required": ["summary", "dockerfile", "files", "delete"],
            "additionalProperties": false,
        })
    }
}

impl Verdict {
    /// The schema's name in `response_format` and in transcripts.
    pub const SCHEMA_NAME: &'static str = "verdict";

    /// The strict JSON schema: every property required, no others allowed.
    pub fn json_schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "pass": {
                    "type": "boolean",
                    "description": "Whether the output meets the conditions.",
                },
                "reason": {"type": "string", "description": "One or two sentences."},
            },
            "required": ["pass", "reason"],
            "additionalProperties": false,
        })
    }
}

/// A type a reply is parsed into.
pub(crate) trait ReplySchema: Sized {
    const NAME: &'static str;
    fn json_schema() -> Value;
    /// Reads the object leniently; the error names the field and what it must be.
    fn from_object(object: &Map<String, Value>) -> Result<Self, String>;
}

impl ReplySchema for CodeBundle {
    const NAME: &'static str = CodeBundle::SCHEMA_NAME;

    fn json_schema() -> Value {
        CodeBundle::json_schema()
    }

    fn from_object(object: &Map<String, Value>) -> Result<Self, String> {
        let summary = optional_string(object, "summary", "a string")?.unwrap_or_default();
        let dockerfile = optional_string(object, "dockerfile", "a string or null")?;
        let files = match object.get("files") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(index, item)| bundle_file(index, item))
                .collect::<Result<_, _>>()?,
            // Some models answer with a map of filename to content; its meaning is clear.
            Some(Value::Object(map)) => map
                .iter()
                .map(|(filename, content)| match content {
                    Value::String(text) => Ok(BundleFile {
                        filename: filename.clone(),
                        content: text.clone(),
                    }),
                    _ => Err(format!(
                        "field `files` must be an array of objects with `filename` and \
                         `content`; `files.{filename}` is not a string"
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(
                    "field `files` must be an array of objects with `filename` and `content`"
                        .to_owned(),
                );
            }
        };
        let delete = match object.get("delete") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(index, item)| match item {
                    Value::String(name) => Ok(name.clone()),
                    _ => Err(format!("field `delete[{index}]` must be a string")),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("field `delete` must be an array of strings".to_owned()),
        };
        Ok(CodeBundle {
            summary,
            dockerfile,
            files,
            delete,
        })
    }
}

impl ReplySchema for Verdict {
    const NAME: &'static str = Verdict::SCHEMA_NAME;

    fn json_schema() -> Value {
        Verdict::json_schema()
    }

    fn from_object(object: &Map<String, Value>) -> Result<Self, String> {
        let pass = match object.get("pass") {
            Some(Value::Bool(pass)) => *pass,
            Some(Value::String(text)) if text.eq_ignore_ascii_case("true") => true,
            Some(Value::String(text)) if text.eq_ignore_ascii_case("false") => false,
            None | Some(Value::Null) => {
                return Err("field `pass` is missing: it must be true or false".to_owned());
            }
            Some(_) => return Err("field `pass` must be true or false".to_owned()),
        };
        let reason = optional_string(object, "reason", "a string")?.unwrap_or_default();
        Ok(Verdict { pass, reason })
    }
}

fn optional_string(
    object: &Map<String, Value>,
    field: &str,
    expected: &str,
) -> Result<Option<String>, String> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(format!("field `{field}` must be {expected}")),
    }
}

fn bundle_file(index: usize, item: &Value) -> Result<BundleFile, String> {
    let Value::Object(object) = item else {
        return Err(format!(
            "field `files[{index}]` must be an object with `filename` and `content`"
        ));
    };
    // `path` and `name` are what models trained on other formats tend to write.
    let filename = ["filename", "path", "name"]
        .iter()
        .find_map(|key| object.get(*key).filter(|value| !value.is_null()));
    let filename = match filename {
        Some(Value::String(name)) => name.clone(),
        Some(_) => return Err(format!("field `files[{index}].filename` must be a string")),
        None => return Err(format!("field `files[{index}].filename` is missing")),
    };
    let content = match object.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => {
            return Err(format!("field `files[{index}].content` is missing"));
        }
        Some(_) => return Err(format!("field `files[{index}].content` must be a string")),
    };
    Ok(BundleFile { filename, content })
}

/// How many `{` a reply may open before the search for its object gives up: bounds
/// the work on adversarial text.
const MAX_OBJECT_CANDIDATES: usize = 16;

/// Reads the reply text as the schema's type: the whole text, else the first fenced
/// block holding an object, else the first balanced `{…}` that parses.
pub(crate) fn parse_text<T: ReplySchema>(text: &str) -> Result<T, String> {
    let object = find_object(text, T::NAME)?;
    T::from_object(&object)
}

fn find_object(text: &str, schema: &str) -> Result<Map<String, Value>, String> {
    let trimmed = text.trim().trim_start_matches('\u{feff}');
    match serde_json::from_str::<Value>(trimmed) {
        Ok(Value::Object(object)) => return Ok(object),
        Ok(other) if !matches!(other, Value::String(_)) => {
            return Err(format!(
                "the reply must be one JSON object matching the `{schema}` schema, not {}",
                kind(&other)
            ));
        }
        _ => {}
    }
    for block in fenced_blocks(trimmed) {
        if let Ok(Value::Object(object)) = serde_json::from_str::<Value>(block.trim()) {
            return Ok(object);
        }
    }
    let mut first_error = None;
    for (start, _) in trimmed.match_indices('{').take(MAX_OBJECT_CANDIDATES) {
        let Some(end) = balanced_end(&trimmed[start..]) else {
            first_error.get_or_insert_with(|| {
                "the JSON object in the reply is not closed (is it cut short?)".to_owned()
            });
            continue;
        };
        match serde_json::from_str::<Value>(&trimmed[start..start + end]) {
            Ok(Value::Object(object)) => return Ok(object),
            Ok(_) => {}
            Err(error) => {
                first_error.get_or_insert_with(|| {
                    format!("the JSON in the reply does not parse: {error}")
                });
            }
        }
    }
    Err(match first_error {
        Some(error) => {
            format!("{error}; answer with exactly one JSON object matching the `{schema}` schema")
        }
        None => format!(
            "the reply holds no JSON object: answer with exactly one JSON object matching \
             the `{schema}` schema, without prose around it"
        ),
    })
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The insides of Markdown code fences (the info string after the opening fence is
/// skipped, so ```json and plain ``` both count).
fn fenced_blocks(text: &str) -> Vec<&str> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("```") {
        let after_fence = &rest[open + 3..];
        let Some(line_end) = after_fence.find('\n') else {
            break;
        };
        let body = &after_fence[line_end + 1..];
        let Some(close) = body.find("```") else {
            break;
        };
        blocks.push(&body[..close]);
        rest = &body[close + 3..];
    }
    blocks
}

/// The length of the balanced object that `text` starts with (it starts with `{`),
/// reading strings and escapes so braces inside strings do not count.
fn balanced_end(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (index, byte) in text.bytes().enumerate() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' => depth += 1,
            b'}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(index + 1);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(text: &str) -> Result<CodeBundle, String> {
        parse_text::<CodeBundle>(text)
    }

    #[test]
    fn a_plain_object_parses_with_defaults_for_missing_fields() {
        let parsed = bundle(r#"{"files": [{"filename": "a.py", "content": "print(1)"}]}"#).unwrap();
        assert_eq!(parsed.summary, "");
        assert_eq!(parsed.dockerfile, None);
        assert_eq!(parsed.delete, Vec::<String>::new());
        assert_eq!(parsed.files[0].filename, "a.py");
    }

    #[test]
    fn a_fenced_block_inside_prose_parses() {
        let text = "Here you go:\n```json\n{\"summary\": \"s\", \"dockerfile\": \"FROM x\", \"files\": [], \"delete\": []}\n```\nEnjoy.";
        let parsed = bundle(text).unwrap();
        assert_eq!(parsed.dockerfile.as_deref(), Some("FROM x"));
    }

    #[test]
    fn prose_around_a_balanced_object_with_braces_in_strings_parses() {
        let text = r#"Sure! {"summary": "uses {braces} and \"quotes\"", "files": [{"filename": "m.py", "content": "d = {}\n"}]} Hope it helps {"#;
        let parsed = bundle(text).unwrap();
        assert_eq!(parsed.summary, "uses {braces} and \"quotes\"");
        assert_eq!(parsed.files[0].content, "d = {}\n");
    }

    #[test]
    fn wrong_types_name_the_field() {
        let error = bundle(
            r#"{"files": [{"filename": "a", "content": "x"}, {"filename": "b", "content": "y"}, {"filename": "c", "content": 3}]}"#,
        )
        .unwrap_err();
        assert_eq!(error, "field `files[2].content` must be a string");
        assert_eq!(
            bundle(r#"{"delete": "a.py"}"#).unwrap_err(),
            "field `delete` must be an array of strings"
        );
        assert_eq!(
            bundle(r#"{"dockerfile": 1}"#).unwrap_err(),
            "field `dockerfile` must be a string or null"
        );
    }

    #[test]
    fn text_without_an_object_says_so() {
        let error = bundle("I cannot do that.").unwrap_err();
        assert!(error.contains("no JSON object"), "{error}");
        let error = bundle("[1, 2]").unwrap_err();
        assert!(error.contains("not an array"), "{error}");
        let error = bundle(r#"{"summary": "cut"#).unwrap_err();
        assert!(error.contains("not closed"), "{error}");
    }

    #[test]
    fn a_map_of_files_is_read_as_files() {
        let parsed = bundle(r#"{"files": {"main.py": "print(2)"}}"#).unwrap();
        assert_eq!(
            parsed.files,
            vec![BundleFile {
                filename: "main.py".into(),
                content: "print(2)".into()
            }]
        );
    }

    #[test]
    fn verdict_requires_pass_and_defaults_reason() {
        assert_eq!(
            parse_text::<Verdict>(r#"{"pass": true}"#).unwrap(),
            Verdict {
                pass: true,
                reason: String::new()
            }
        );
        assert_eq!(
            parse_text::<Verdict>(r#"{"reason": "x"}"#).unwrap_err(),
            "field `pass` is missing: it must be true or false"
        );
    }

    #[test]
    fn strict_schemas_require_every_property() {
        for schema in [CodeBundle::json_schema(), Verdict::json_schema()] {
            let properties: Vec<&String> =
                schema["properties"].as_object().unwrap().keys().collect();
            let required: Vec<&str> = schema["required"]
                .as_array()
                .unwrap()
                .iter()
                .map(|name| name.as_str().unwrap())
                .collect();
            assert_eq!(properties.len(), required.len());
            assert_eq!(schema["additionalProperties"], false);
        }
    }
}
