//! The documentation against the parser: every key `agent check` accepts in `spec.toml`
//! and `agent.toml` is in the user guide's TOML blocks (docs/guide.md), every key there
//! is one the parser accepts, and every TOML block of README.md and docs/ is a spec or
//! a config `agent check` accepts as written.
//!
//! The accepted keys are the parser's own: `agent check` on a file with an unknown key in
//! a table names the keys that table takes, so the list is never kept by hand here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::support::*;

/// A key no table takes, put in each table to make the parser list the ones it does.
const UNKNOWN: &str = "zz_not_a_key";

/// What a spec needs to parse; prepended to the spec fragments the docs show.
const SPEC_HEADER: &str = "prompt = \"p\"\nconditions = \"c\"\n";

/// A spec that passes `agent check`, for checking config files.
const SPEC_WITH_A_CHECK: &str = "prompt = \"p\"\nconditions = \"c\"\n[[check]]\nexit_code = 0\n";

/// The tables of a config file; any other top-level table makes a block a spec.
const CONFIG_TABLES: [&str; 6] = ["model", "docker", "limits", "bundle", "prompts", "publish"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Spec,
    Config,
}

/// Every table of both files, by its dotted path (`""` is the top level, arrays of
/// tables and inline tables in arrays by their key: `case.check`, `docker.engines`),
/// and the text that puts [`UNKNOWN`] into it.
fn probes() -> Vec<(Kind, &'static str, String)> {
    let spec = |path, body: &str| (Kind::Spec, path, format!("{SPEC_HEADER}{body}"));
    let config = |path, body: &str| (Kind::Config, path, body.to_owned());
    let table = |header: &str| format!("{header}\n{UNKNOWN} = 1\n");
    vec![
        spec("", &format!("{UNKNOWN} = 1\n")),
        spec("limits", &table("[limits]")),
        spec("run", &table("[run]")),
        spec("check", &table("[[check]]")),
        spec("case", &table("[[case]]")),
        spec(
            "case.check",
            &table("[[case]]\nname = \"a\"\n[[case.check]]"),
        ),
        spec("image", &table("[image]")),
        spec("file", &table("[[file]]")),
        spec("service", &table("[service]")),
        spec("probe", &table("[[probe]]")),
        spec("suite", &table("[[suite]]")),
        config("", &format!("{UNKNOWN} = 1\n")),
        config("model", &table("[model]")),
        config("docker", &table("[docker]")),
        config(
            "docker.engines",
            &format!("[docker]\nengines = [{{ url = \"unix:///x.sock\", {UNKNOWN} = 1 }}]\n"),
        ),
        config("limits", &table("[limits]")),
        config("bundle", &table("[bundle]")),
        config("prompts", &table("[prompts]")),
        config("publish", &table("[publish]")),
    ]
}

type Keys = BTreeMap<(Kind, String), BTreeSet<String>>;

/// The keys the parser accepts, table by table, as `agent check` names them.
async fn accepted_keys() -> Keys {
    let workspace = Workspace::new("http://127.0.0.1:9/v1", "", "");
    let mut accepted = Keys::new();
    for (kind, path, text) in probes() {
        let (config, spec) = match kind {
            Kind::Spec => (String::new(), text),
            Kind::Config => (text, SPEC_WITH_A_CHECK.to_owned()),
        };
        std::fs::write(workspace.path().join("probe-config.toml"), config).unwrap();
        let spec = workspace.spec("probe", &spec);
        let output = agent(
            &workspace,
            &[
                "check",
                "--config",
                "probe-config.toml",
                spec.to_str().unwrap(),
            ],
        )
        .await;
        output.assert_code(2);
        let keys = listed_keys(&output.stderr);
        assert!(
            keys.len() >= 2,
            "`agent check` names the keys of `{path}` ({kind:?}):\n{}",
            output.stderr
        );
        accepted.insert((kind, path.to_owned()), keys);
    }
    accepted
}

