//! The two reply schemas, `code_bundle` and `verdict`, as Rust types; the strict JSON
//! schemas sent with `response_format`, derived from those types; and the lenient
//! reading of a reply's text into them (fenced blocks, prose around the object,
//! missing optional fields, names other formats use).

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The answer to the first request and to every repair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CodeBundle {
    /// What this version does, or what it changes.
    #[serde(default, deserialize_with = "lenient_string")]
    pub summary: String,
    /// The full Dockerfile; null in a repair keeps it unchanged.
    #[serde(default, deserialize_with = "nullable_string")]
    pub dockerfile: Option<String>,
    /// Files to write, each with its full text.
    #[serde(default, deserialize_with = "files")]
    pub files: Vec<BundleFile>,
    /// Files of the previous version to remove.
    #[serde(default, deserialize_with = "strings")]
    pub delete: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BundleFile {
    /// A relative path inside the build context.
    // `path` and `name` are what models trained on other formats tend to write.
    #[serde(alias = "path", alias = "name")]
    pub filename: String,
    /// The full text of the file.
    pub content: String,
}

/// The judge's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Verdict {
    /// Whether the output meets the conditions.
    #[serde(deserialize_with = "lenient_bool")]
    pub pass: bool,
    /// One or two sentences.
    #[serde(default, deserialize_with = "lenient_string")]
    pub reason: String,
}

impl CodeBundle {
    /// The schema's name in `response_format` and in transcripts.
    pub const SCHEMA_NAME: &'static str = "code_bundle";

    /// The strict JSON schema: every property required, no others allowed.
    pub fn json_schema() -> Value {
        strict_schema::<CodeBundle>()
    }
}

impl Verdict {
    /// The schema's name in `response_format` and in transcripts.
    pub const SCHEMA_NAME: &'static str = "verdict";

    /// The strict JSON schema: every property required, no others allowed.
    pub fn json_schema() -> Value {
        strict_schema::<Verdict>()
    }
}

/// A type a reply is parsed into.
pub(crate) trait ReplySchema: Sized + serde::de::DeserializeOwned {
    const NAME: &'static str;
    fn json_schema() -> Value;
    /// What a required field must be, said when it is missing.
    const REQUIRED: &'static [(&'static str, &'static str)] = &[];
}

impl ReplySchema for CodeBundle {
    const NAME: &'static str = CodeBundle::SCHEMA_NAME;

    fn json_schema() -> Value {
        CodeBundle::json_schema()
    }
}

impl ReplySchema for Verdict {
    const NAME: &'static str = Verdict::SCHEMA_NAME;
    const REQUIRED: &'static [(&'static str, &'static str)] = &[("pass", "true or false")];

    fn json_schema() -> Value {
        Verdict::json_schema()
    }
}

/// The schema of `T` in the form OpenAI's strict mode accepts (and llama.cpp's and
/// vLLM's grammars read): sub-schemas inline, every property required, no other
/// properties allowed, nullable fields as type arrays, no titles or defaults.
fn strict_schema<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::draft2020_12()
        .with(|settings| {
            settings.inline_subschemas = true;
            settings.meta_schema = None;
        })
        .with_transform(schemars::transform::RecursiveTransform(strict))
        .into_generator();
    generator.into_root_schema_for::<T>().to_value()
}

fn strict(schema: &mut Schema) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    object.remove("title");
    object.remove("default");
    if let Some(Value::Object(properties)) = object.get("properties") {
        let required: Vec<Value> = properties.keys().cloned().map(Value::String).collect();
        object.insert("required".to_owned(), Value::Array(required));
        object.insert("additionalProperties".to_owned(), Value::Bool(false));
    }
}

/// A string; null reads as empty.
fn lenient_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(nullable_string(deserializer)?.unwrap_or_default())
}

fn nullable_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    struct Nullable;
    impl<'de> Visitor<'de> for Nullable {
        type Value = Option<String>;
        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("a string or null")
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            Ok(Some(text.to_owned()))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    deserializer.deserialize_any(Nullable)
}

/// `true` or `false`, also as strings in any case.
fn lenient_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    struct Lenient;
    impl<'de> Visitor<'de> for Lenient {
        type Value = bool;
        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("true or false")
        }
        fn visit_bool<E: de::Error>(self, value: bool) -> Result<bool, E> {
            Ok(value)
        }
        fn visit_str<E: de::Error>(self, text: &str) -> Result<bool, E> {
            match text.to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(E::invalid_value(de::Unexpected::Str(text), &self)),
            }
        }
        fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
            Err(E::custom(MISSING))
        }
    }
    deserializer.deserialize_any(Lenient)
}

/// An array of strings; null reads as empty.
fn strings<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    deserializer.deserialize_any(List {
        expecting: "an array of strings",
        from_entry: None,
    })
}

/// An array of files; null reads as empty, and a map of filename to content (some
/// models answer so) as those files.
fn files<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<BundleFile>, D::Error> {
    deserializer.deserialize_any(List {
        expecting: "an array of objects with `filename` and `content`",
        from_entry: Some(|filename, content| BundleFile { filename, content }),
    })
}

