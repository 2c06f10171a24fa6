//! container-structure-test configs against the real binary as the oracle: a corpus of
//! configs (`tests/cli/structure/`) with passing and failing tests of every kind, run
//! by `container-structure-test` (its path in `AGENT_TEST_CST`, from
//! `scripts/structure-test-setup`) and by `agent verify --image` on the same images;
//! every test must get the same verdict from both.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

/// The corpus: its Dockerfile and every config.
fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/cli/structure")
}

fn cst_binary() -> PathBuf {
    let path = std::env::var_os("AGENT_TEST_CST").expect(
        "AGENT_TEST_CST must name the container-structure-test binary: `export AGENT_TEST_CST=$(scripts/structure-test-setup)`",
    );
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "AGENT_TEST_CST `{}` is not a file",
        path.display()
    );
    path
}

/// The configs of the corpus, sorted: `structure.yaml` and one per metadata field.
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

/// The corpus image, built under a tag of its own; removed by [`Image`]'s drop.
struct Image(String);

impl Image {
    fn build() -> Image {
        let tag = format!("agent-test/structure:{}", std::process::id());
        let output = Command::new("docker")
            .args([
                "build",
                "-q",
                "-t",
                &tag,
                "--label",
                "dev.agent.test=structure",
            ])
            .arg(corpus())
            .output()
            .expect("docker build runs");
        assert!(
            output.status.success(),
            "the corpus image builds: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Image(tag)
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", "-f", &self.0]).output();
    }
}

/// The real tool's verdict on each test of `config`: (test name, passed). Its
/// metadata test is one verdict, named `Metadata Test`.
fn oracle(cst: &Path, image: &str, config: &Path) -> Vec<(String, bool)> {
    let output = Command::new(cst)
        .args(["test", "--image", image, "--output", "json", "--config"])
        .arg(config)
        .output()
        .expect("container-structure-test runs");
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
            panic!(
                "container-structure-test prints JSON ({error}): {}\n{}",
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

/// agent's verdicts by config: (test name, passed), the metadata checks folded into
/// one `Metadata Test` verdict as the tool gives it.
async fn agent_verdicts(
    workspace: &Workspace,
    image: &str,
) -> BTreeMap<String, Vec<(String, bool)>> {
    let names = configs();
    let listed: Vec<String> = names.iter().map(|name| format!("{name:?}")).collect();
    let spec = workspace.spec(
        "structure-oracle",
        &format!(
            "prompt = \"p\"\nconditions = \"c\"\nstructure_tests = [{}]\n",
            listed.join(", ")
        ),
    );
    for name in &names {
        std::fs::copy(corpus().join(name), workspace.path().join(name)).expect("config copied");
    }
    let output = agent(
        workspace,
        &["verify", "--image", image, spec.to_str().unwrap(), "--json"],
    )
    .await;
    assert!(matches!(output.code, Some(0 | 1)), "{}", output.stderr);
    let verdict: serde_json::Value = serde_json::from_str(&output.stdout).expect("verify --json");
    let mut by_config: BTreeMap<String, Vec<(String, bool)>> = BTreeMap::new();
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

/// Every config's verdicts from both; the differences, worded.
async fn differences(cst: &Path, workspace: &Workspace, image: &str) -> (usize, Vec<String>) {
    let ours = agent_verdicts(workspace, image).await;
    let mut compared = 0;
    let mut differ = Vec::new();
    for config in configs() {
        let mut theirs = oracle(cst, image, &corpus().join(&config));
        let mut mine = ours.get(&config).cloned().unwrap_or_default();
        theirs.sort();
        mine.sort();
        compared += theirs.len();
        for (name, passed) in &theirs {
            match mine.iter().find(|(mine, _)| mine == name) {
                Some((_, ours)) if ours == passed => {}
                Some((_, ours)) => differ.push(format!(
                    "{image} {config}: `{name}`: container-structure-test {}, agent {}",
                    verdict(*passed),
                    verdict(*ours)
                )),
                None => differ.push(format!("{image} {config}: `{name}`: agent has no verdict")),
            }
        }
        for (name, _) in mine
            .iter()
            .filter(|(name, _)| !theirs.iter().any(|(theirs, _)| theirs == name))
        {
            differ.push(format!("{image} {config}: `{name}`: only agent has it"));
        }
    }
    (compared, differ)
}

fn verdict(passed: bool) -> &'static str {
    if passed { "passes" } else { "fails" }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_structure_test_gets_the_verdict_of_the_real_container_structure_test() {
    require_engine();
    let cst = cst_binary();
    let image = Image::build();
    let workspace = Workspace::new("http://127.0.0.1:9/v1", "", "");
    let (compared, mut differ) = differences(&cst, &workspace, &image.0).await;
    // The bare base image: no user, workdir, ports or entrypoint to find.
    let (on_base, differ_on_base) =
        differences(&cst, &workspace, agent_testkit::BUSYBOX_IMAGE).await;
    differ.extend(differ_on_base);
    assert!(
        compared > 60 && on_base > 60,
        "{compared} and {on_base} verdicts compared"
    );
    assert!(
        differ.is_empty(),
        "{} of {} verdicts differ from container-structure-test's:\n{}",
        differ.len(),
        compared + on_base,
        differ.join("\n")
    );
    let spec_label = "dev.agent.spec=structure-oracle";
    assert_eq!(containers_with(spec_label), Vec::<String>::new());
    assert_eq!(images_with(spec_label), Vec::<String>::new());
}
