//! container-structure-test configs against the real binary as the oracle: a corpus of
//! configs (`tests/cli/structure/`) in both schemas with passing and failing tests of
//! every kind, license tests and every `containerRunOptions` key, run by
//! `container-structure-test` (its path in `AGENT_TEST_CST`, from
//! `scripts/structure-test-setup`) and by `agent verify --image` on the same images;
//! every test must get the same verdict from both, under `structure_defaults = "cst"`
//! for every config and under `"agent"` for those whose verdict cannot differ.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use agent_testkit::{BuildFrom, docker_build};

use crate::support::*;

/// The corpus: its Dockerfile, every config and the env file one of them reads.
fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/cli/structure")
}

/// Configs whose verdicts depend on `docker run`'s defaults (capabilities, network),
/// which agent's own defaults take away: compared under `"cst"` only.
const CST_ONLY_PREFIX: &str = "cst-";
/// The host variables `run-options-env.yaml` names, given to both tools; the one
/// `run-options-env-unset.yaml` names is taken away from both.
const HOST_VARIABLES: [(&str, &str); 2] = [
    ("STRUCTURE_CORPUS_SECRET", "keep it secret!"),
    ("STRUCTURE_CORPUS_PLAIN", "plain"),
];
const UNSET_VARIABLE: &str = "STRUCTURE_CORPUS_UNSET";

fn cst_binary() -> PathBuf {
    installed(
        "AGENT_TEST_CST",
        "the container-structure-test binary",
        "scripts/structure-test-setup",
    )
}

/// The configs of the corpus, sorted.
fn configs() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(corpus())
        .expect("the corpus folder")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".yaml"))
        .collect();
    names.sort();
    names
}

/// The corpus copied into the workspace, where both tools read it: a relative
/// `envFile` is then the same file for the tool (from its working directory) and for
/// agent (beside the spec).
fn copy_corpus(workspace: &Workspace) {
    for entry in std::fs::read_dir(corpus()).expect("the corpus folder") {
        let entry = entry.expect("entry");
        if entry.path().is_dir() {
            continue;
        }
        std::fs::copy(entry.path(), workspace.path().join(entry.file_name()))
            .expect("corpus file copied");
    }
}

/// The corpus image, built under a tag of its own; removed by [`Image`]'s drop.
struct Image(String);

impl Image {
    fn build() -> Image {
        let tag = format!("agent-test/structure:{}", std::process::id());
        docker_build(
            &tag,
            Some("dev.agent.test=structure"),
            BuildFrom::Folder(&corpus()),
        );
        Image(tag)
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", "-f", &self.0]).output();
    }
}

/// Verdicts of one config: (test name, passed), in any order; names may repeat
/// (every license test is `License Test`).
type Verdicts = Vec<(String, bool)>;

