//! A YAML document as a tree whose every node knows its line and column, read through
//! yaml-rust2's marked events, so a problem in a structure-test file points at its
//! place. Scalars are typed as Go's `yaml.v2` types them when decoding into the
//! tool's structs, which is what decides what the real binary accepts.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// One node and where it starts (1-based line and column).
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub value: Value,
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// `plain`: written without quotes or block style, so `yaml.v2` resolves it
    /// (null, bool, number) before decoding.
    Scalar {
        text: String,
        plain: bool,
    },
    Sequence(Vec<Node>),
    /// Keys in the order written.
    Mapping(Vec<(Node, Node)>),
}

/// A YAML syntax error: the message and where.
pub(crate) struct SyntaxError {
    pub message: String,
    pub line: usize,
    pub column: usize,
}

/// The first document of `text`; an empty document is `None`.
pub(crate) fn parse(text: &str) -> Result<Option<Node>, SyntaxError> {
    let mut builder = Builder::default();
    Parser::new_from_str(text)
        .load(&mut builder, false)
        .map_err(|error| SyntaxError {
            message: error.info().to_owned(),
            line: error.marker().line(),
            column: error.marker().col() + 1,
        })?;
    if let Some(message) = builder.error {
        return Err(message);
    }
    Ok(builder.root)
}

/// Collections being filled, innermost last.
enum Open {
    Sequence(Node, usize),
    /// The mapping, its anchor, and a key waiting for its value.
    Mapping(Node, usize, Option<Node>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Open>,
    anchors: HashMap<usize, Node>,
    root: Option<Node>,
    error: Option<SyntaxError>,
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let at = |value| Node {
            value,
            line: mark.line(),
            column: mark.col() + 1,
        };
        match event {
            Event::Scalar(text, style, anchor, _) => {
                let plain = style == TScalarStyle::Plain;
                self.complete(at(Value::Scalar { text, plain }), anchor);
            }
            Event::SequenceStart(anchor, _) => {
                self.stack
                    .push(Open::Sequence(at(Value::Sequence(Vec::new())), anchor));
            }
            Event::MappingStart(anchor, _) => {
                self.stack
                    .push(Open::Mapping(at(Value::Mapping(Vec::new())), anchor, None));
            }
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Open::Sequence(node, anchor)) => self.complete(node, anchor),
                Some(Open::Mapping(mut node, anchor, _)) => {
                    if let Value::Mapping(entries) = &mut node.value {
                        // A block mapping's start event is marked after its first key;
                        // the key is where a reader looks for the mapping.
                        if let Some((key, _)) = entries.first() {
                            (node.line, node.column) = (key.line, key.column);
                        }
                        *entries = merged(std::mem::take(entries));
                    }
                    self.complete(node, anchor);
                }
                None => {}
            },
            Event::Alias(anchor) => match self.anchors.get(&anchor).cloned() {
                Some(mut node) => {
                    node.line = mark.line();
                    node.column = mark.col() + 1;
                    self.complete(node, 0);
                }
                None if self.error.is_none() => {
                    self.error = Some(SyntaxError {
                        message: "alias to an unknown anchor".to_owned(),
                        line: mark.line(),
                        column: mark.col() + 1,
                    });
                }
                None => {}
            },
            _ => {}
        }
    }
}

impl Builder {
    /// A finished node goes into the collection around it, or becomes the root.
    fn complete(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            Some(Open::Sequence(
                Node {
                    value: Value::Sequence(items),
                    ..
                },
                _,
            )) => items.push(node),
            Some(Open::Mapping(
                Node {
                    value: Value::Mapping(entries),
                    ..
                },
                _,
                pending,
            )) => match pending.take() {
                Some(key) => entries.push((key, node)),
                None => *pending = Some(node),
            },
            Some(_) => {}
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
        }
    }
}

/// A mapping's entries with its merge keys (`<<: *base`, or a list of them) applied
/// as `yaml.v2` applies them, in order: a merged key replaces an earlier one, and a
/// later key written out replaces a merged one. Two keys written out stay, for the
/// reader to refuse.
fn merged(entries: Vec<(Node, Node)>) -> Vec<(Node, Node)> {
    let mut out: Vec<(Node, Node, bool)> = Vec::with_capacity(entries.len());
    let name = |node: &Node| match &node.value {
        Value::Scalar { text, .. } => Some(text.clone()),
        _ => None,
    };
    for (key, value) in entries {
        let is_merge = matches!(&key.value, Value::Scalar { text, plain: true } if text == "<<");
        if !is_merge {
            let key_name = name(&key);
            out.retain(|(seen, _, from_merge)| !(*from_merge && name(seen) == key_name));
            out.push((key, value, false));
            continue;
        }
        let sources = match value.value {
            Value::Sequence(items) => items,
            _ => vec![value],
        };
        for source in sources {
            // Not a mapping: kept as written, for the reader to refuse as a key.
            let Value::Mapping(source_entries) = source.value else {
                out.push((key.clone(), source, false));
                continue;
            };
            for (merged_key, merged_value) in source_entries {
                let key_name = name(&merged_key);
                out.retain(|(seen, ..)| name(seen) != key_name);
                out.push((merged_key, merged_value, true));
            }
        }
    }
    out.into_iter()
        .map(|(key, value, _)| (key, value))
        .collect()
}

impl Node {
    /// A plain `~`, `null`, `Null`, `NULL` or nothing: `yaml.v2`'s null.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// What a problem message calls this node's kind.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Scalar { .. } if self.is_null() => "null",
            Value::Scalar { .. } => "a scalar",
            Value::Sequence(_) => "a list",
            Value::Mapping(_) => "a mapping",
        }
    }
}

/// `yaml.v2`'s booleans (YAML 1.1): `true`/`yes`/`on`/`y` and their opposites, in
/// lower, title or upper case, unquoted.
pub(crate) fn boolean(text: &str) -> Option<bool> {
    match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True" | "TRUE" => {
            Some(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False" | "FALSE" => {
            Some(false)
        }
        _ => None,
    }
}

/// `yaml.v2`'s integers, unquoted: decimal with `_` separators, `0x` hex, `0o` or a
/// leading `0` for octal, `0b` binary, each with an optional sign.
pub(crate) fn integer(text: &str) -> Option<i64> {
    let cleaned = text.replace('_', "");
    let (negative, digits) = match cleaned.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, cleaned.strip_prefix('+').unwrap_or(&cleaned)),
    };
    let (radix, digits) = if let Some(rest) = digits.strip_prefix("0x") {
        (16, rest)
    } else if let Some(rest) = digits.strip_prefix("0o") {
        (8, rest)
    } else if let Some(rest) = digits.strip_prefix("0b") {
        (2, rest)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    if digits.is_empty() || !digits.chars().all(|digit| digit.is_digit(radix)) {
        return None;
    }
    let magnitude = i64::from_str_radix(digits, radix).ok()?;
    Some(if negative { -magnitude } else { magnitude })
}
