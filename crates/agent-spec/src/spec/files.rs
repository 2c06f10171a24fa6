//! `[[file]]`: paths in the image and what must hold of each.

use std::collections::HashSet;

use crate::spanned::Spanned;
use serde::Deserialize;

use crate::check::{ContentMatcher, FileCheck, parse_ls_mode};
use crate::errors::SpecError;
use crate::spec::checks::compile;
use crate::validate::Source;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "File")]
pub(crate) struct RawFile {
    path: Option<Spanned<String>>,
    exists: Option<Spanned<bool>>,
    mode: Option<Spanned<String>>,
    uid: Option<Spanned<u64>>,
    gid: Option<Spanned<u64>>,
    executable: Option<Spanned<bool>>,
    contains: Option<Spanned<String>>,
    not_contains: Option<Spanned<String>>,
    matches: Option<Spanned<String>>,
}

pub(crate) fn build_files(
    source: &Source<'_>,
    raw: &[Spanned<RawFile>],
) -> Result<Vec<FileCheck>, SpecError> {
    let mut seen = HashSet::new();
    let mut files = Vec::with_capacity(raw.len());
    for table in raw {
        let file = build_file(source, table)?;
        if !seen.insert(file.path.clone()) {
            return Err(source.invalid(
                table.span(),
                format!(
                    "`{}` is already checked by an earlier [[file]]; put its checks in one table",
                    file.path
                ),
            ));
        }
        files.push(file);
    }
    Ok(files)
}

fn build_file(source: &Source<'_>, table: &Spanned<RawFile>) -> Result<FileCheck, SpecError> {
    let raw = table.get_ref();
    let Some(path) = &raw.path else {
        return Err(source.invalid(
            table.span(),
            "[[file]] has no `path`; give the absolute path in the image, e.g. \"/app/main.py\""
                .to_owned(),
        ));
    };
    let text = path.get_ref();
    if !text.starts_with('/') || text.contains('\0') || text.split('/').any(|part| part == "..") {
        return Err(source.invalid(
            path.span(),
            format!(
                "`path` `{}` must be absolute, without `..` or NUL, e.g. \"/app/main.py\"",
                text.escape_debug()
            ),
        ));
    }
    let exists = raw.exists.as_ref().is_none_or(|exists| *exists.get_ref());
    let content = content_matcher(source, table)?;
    if !exists {
        let asked = [
            ("mode", raw.mode.as_ref().map(Spanned::span)),
            ("uid", raw.uid.as_ref().map(Spanned::span)),
            ("gid", raw.gid.as_ref().map(Spanned::span)),
            ("executable", raw.executable.as_ref().map(Spanned::span)),
        ];
        let content_key = content
            .as_ref()
            .map(|(matcher, span)| (matcher.key(), Some(span.clone())));
        if let Some((key, Some(span))) = asked
            .into_iter()
            .chain(content_key)
            .find(|(_, span)| span.is_some())
        {
            return Err(source.invalid(
                span,
                format!("`{key}` cannot hold for a path that must be absent (`exists = false`); remove one of them"),
            ));
        }
    }
    let mode = source.value(
        raw.mode.clone(),
        |mode: String| parse_ls_mode(&mode),
        |problem| format!("`mode` {problem}"),
    )?;
    Ok(FileCheck {
        path: text.clone(),
        exists,
        mode,
        uid: raw.uid.as_ref().map(|uid| *uid.get_ref()),
        gid: raw.gid.as_ref().map(|gid| *gid.get_ref()),
        executable: raw
            .executable
            .as_ref()
            .map(|executable| *executable.get_ref()),
        content: content.map(|(matcher, _)| matcher),
    })
}

/// At most one of `contains`, `not_contains`, `matches`, with where it was written.
fn content_matcher(
    source: &Source<'_>,
    table: &Spanned<RawFile>,
) -> Result<Option<(ContentMatcher, std::ops::Range<usize>)>, SpecError> {
    let raw = table.get_ref();
    let set: Vec<(&str, &Spanned<String>)> = [
        ("contains", &raw.contains),
        ("not_contains", &raw.not_contains),
        ("matches", &raw.matches),
    ]
    .into_iter()
    .filter_map(|(key, value)| value.as_ref().map(|value| (key, value)))
    .collect();
    let Some(&(key, value)) = set.first() else {
        return Ok(None);
    };
    if let Some((second, _)) = set.get(1) {
        return Err(source.invalid(
            table.span(),
            format!(
                "[[file]] `{}` has both `{key}` and `{second}`; one content check per table",
                raw.path.as_ref().map_or("", |path| path.get_ref())
            ),
        ));
    }
    if key != "matches" && value.get_ref().is_empty() {
        return Err(source.invalid(
            value.span(),
            format!("`{key}` is empty, which every file contains; give it a text"),
        ));
    }
    let matcher = match key {
        "contains" => ContentMatcher::Contains(value.get_ref().clone()),
        "not_contains" => ContentMatcher::NotContains(value.get_ref().clone()),
        _ => ContentMatcher::Matches(compile(source, key, value)?),
    };
    Ok(Some((matcher, value.span())))
}