/// The real tool's verdict on each test of `config` (in the workspace). Its
/// metadata test is one verdict, named `Metadata Test`.
fn oracle(cst: &Path, workspace: &Workspace, image: &str, config: &str) -> Verdicts {
    let mut command = Command::new(cst);
    command
        .args([
            "test", "--image", image, "--output", "json", "--config", config,
        ])
        .current_dir(workspace.path())
        .env_remove(UNSET_VARIABLE);
    for (name, value) in HOST_VARIABLES {
        command.env(name, value);
    }
    let output = command.output().expect("container-structure-test runs");
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
            panic!(
                "container-structure-test prints JSON for {config} ({error}): {}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        });
    report["Results"]
        .as_array()
        .expect("Results")
        .iter()
        .map(|result| {
            let name = result["Name"].as_str().expect("Name");
            let name = [
                "Command Test: ",
                "File Existence Test: ",
                "File Content Test: ",
            ]
            .iter()
            .find_map(|prefix| name.strip_prefix(prefix))
            .unwrap_or(name);
            (name.to_owned(), result["Pass"].as_bool().expect("Pass"))
        })
        .collect()
}

/// The real tool's verdicts on every config, four configs at a time.
fn oracle_all(cst: &Path, workspace: &Workspace, image: &str) -> BTreeMap<String, Verdicts> {
    let names = configs();
    let mut verdicts = BTreeMap::new();
    for chunk in names.chunks(4) {
        std::thread::scope(|scope| {
            let running: Vec<_> = chunk
                .iter()
                .map(|config| {
                    scope.spawn(move || (config.clone(), oracle(cst, workspace, image, config)))
                })
                .collect();
            for handle in running {
                let (config, found) = handle.join().expect("oracle thread");
                verdicts.insert(config, found);
            }
        });
    }
    verdicts
}

/// The spec that lists `configs` under `defaults`, host options allowed.
fn spec_text(configs: &[&String], defaults: &str) -> String {
    let listed: Vec<String> = configs.iter().map(|name| format!("{name:?}")).collect();
    format!(
        "prompt = \"p\"\nconditions = \"c\"\nstructure_defaults = \"{defaults}\"\nstructure_allow_host = true\nstructure_tests = [{}]\n",
        listed.join(", ")
    )
}

/// agent's verdicts by config under `defaults`: (test name, passed), the metadata
/// checks folded into one `Metadata Test` verdict as the tool gives it.
async fn agent_verdicts(
    workspace: &Workspace,
    image: &str,
    defaults: &str,
    configs: &[&String],
) -> BTreeMap<String, Verdicts> {
    let spec = workspace.spec(
        &format!("structure-oracle-{defaults}"),
        &spec_text(configs, defaults),
    );
    let mut command = agent_command(
        workspace,
        &["verify", "--image", image, spec.to_str().unwrap(), "--json"],
    );
    command.env_remove(UNSET_VARIABLE);
    for (name, value) in HOST_VARIABLES {
        command.env(name, value);
    }
    let output = run_agent(&mut command).await;
    assert!(matches!(output.code, Some(0 | 1)), "{}", output.stderr);
    let verdict: serde_json::Value = serde_json::from_str(&output.stdout).expect("verify --json");
    let mut by_config: BTreeMap<String, Verdicts> = BTreeMap::new();
    for check in verdict["result"]["checks"].as_array().expect("checks") {
        let group = check["group"].as_str().expect("group").to_owned();
        let name = check["name"].as_str().expect("name");
        let passed = check["passed"].as_bool().expect("passed");
        let tests = by_config.entry(group).or_default();
        if name.starts_with("metadata: ") {
            match tests.iter_mut().find(|(name, _)| name == "Metadata Test") {
                Some((_, all)) => *all &= passed,
                None => tests.push(("Metadata Test".to_owned(), passed)),
            }
        } else {
            tests.push((name.to_owned(), passed));
        }
    }
    by_config
}

/// One config's comparison: how many verdicts the tool gave, how many of agent's
/// equal them, and each difference worded.
struct Agreement {
    config: String,
    tests: usize,
    agreeing: usize,
    differ: Vec<String>,
}

/// Where agent's verdicts differ from the tool's, config by config.
fn differences(
    label: &str,
    theirs: &BTreeMap<String, Verdicts>,
    ours: &BTreeMap<String, Verdicts>,
    configs: &[&String],
) -> Vec<Agreement> {
    let by_name = |verdicts: Option<&Verdicts>| {
        let mut named: BTreeMap<String, Vec<bool>> = BTreeMap::new();
        for (name, passed) in verdicts.into_iter().flatten() {
            named.entry(name.clone()).or_default().push(*passed);
        }
        named.values_mut().for_each(|verdicts| verdicts.sort());
        named
    };
    let mut rows = Vec::new();
    for config in configs {
        let (theirs, mine) = (by_name(theirs.get(*config)), by_name(ours.get(*config)));
        let mut row = Agreement {
            config: format!("{label} {config}"),
            tests: theirs.values().map(Vec::len).sum(),
            agreeing: 0,
            differ: Vec::new(),
        };
        for name in theirs
            .keys()
            .chain(mine.keys().filter(|name| !theirs.contains_key(*name)))
        {
            let (expected, found) = (theirs.get(name), mine.get(name));
            if expected == found {
                row.agreeing += expected.map_or(0, Vec::len);
            } else {
                row.differ.push(format!(
                    "{}: `{name}`: container-structure-test {}, agent {}",
                    row.config,
                    verdicts(expected),
                    verdicts(found)
                ));
            }
        }
        rows.push(row);
    }
    rows
}

fn verdicts(found: Option<&Vec<bool>>) -> String {
    match found {
        None => "has no verdict".to_owned(),
        Some(all) => all
            .iter()
            .map(|passed| if *passed { "passes" } else { "fails" })
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Every config under `"cst"` and every one but the `cst-` ones under `"agent"`,
/// against the tool's verdicts on `image`.
async fn compare_on(cst: &Path, workspace: &Workspace, image: &str) -> Vec<Agreement> {
    let names = configs();
    let all: Vec<&String> = names.iter().collect();
    let same_under_agent: Vec<&String> = names
        .iter()
        .filter(|name| !name.starts_with(CST_ONLY_PREFIX))
        .collect();
    let theirs = oracle_all(cst, workspace, image);
    let under_cst = agent_verdicts(workspace, image, "cst", &all).await;
    let under_agent = agent_verdicts(workspace, image, "agent", &same_under_agent).await;
    let mut rows = differences(&format!("{image} cst"), &theirs, &under_cst, &all);
    rows.extend(differences(
        &format!("{image} agent"),
        &theirs,
        &under_agent,
        &same_under_agent,
    ));
    rows
}

#[tokio::test(flavor = "multi_thread")]
async fn every_structure_test_gets_the_verdict_of_the_real_container_structure_test() {
    require_engine();
    let cst = cst_binary();
    let image = Image::build();
    let workspace = Workspace::new("http://127.0.0.1:9/v1", "", "");
    copy_corpus(&workspace);
    let mut rows = compare_on(&cst, &workspace, &image.0).await;
    // The bare base image: root, no workdir, ports, entrypoint or license files.
    rows.extend(compare_on(&cst, &workspace, agent_testkit::BUSYBOX_IMAGE).await);
    // The agreement table, for `--no-capture`.
    println!("| image and defaults, config | tests | agent = binary |");
    println!("|---|---|---|");
    for row in &rows {
        println!("| {} | {} | {} |", row.config, row.tests, row.agreeing);
    }
    let compared: usize = rows.iter().map(|row| row.tests).sum();
    let differ: Vec<&String> = rows.iter().flat_map(|row| &row.differ).collect();
    assert!(compared > 500, "{compared} verdicts compared");
    assert!(
        rows.iter()
            .all(|row| row.tests > 0 || row.config.contains("metadata-")),
        "every config but an empty metadata test has verdicts"
    );
    assert!(
        differ.is_empty(),
        "{} of {compared} verdicts differ from container-structure-test's:\n{}",
        differ.len(),
        differ
            .iter()
            .map(|line| line.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    for spec_label in [
        "dev.agent.spec=structure-oracle-cst",
        "dev.agent.spec=structure-oracle-agent",
    ] {
        assert_eq!(containers_with(spec_label), Vec::<String>::new());
        assert_eq!(images_with(spec_label), Vec::<String>::new());
    }
}

/// Under agent's own defaults, `capabilities` are added to an empty set (the tool's
/// own runs change nothing: see `cst-capabilities.yaml`): root has those and no other.
#[tokio::test(flavor = "multi_thread")]
async fn capabilities_under_agents_defaults_are_the_only_ones() {
    require_engine();
    let workspace = Workspace::new("http://127.0.0.1:9/v1", "", "");
    std::fs::copy(
        corpus().join("agent-only/capabilities.yaml"),
        workspace.path().join("capabilities.yaml"),
    )
    .expect("config copied");
    let spec = workspace.spec(
        "structure-capabilities",
        "prompt = \"p\"\nconditions = \"c\"\nstructure_tests = [\"capabilities.yaml\"]\n",
    );
    let output = verify_image(&workspace, agent_testkit::BUSYBOX_IMAGE, &spec, &["--json"]).await;
    output.assert_code(0);
    let verdict: serde_json::Value = serde_json::from_str(&output.stdout).expect("verify --json");
    let checks = verdict["result"]["checks"].as_array().expect("checks");
    assert_eq!(checks.len(), 3, "{checks:?}");
    assert!(
        checks.iter().all(|check| check["passed"] == true),
        "{checks:?}"
    );
}

/// `privileged` and `bindMounts` hand a model-built image the host: without the
/// spec's opt-in, the config is refused before anything runs, saying how to opt in.
#[tokio::test(flavor = "multi_thread")]
async fn host_run_options_are_refused_without_structure_allow_host() {
    let workspace = Workspace::new("http://127.0.0.1:9/v1", "", "");
    copy_corpus(&workspace);
    for (config, key) in [
        ("host-privileged.yaml", "privileged"),
        ("host-bind-mounts.yaml", "bindMounts"),
    ] {
        let spec = workspace.spec(
            "structure-host",
            &format!("prompt = \"p\"\nconditions = \"c\"\nstructure_tests = [\"{config}\"]\n"),
        );
        let output = verify_image(&workspace, agent_testkit::BUSYBOX_IMAGE, &spec, &[]).await;
        output.assert_code(2);
        let expected = format!(
            "`{key}` in containerRunOptions is run only with `structure_allow_host = true` in the spec"
        );
        output.assert_stderr_has(&expected);
        output.assert_stderr_has("add `structure_allow_host = true` to the spec");
    }
}