/// Reads an array (null: empty), or a map of strings when `from_entry` is given.
struct List<T> {
    expecting: &'static str,
    from_entry: Option<fn(String, String) -> T>,
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for List<T> {
    type Value = Vec<T>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str(self.expecting)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Vec<T>, A::Error> {
        let mut list = Vec::new();
        while let Some(item) = items.next_element()? {
            list.push(item);
        }
        Ok(list)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Vec<T>, A::Error> {
        let Some(from_entry) = self.from_entry else {
            return Err(de::Error::invalid_type(de::Unexpected::Map, &self));
        };
        let mut list = Vec::new();
        while let Some((key, value)) = entries.next_entry()? {
            list.push(from_entry(key, value));
        }
        Ok(list)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Vec<T>, E> {
        Ok(Vec::new())
    }
}

/// The message of a required field that is null.
const MISSING: &str = "is missing";

/// Reads an object as `T`; the error names the field and what it must be.
fn from_object<T: ReplySchema>(object: Map<String, Value>) -> Result<T, String> {
    serde_path_to_error::deserialize::<_, T>(Value::Object(object)).map_err(|error| {
        let path = error.path().to_string();
        let message = error.inner().to_string();
        let (field, problem) = match message.strip_prefix("missing field `") {
            Some(rest) => {
                let name = rest.trim_end_matches('`');
                let field = if path == "." {
                    name.to_owned()
                } else {
                    format!("{path}.{name}")
                };
                (field, MISSING.to_owned())
            }
            None => (path, problem(&message)),
        };
        let hint = T::REQUIRED
            .iter()
            .find(|(name, _)| *name == field)
            .filter(|_| problem == MISSING)
            .map(|(_, expected)| format!(": it must be {expected}"))
            .unwrap_or_default();
        format!("field `{field}` {problem}{hint}")
    })
}

/// serde's "invalid type: integer `3`, expected a string" as "must be a string".
fn problem(message: &str) -> String {
    if message == MISSING {
        return message.to_owned();
    }
    match message.split_once(", expected ") {
        Some((_, expected)) => format!("must be {expected}"),
        None => message.to_owned(),
    }
}

/// How many `{` a reply may open before the search for its object gives up: bounds
/// the work on adversarial text.
const MAX_OBJECT_CANDIDATES: usize = 16;

/// Reads the reply text as the schema's type: the whole text, else the first fenced
/// block holding an object, else the first balanced `{…}` that parses.
pub(crate) fn parse_text<T: ReplySchema>(text: &str) -> Result<T, String> {
    let object = find_object(text, T::NAME)?;
    from_object(object)
}

fn find_object(text: &str, schema: &str) -> Result<Map<String, Value>, String> {
    let escaped = escape_controls_in_strings(text.trim().trim_start_matches('\u{feff}'));
    let trimmed = escaped.as_str();
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

/// `text` with raw control characters inside JSON strings escaped. Small models under
/// a grammar write a file's line breaks as raw newlines inside the `content` string,
/// which JSON forbids; escaping them can only turn such text into valid JSON, and
/// leaves valid JSON as it is (outside strings they are whitespace and stay).
fn escape_controls_in_strings(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '\n' if in_string => {
                out.push_str("\\n");
                continue;
            }
            '\r' if in_string => {
                out.push_str("\\r");
                continue;
            }
            '\t' if in_string => {
                out.push_str("\\t");
                continue;
            }
            c if in_string && c.is_control() && (c as u32) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", c as u32));
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
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
    use serde_json::json;

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
            let text = schema.to_string();
            for word in ["\"title\"", "\"default\"", "$ref", "$schema"] {
                assert!(!text.contains(word), "strict mode refuses {word}: {text}");
            }
        }
        let bundle = CodeBundle::json_schema();
        assert_eq!(
            bundle["properties"]["dockerfile"]["type"],
            json!(["string", "null"])
        );
        let file = &bundle["properties"]["files"]["items"];
        assert_eq!(file["required"], json!(["content", "filename"]));
        assert_eq!(file["additionalProperties"], false);
        assert_eq!(
            bundle["properties"]["delete"]["items"],
            json!({"type": "string"})
        );
        assert_eq!(
            Verdict::json_schema()["properties"]["pass"]["type"],
            "boolean"
        );
    }

    #[test]
    fn other_names_for_a_filename_nulls_and_string_booleans_are_read() {
        let parsed = bundle(
            r#"{"summary": null, "files": [{"path": "a.py", "content": "1"}, {"name": "b.py", "content": "2"}], "delete": null}"#,
        )
        .unwrap();
        assert_eq!(parsed.summary, "");
        assert_eq!(parsed.files[0].filename, "a.py");
        assert_eq!(parsed.files[1].filename, "b.py");
        assert!(parse_text::<Verdict>(r#"{"pass": "TRUE"}"#).unwrap().pass);
        assert_eq!(
            parse_text::<Verdict>(r#"{"pass": null}"#).unwrap_err(),
            "field `pass` is missing: it must be true or false"
        );
        assert_eq!(
            bundle(r#"{"files": [{"content": "x"}]}"#).unwrap_err(),
            "field `files[0].filename` is missing"
        );
        assert_eq!(
            bundle(r#"{"delete": ["a", 3]}"#).unwrap_err(),
            "field `delete[1]` must be a string"
        );
    }

    #[test]
    fn raw_line_breaks_inside_strings_are_read_as_escaped() {
        let text = "{\"summary\": \"s\", \"dockerfile\": \"FROM x\nCMD [\\\"y\\\"]\", \"files\": [{\"filename\": \"a.py\", \"content\": \"print(1)\n\tprint(2)\\n\"}], \"delete\": []}";
        let bundle: CodeBundle = parse_text(text).expect("read leniently");
        assert_eq!(bundle.dockerfile.as_deref(), Some("FROM x\nCMD [\"y\"]"));
        assert_eq!(bundle.files[0].content, "print(1)\n\tprint(2)\n");
        assert_eq!(
            super::escape_controls_in_strings("{\"a\": 1,\n \"b\": \"x\"}"),
            "{\"a\": 1,\n \"b\": \"x\"}",
            "whitespace between tokens stays"
        );
    }
}
