//! The code bundle: the Dockerfile and files the model wrote, merged across repairs,
//! and the checks that make a reply safe to write and to tar.
//!
//! Everything here treats the model's reply as untrusted: no path is written or tarred
//! before it passes [`Bundle::apply`].

use std::collections::{BTreeMap, BTreeSet};

use agent_model::CodeBundle;
use agent_spec::BundleLimits;

pub const DOCKERFILE: &str = "Dockerfile";

/// The model's current files. `Dockerfile` is kept apart from the other files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bundle {
    pub dockerfile: String,
    pub files: BTreeMap<String, String>,
}

/// What the bundle may not touch and how large it may be.
pub struct Rules<'a> {
    pub limits: &'a BundleLimits,
    /// Context paths of the spec's inputs: the model may not write or delete them.
    pub inputs: &'a BTreeSet<String>,
    /// Empty: any `FROM`.
    pub allowed_base_images: &'a [String],
}

impl Bundle {
    /// Applies a reply to `previous` (`None` for the first reply) per the merge rules:
    /// a `null` dockerfile keeps the previous one, listed files replace theirs,
    /// `delete` removes, the rest is kept. Returns every problem found, so one round of
    /// feedback can name them all.
    pub fn apply(
        previous: Option<&Bundle>,
        reply: &CodeBundle,
        rules: &Rules<'_>,
    ) -> Result<Bundle, Vec<String>> {
        let mut problems = Vec::new();
        let mut bundle = previous.cloned().unwrap_or_default();

        match (&reply.dockerfile, previous) {
            (Some(text), _) if text.trim().is_empty() => {
                problems.push("`dockerfile` is empty".to_string());
            }
            (Some(text), _) => bundle.dockerfile = text.clone(),
            (None, None) => problems.push(
                "`dockerfile` is null, but there is no earlier Dockerfile to keep: send the full Dockerfile"
                    .to_string(),
            ),
            (None, Some(_)) => {}
        }

        let mut seen = BTreeSet::new();
        for (index, file) in reply.files.iter().enumerate() {
            let label = format!("files[{index}]");
            match check_path(&file.filename, rules) {
                Err(problem) => problems.push(format!("{label}: {problem}")),
                Ok(()) if !seen.insert(file.filename.as_str()) => problems.push(format!(
                    "{label}: `{}` is listed twice",
                    printable(&file.filename)
                )),
                Ok(()) => {
                    if file.content.len() as u64 > rules.limits.max_file_bytes {
                        problems.push(format!(
                            "{label}: `{}` has {} bytes; the limit per file is {}",
                            file.filename,
                            file.content.len(),
                            rules.limits.max_file_bytes
                        ));
                    }
                    bundle
                        .files
                        .insert(file.filename.clone(), file.content.clone());
                }
            }
        }
        for (index, path) in reply.delete.iter().enumerate() {
            if let Err(problem) = check_path(path, rules) {
                problems.push(format!("delete[{index}]: {problem}"));
            } else if seen.contains(path.as_str()) {
                problems.push(format!(
                    "delete[{index}]: `{path}` is both written and deleted"
                ));
            } else {
                bundle.files.remove(path);
            }
        }

        problems.extend(size_problems(&bundle, rules));
        problems.extend(folder_clashes(&bundle, rules.inputs));
        if !bundle.dockerfile.is_empty() {
            problems.extend(check_base_images(
                &bundle.dockerfile,
                rules.allowed_base_images,
            ));
        }

        if problems.is_empty() {
            Ok(bundle)
        } else {
            Err(problems)
        }
    }

    pub fn total_bytes(&self) -> u64 {
        self.dockerfile.len() as u64
            + self
                .files
                .values()
                .map(|content| content.len() as u64)
                .sum::<u64>()
    }