#[cfg(test)]
mod tests {
    use crate::check::ContentMatcher;
    use crate::spec::testing::{MINIMAL, invalid, parse};

    #[test]
    fn every_file_key_parses() {
        let spec = parse(&format!(
            "{MINIMAL}[[file]]\npath = \"/app/main.py\"\nmode = \"-rwxr-x--x\"\nuid = 1000\ngid = 100\n\
             executable = true\nmatches = \"^def main\"\n[[file]]\npath = \"/root/.cache\"\nexists = false\n"
        ))
        .unwrap();
        let main = &spec.files[0];
        assert_eq!(main.path, "/app/main.py");
        assert!(main.exists);
        assert_eq!(main.mode, Some(0o100_751));
        assert_eq!(
            (main.uid, main.gid, main.executable),
            (Some(1000), Some(100), Some(true))
        );
        assert!(
            matches!(&main.content, Some(ContentMatcher::Matches(regex)) if regex.is_match("x\ndef main"))
        );
        assert!(!spec.files[1].exists);
        assert!(!spec.judge);
    }

    #[test]
    fn ls_modes_parse_with_their_special_bits() {
        let mode = |text: &str| {
            let spec = parse(&format!(
                "{MINIMAL}[[file]]\npath = \"/x\"\nmode = \"{text}\"\n"
            ))
            .unwrap();
            spec.files[0].mode.unwrap()
        };
        assert_eq!(mode("drwxr-xr-x"), 0o040_755);
        assert_eq!(mode("drwxrwxrwt"), 0o041_777);
        assert_eq!(mode("-rwsr-xr-x"), 0o104_755);
        assert_eq!(mode("-rwSr-Sr-T"), 0o107_644);
        assert_eq!(mode("lrwxrwxrwx"), 0o120_777);
    }

    #[test]
    fn bad_file_tables_point_at_the_problem() {
        let cases = [
            ("path = \"app/main.py\"", 4, 8, "must be absolute"),
            (
                "path = \"/app/../etc\"",
                4,
                8,
                "must be absolute, without `..`",
            ),
            (
                "path = \"/a\"\nmode = \"rw-r--r--\"",
                5,
                8,
                "`mode` must be 10 characters",
            ),
            ("path = \"/a\"\nmode = \"xrw-r--r--\"", 5, 8, "no file type"),
            ("path = \"/a\"\nmode = \"-rwzr--r--\"", 5, 8, "has `rwz`"),
            (
                "path = \"/a\"\nexists = false\nmode = \"-rw-r--r--\"",
                6,
                8,
                "`mode` cannot hold",
            ),
            (
                "path = \"/a\"\nexists = false\ncontains = \"x\"",
                6,
                12,
                "`contains` cannot hold",
            ),
            ("path = \"/a\"\ncontains = \"\"", 5, 12, "is empty"),
            (
                "path = \"/a\"\nmatches = \"(\"",
                5,
                11,
                "bad regex in `matches`",
            ),
            (
                "path = \"/a\"\nsize = 3",
                5,
                1,
                "unknown key `size` in [[file]]",
            ),
            ("uid = 0", 3, 1, "has no `path`"),
            (
                "path = \"/a\"\ncontains = \"x\"\nmatches = \"y\"",
                3,
                1,
                "both `contains` and `matches`",
            ),
        ];
        for (body, line, column, expected) in cases {
            let (found_line, found_column, message) =
                invalid(&format!("{MINIMAL}[[file]]\n{body}\n"));
            assert_eq!(
                (found_line, found_column),
                (line, column),
                "{body}: {message}"
            );
            assert!(message.contains(expected), "{body}: {message}");
        }
        let (line, _, message) = invalid(&format!(
            "{MINIMAL}[[file]]\npath = \"/a\"\n[[file]]\npath = \"/a\"\n"
        ));
        assert_eq!(line, 5);
        assert!(
            message.contains("already checked by an earlier [[file]]"),
            "{message}"
        );
    }
}