/// The keys an unknown-key error lists after "expected" (`expected one of `a`, `b``,
/// `expected `a` or `b``), without the unknown key itself or a did-you-mean.
fn listed_keys(stderr: &str) -> BTreeSet<String> {
    let Some(line) = stderr
        .lines()
        .find(|line| line.contains(&format!("unknown key `{UNKNOWN}`")))
    else {
        return BTreeSet::new();
    };
    let Some((_, expected)) = line.split_once("expected") else {
        return BTreeSet::new();
    };
    let expected = expected.split("did you mean").next().unwrap_or_default();
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The fenced blocks of `language` in a Markdown text, with the line each starts on.
/// The blocks fenced exactly as ```` ```toml ```` are agent's own files; another tool's
/// TOML names its file after the language (```` ```toml .taplo.toml ````) and is left out.
fn fenced_blocks(text: &str, language: &str) -> Vec<(usize, String)> {
    let fence = format!("```{language}");
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (index, line) in text.lines().enumerate() {
        match current.as_mut() {
            None if line.trim_end() == fence => current = Some((index + 1, String::new())),
            None => {}
            Some(_) if line.trim_start().starts_with("```") => {
                blocks.extend(current.take());
            }
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    blocks
}

/// A spec when it holds anything but the tables of a config file.
fn kind_of(table: &toml::Table) -> Kind {
    if !table.is_empty()
        && table
            .keys()
            .all(|key| CONFIG_TABLES.contains(&key.as_str()))
    {
        Kind::Config
    } else {
        Kind::Spec
    }
}

/// Records every key of `table` under `path`, and goes into the values that are
/// tables of the parser's own (not maps such as `env` or `headers`).
fn collect_keys(kind: Kind, path: &str, table: &toml::Table, accepted: &Keys, into: &mut Keys) {
    for (key, value) in table {
        into.entry((kind, path.to_owned()))
            .or_default()
            .insert(key.clone());
        let child = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        if !accepted.contains_key(&(kind, child.clone())) {
            continue;
        }
        let tables: Vec<&toml::Table> = match value {
            toml::Value::Table(inner) => vec![inner],
            toml::Value::Array(items) => items.iter().filter_map(toml::Value::as_table).collect(),
            _ => Vec::new(),
        };
        for inner in tables {
            collect_keys(kind, &child, inner, accepted, into);
        }
    }
}

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository's root")
}

/// Every key the parser accepts is written in a TOML block of the guide, in its own
/// table or in one that takes exactly the same keys (`[[case.check]]` takes those of
/// `[[check]]`); every key the guide writes is accepted where it is written.
#[tokio::test(flavor = "multi_thread")]
async fn every_key_the_parser_accepts_is_in_the_guide_and_every_key_there_is_accepted() {
    let accepted = accepted_keys().await;
    let guide = std::fs::read_to_string(repository_root().join("docs/guide.md")).unwrap();
    let mut documented = Keys::new();
    for (line, block) in fenced_blocks(&guide, "toml") {
        let table: toml::Table = toml::from_str(&block)
            .unwrap_or_else(|error| panic!("docs/guide.md:{line}: not TOML: {error}"));
        collect_keys(kind_of(&table), "", &table, &accepted, &mut documented);
    }

    let mut missing = Vec::new();
    for ((kind, path), keys) in &accepted {
        let written: BTreeSet<&String> = accepted
            .iter()
            .filter(|((other_kind, _), other_keys)| other_kind == kind && *other_keys == keys)
            .filter_map(|(table, _)| documented.get(table))
            .flatten()
            .collect();
        missing.extend(
            keys.iter()
                .filter(|key| !written.contains(key))
                .map(|key| format!("{kind:?} `{path}`: `{key}`")),
        );
    }
    let mut unknown = Vec::new();
    for ((kind, path), keys) in &documented {
        let known = &accepted[&(*kind, path.clone())];
        unknown.extend(
            keys.difference(known)
                .map(|key| format!("{kind:?} `{path}`: `{key}`")),
        );
    }
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "keys the parser accepts that no TOML block of docs/guide.md shows:\n{}\n\
         keys docs/guide.md shows that the parser does not accept:\n{}",
        missing.join("\n"),
        unknown.join("\n")
    );
    assert!(
        accepted.values().map(BTreeSet::len).sum::<usize>() > 100,
        "the parser's tables were all read: {accepted:?}"
    );
}

/// README.md and every Markdown file under docs/.
fn documentation_files() -> Vec<PathBuf> {
    let root = repository_root();
    let mut files = vec![root.join("README.md")];
    files.extend(
        walkdir::WalkDir::new(root.join("docs"))
            .sort_by_file_name()
            .into_iter()
            .filter_map(Result::ok)
            .map(walkdir::DirEntry::into_path)
            .filter(|path| path.extension().is_some_and(|extension| extension == "md")),
    );
    files
}

/// The files a block names (inputs, structure-test files, a suite's files, prompt
/// templates), made in `folder` so that `agent check` finds them.
fn make_named_files(folder: &Path, table: &toml::Table) {
    let strings = |value: Option<&toml::Value>| -> Vec<String> {
        value
            .and_then(toml::Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| item.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut files = strings(table.get("inputs"));
    for suite in table
        .get("suite")
        .and_then(toml::Value::as_array)
        .into_iter()
        .flatten()
    {
        files.extend(strings(suite.get("files")));
    }
    if let Some(prompts) = table.get("prompts").and_then(toml::Value::as_table) {
        files.extend(
            prompts
                .values()
                .filter_map(|value| value.as_str().map(str::to_owned)),
        );
    }
    for file in files {
        let path = folder.join(&file);
        let path = if file.ends_with('/') {
            path.join("test_example.py")
        } else {
            path
        };
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "def test_example():\n    pass\n").unwrap();
    }
    for file in strings(table.get("structure_tests")) {
        let yaml =
            "schemaVersion: \"2.0.0\"\ncommandTests:\n  - name: \"runs\"\n    command: \"true\"\n";
        std::fs::write(folder.join(file), yaml).unwrap();
    }
}

/// `agent check` on one block: a spec as it is (a fragment under [`SPEC_HEADER`]), a
/// config with a spec that passes; and the same file through the committed JSON Schema
/// with the independent validator. The failure, if any, as a message.
async fn check_block(workspace: &Workspace, place: &str, block: &str) -> Option<String> {
    let table: toml::Table = match toml::from_str(block) {
        Ok(table) => table,
        Err(error) => return Some(format!("{place}: not TOML: {error}")),
    };
    make_named_files(workspace.path(), &table);
    let (schema, file, args): (&str, PathBuf, Vec<String>) = match kind_of(&table) {
        Kind::Spec => {
            let text = if table.contains_key("prompt") {
                block.to_owned()
            } else {
                format!("{SPEC_HEADER}{block}")
            };
            let spec = workspace.spec("block", &text);
            let args = vec!["check".into(), spec.display().to_string()];
            ("spec", spec, args)
        }
        Kind::Config => {
            let config = workspace.path().join("block-config.toml");
            std::fs::write(&config, block).unwrap();
            let spec = workspace.spec("block", SPEC_WITH_A_CHECK);
            let spec = spec.display().to_string();
            let args = vec![
                "check".into(),
                "--config".into(),
                "block-config.toml".into(),
                spec,
            ];
            ("config", config, args)
        }
    };
    let (valid, said) = crate::schema::validate(schema, std::slice::from_ref(&file));
    if !valid {
        return Some(format!("{place}: the {schema} schema refuses it:\n{said}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = agent(workspace, &args).await;
    (output.code != Some(0)).then(|| format!("{place}: {:?}\n{}", output.code, output.stderr))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_toml_block_of_the_readme_and_the_docs_passes_agent_check_and_the_schema() {
    let root = repository_root();
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in documentation_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.strip_prefix(&root).unwrap().display().to_string();
        for (line, block) in fenced_blocks(&text, "toml") {
            // Each block in a workspace of its own: the files one names are not another's.
            let workspace = Workspace::new("http://127.0.0.1:9/v1", "", "");
            let place = format!("{name}:{line}");
            failures.extend(check_block(&workspace, &place, &block).await);
            checked += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(checked >= 12, "only {checked} TOML blocks were found");
}

/// The README shows the spec `scripts/demo` runs as it is in `fixtures/`.
#[test]
fn the_readme_example_is_the_fixture_the_demo_runs() {
    let root = repository_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let fixture = std::fs::read_to_string(root.join("fixtures/fizzbuzz/spec.toml")).unwrap();
    let blocks = fenced_blocks(&readme, "toml");
    assert_eq!(blocks.first().map(|(_, block)| block), Some(&fixture));
}