    /// Every file of the build context: the Dockerfile, the bundle's files, and the
    /// inputs' contents.
    pub fn context_files(&self, inputs: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
        let mut files: BTreeMap<String, Vec<u8>> = inputs.clone();
        for (path, content) in &self.files {
            files.insert(path.clone(), content.clone().into_bytes());
        }
        files.insert(DOCKERFILE.to_string(), self.dockerfile.clone().into_bytes());
        files
    }
}

/// A path used both as a file and as a folder (`a` and `a/b`) cannot be put in one
/// tree: name each clash, among the bundle's files and the spec's inputs.
fn folder_clashes(bundle: &Bundle, inputs: &BTreeSet<String>) -> Vec<String> {
    let files: BTreeSet<&str> = bundle
        .files
        .keys()
        .map(String::as_str)
        .chain(inputs.iter().map(String::as_str))
        .chain(std::iter::once(DOCKERFILE))
        .collect();
    let mut problems = Vec::new();
    for path in &files {
        let mut folder = *path;
        while let Some((parent, _)) = folder.rsplit_once('/') {
            if files.contains(parent) {
                problems.push(format!(
                    "`{}` is a file, so `{}` cannot be inside it",
                    printable(parent),
                    printable(path)
                ));
            }
            folder = parent;
        }
    }
    problems
}

/// The bundle's sizes against the limits: the Dockerfile, the count, the total.
fn size_problems(bundle: &Bundle, rules: &Rules<'_>) -> Vec<String> {
    let mut problems = Vec::new();
    if bundle.dockerfile.len() as u64 > rules.limits.max_file_bytes {
        problems.push(format!(
            "the Dockerfile has {} bytes; the limit per file is {}",
            bundle.dockerfile.len(),
            rules.limits.max_file_bytes
        ));
    }
    if bundle.files.len() > rules.limits.max_files {
        problems.push(format!(
            "the bundle has {} files; the limit is {}",
            bundle.files.len(),
            rules.limits.max_files
        ));
    }
    let total = bundle.total_bytes();
    if total > rules.limits.max_total_bytes {
        problems.push(format!(
            "the bundle has {total} bytes in all; the limit is {}",
            rules.limits.max_total_bytes
        ));
    }
    problems
}

/// Makes a name safe to quote back: control characters escaped, length capped.
fn printable(name: &str) -> String {
    let escaped: String = name.escape_debug().collect();
    if escaped.chars().count() > 120 {
        format!("{}…", escaped.chars().take(120).collect::<String>())
    } else {
        escaped
    }
}

/// A path may be written into the run directory and the tar only when this passes.
fn check_path(path: &str, rules: &Rules<'_>) -> Result<(), String> {
    let shown = printable(path);
    if path.is_empty() {
        return Err("the file name is empty".to_string());
    }
    if path.contains('\0') {
        return Err(format!("`{shown}` contains a NUL byte"));
    }
    if path.chars().any(char::is_control) {
        return Err(format!("`{shown}` contains a control character"));
    }
    if path.len() > rules.limits.max_path_bytes {
        return Err(format!(
            "`{shown}` is {} bytes long; the limit is {}",
            path.len(),
            rules.limits.max_path_bytes
        ));
    }
    if path.contains('\\') {
        return Err(format!(
            "`{shown}` contains a backslash: use `/` between folders"
        ));
    }
    if path.starts_with('/') {
        return Err(format!(
            "`{shown}` is absolute: paths are relative to the build context"
        ));
    }
    for component in path.split('/') {
        match component {
            ".." => return Err(format!("`{shown}` contains `..`")),
            "" | "." => {
                return Err(format!(
                    "`{shown}` has an empty or `.` part: write plain relative paths like `src/main.py`"
                ));
            }
            _ if component.len() > 255 => {
                return Err(format!("`{shown}` has a part longer than 255 bytes"));
            }
            _ => {}
        }
    }
    if path.eq_ignore_ascii_case(DOCKERFILE) {
        return Err(format!(
            "`{shown}` clashes with the Dockerfile: put it in the `dockerfile` field"
        ));
    }
    if rules.inputs.contains(path) {
        return Err(format!(
            "`{shown}` is one of the spec's inputs, which may not be changed or deleted"
        ));
    }
    Ok(())
}

/// Problems with the `FROM` lines: none at all, or an image outside the allowed list.
pub fn check_base_images(dockerfile: &str, allowed: &[String]) -> Vec<String> {
    let froms = from_images(dockerfile);
    if froms.is_empty() {
        return vec!["the Dockerfile has no `FROM` line".to_string()];
    }
    if allowed.is_empty() {
        return Vec::new();
    }
    let allowed_normalised: BTreeSet<String> =
        allowed.iter().map(|image| normalise_image(image)).collect();
    let mut stages = BTreeSet::new();
    let mut problems = Vec::new();
    for (image, stage) in froms {
        let lowered = image.to_ascii_lowercase();
        let permitted = stages.contains(&lowered)
            || lowered == "scratch"
            || allowed_normalised.contains(&normalise_image(&image));
        if !permitted {
            problems.push(format!(
                "`FROM {image}` is not allowed: build FROM one of {}",
                allowed
                    .iter()
                    .map(|image| format!("`{image}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if let Some(stage) = stage {
            stages.insert(stage.to_ascii_lowercase());
        }
    }
    problems
}

/// `(image, stage name)` of each `FROM`, flags skipped.
pub(crate) fn from_images(dockerfile: &str) -> Vec<(String, Option<String>)> {
    agent_sandbox::dockerfile_instructions(dockerfile)
        .iter()
        .filter(|instruction| instruction.keyword().eq_ignore_ascii_case("FROM"))
        .filter_map(|instruction| {
            let mut words = instruction
                .text
                .split_whitespace()
                .skip(1)
                .skip_while(|word| word.starts_with("--"));
            let image = words.next()?.to_string();
            let stage = match (words.next(), words.next()) {
                (Some(keyword), Some(name)) if keyword.eq_ignore_ascii_case("AS") => {
                    Some(name.to_string())
                }
                _ => None,
            };
            Some((image, stage))
        })
        .collect()
}

/// `python` → `docker.io/library/python:latest`, so that equal references compare equal.
pub(crate) fn normalise_image(image: &str) -> String {
    let image = image.trim().to_ascii_lowercase();
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name.to_string(), Some(digest.to_string())),
        None => (image, None),
    };
    let last_slash = name.rfind('/').map_or(0, |index| index + 1);
    let has_tag = name[last_slash..].contains(':');
    let mut name = if has_tag || digest.is_some() {
        name
    } else {
        format!("{name}:latest")
    };
    let first = name.split('/').next().unwrap_or_default();
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if !has_registry {
        name = if name.contains('/') {
            format!("docker.io/{name}")
        } else {
            format!("docker.io/library/{name}")
        };
    }
    match digest {
        Some(digest) => format!("{name}@{digest}"),
        None => name,
    }
}

#[cfg(test)]
mod tests {
    use agent_model::BundleFile;

    use super::*;

    fn reply(dockerfile: Option<&str>, files: &[(&str, &str)], delete: &[&str]) -> CodeBundle {
        CodeBundle {
            summary: String::new(),
            dockerfile: dockerfile.map(str::to_string),
            files: files
                .iter()
                .map(|(filename, content)| BundleFile {
                    filename: filename.to_string(),
                    content: content.to_string(),
                })
                .collect(),
            delete: delete.iter().map(|path| path.to_string()).collect(),
        }
    }

    fn apply_with(
        previous: Option<&Bundle>,
        reply: &CodeBundle,
        limits: &BundleLimits,
        allowed: &[String],
    ) -> Result<Bundle, Vec<String>> {
        let inputs = BTreeSet::from(["data.csv".to_string()]);
        let rules = Rules {
            limits,
            inputs: &inputs,
            allowed_base_images: allowed,
        };
        Bundle::apply(previous, reply, &rules)
    }

    fn apply(previous: Option<&Bundle>, reply: &CodeBundle) -> Result<Bundle, Vec<String>> {
        apply_with(previous, reply, &BundleLimits::default(), &[])
    }

    const DOCKER: &str = "FROM python:3.10-slim\nCOPY . /app\nCMD [\"python\", \"/app/main.py\"]\n";

    #[test]
    fn first_reply_becomes_the_bundle() {
        let bundle = apply(None, &reply(Some(DOCKER), &[("main.py", "print(1)")], &[])).unwrap();
        assert_eq!(bundle.dockerfile, DOCKER);
        assert_eq!(bundle.files["main.py"], "print(1)");
    }

    #[test]
    fn repair_with_null_dockerfile_keeps_it_replaces_listed_deletes_and_keeps_the_rest() {
        let first = apply(
            None,
            &reply(
                Some(DOCKER),
                &[("main.py", "v1"), ("util.py", "u"), ("old.py", "o")],
                &[],
            ),
        )
        .unwrap();
        let second = apply(
            Some(&first),
            &reply(None, &[("main.py", "v2"), ("new.py", "n")], &["old.py"]),
        )
        .unwrap();
        assert_eq!(second.dockerfile, DOCKER);
        assert_eq!(
            second.files,
            BTreeMap::from([
                ("main.py".to_string(), "v2".to_string()),
                ("new.py".to_string(), "n".to_string()),
                ("util.py".to_string(), "u".to_string()),
            ])
        );
    }

    #[test]
    fn repair_with_dockerfile_replaces_it() {
        let first = apply(None, &reply(Some(DOCKER), &[], &[])).unwrap();
        let second = apply(
            Some(&first),
            &reply(Some("FROM python:3.10-slim\n"), &[], &[]),
        )
        .unwrap();
        assert_eq!(second.dockerfile, "FROM python:3.10-slim\n");
    }

    #[test]
    fn first_reply_without_dockerfile_is_rejected() {
        let problems = apply(None, &reply(None, &[("main.py", "x")], &[])).unwrap_err();
        assert!(
            problems[0].contains("no earlier Dockerfile"),
            "{problems:?}"
        );
    }

    #[test]
    fn hostile_paths_are_rejected_and_named() {
        let cases = [
            ("/etc/passwd", "absolute"),
            ("../escape.py", "`..`"),
            ("a/../../b", "`..`"),
            ("", "empty"),
            ("a\0b", "NUL"),
            ("dir\\file.py", "backslash"),
            ("Dockerfile", "clashes with the Dockerfile"),
            ("dockerfile", "clashes with the Dockerfile"),
            ("a//b", "empty or `.` part"),
            ("./a", "empty or `.` part"),
            ("data.csv", "inputs"),
            ("bad\nname", "control character"),
        ];
        for (path, expected) in cases {
            let problems = apply(None, &reply(Some(DOCKER), &[(path, "x")], &[])).unwrap_err();
            assert!(
                problems.iter().any(|problem| problem.contains(expected)),
                "{path:?}: {problems:?}"
            );
        }
        let long = "a".repeat(300);
        let problems = apply(None, &reply(Some(DOCKER), &[(&long, "x")], &[])).unwrap_err();
        assert!(problems[0].contains("bytes long"), "{problems:?}");
    }

    #[test]
    fn deleting_outside_the_context_or_an_input_is_rejected() {
        let first = apply(None, &reply(Some(DOCKER), &[("a.py", "x")], &[])).unwrap();
        for path in ["../../etc/passwd", "/tmp/x", "data.csv", "Dockerfile"] {
            assert!(
                apply(Some(&first), &reply(None, &[], &[path])).is_err(),
                "{path}"
            );
        }
    }

    #[test]
    fn a_path_used_as_file_and_folder_is_rejected() {
        let problems = apply(
            None,
            &reply(Some(DOCKER), &[("a", "1"), ("a/b.py", "2")], &[]),
        )
        .unwrap_err();
        assert!(problems[0].contains("`a` is a file"), "{problems:?}");
        let problems = apply(None, &reply(Some(DOCKER), &[("data.csv/x", "1")], &[])).unwrap_err();
        assert!(problems[0].contains("`data.csv` is a file"), "{problems:?}");
        let problems =
            apply(None, &reply(Some(DOCKER), &[("Dockerfile/x", "1")], &[])).unwrap_err();
        assert!(
            problems[0].contains("`Dockerfile` is a file"),
            "{problems:?}"
        );
    }

    #[test]
    fn duplicates_are_rejected() {
        let problems = apply(
            None,
            &reply(Some(DOCKER), &[("a.py", "1"), ("a.py", "2")], &[]),
        )
        .unwrap_err();
        assert!(problems[0].contains("listed twice"), "{problems:?}");
    }

    #[test]
    fn size_and_count_limits_hold() {
        let limits = BundleLimits {
            max_total_bytes: 100,
            max_files: 2,
            max_file_bytes: 60,
            max_path_bytes: 200,
        };
        let big = "x".repeat(61);
        let problems = apply_with(
            None,
            &reply(Some("FROM a\n"), &[("big.py", &big)], &[]),
            &limits,
            &[],
        )
        .unwrap_err();
        assert!(
            problems.iter().any(|p| p.contains("limit per file is 60")),
            "{problems:?}"
        );

        let problems = apply_with(
            None,
            &reply(Some("FROM a\n"), &[("1", "a"), ("2", "b"), ("3", "c")], &[]),
            &limits,
            &[],
        )
        .unwrap_err();
        assert!(
            problems.iter().any(|p| p.contains("3 files")),
            "{problems:?}"
        );

        let fifty = "y".repeat(50);
        let problems = apply_with(
            None,
            &reply(Some("FROM a\n"), &[("1", &fifty), ("2", &fifty)], &[]),
            &limits,
            &[],
        );
        assert!(
            problems.unwrap_err().iter().any(|p| p.contains("in all")),
            "total limit"
        );
    }

    #[test]
    fn from_outside_the_allowed_list_is_rejected() {
        let allowed = vec!["python:3.10-slim".to_string()];
        let ok = apply_with(
            None,
            &reply(
                Some("FROM docker.io/library/python:3.10-slim AS build\nFROM build\n"),
                &[],
                &[],
            ),
            &BundleLimits::default(),
            &allowed,
        );
        assert!(ok.is_ok(), "{ok:?}");
        let problems = apply_with(
            None,
            &reply(Some("from --platform=linux/amd64 ubuntu:22.04\n"), &[], &[]),
            &BundleLimits::default(),
            &allowed,
        )
        .unwrap_err();
        assert!(
            problems[0].contains("`FROM ubuntu:22.04` is not allowed"),
            "{problems:?}"
        );
        // A comment line inside a continuation is skipped, as the builder skips it.
        let problems = check_base_images("FROM \\\n# base\nubuntu:22.04\n", &allowed);
        assert!(
            problems[0].contains("`FROM ubuntu:22.04` is not allowed"),
            "{problems:?}"
        );
        let problems = check_base_images("RUN echo\n", &[]);
        assert!(problems[0].contains("no `FROM`"));
    }

    #[test]
    fn image_references_normalise() {
        assert_eq!(normalise_image("python"), "docker.io/library/python:latest");
        assert_eq!(
            normalise_image("python:3.10"),
            "docker.io/library/python:3.10"
        );
        assert_eq!(normalise_image("me/app:1"), "docker.io/me/app:1");
        assert_eq!(
            normalise_image("localhost:5000/app"),
            "localhost:5000/app:latest"
        );
        assert_eq!(
            normalise_image("agent-base/python:3.11"),
            "docker.io/agent-base/python:3.11"
        );
    }
}
