//! Signed attestations end to end: a real registry behind htpasswd (the one the
//! publishing tests start), keys made by `openssl`, `agent run --sign` pushing a
//! verified image with its Test Result and provenance under cosign's `.att` tag.
//! Checked independently of `agent`'s code by `tests/cli/attest/check.py`
//! (securesystemslib, in the environment `scripts/attest-check-setup` makes, named by
//! `AGENT_TEST_ATTEST_PYTHON`), and by `agent verify --attestation`, which must refuse
//! every tampered copy with its cause.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::publish::{
    Registry, base64_of, docker, docker_config, run_command_with, run_with, short_digest,
};
use crate::support::*;

const USER: &str = "signer";
const PASSWORD: &str = "attest-password-8086";
const SPEC: &str = "prompt = \"Write a Python program that prints attested.\"\nconditions = \"It prints attested.\"\n[[check]]\nname = \"word\"\nstdout_equals = \"attested\"\n[[check]]\nexit_code = 0\n";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
const TEST_RESULT: &str = "https://in-toto.io/attestation/test-result/v0.1";

/// A key pair made by `openssl` in `dir`: (private PEM text, public key file).
fn key_pair(dir: &Path, name: &str) -> (String, PathBuf) {
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    let made = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "EC", "-pkeyopt"])
        .arg("ec_paramgen_curve:P-256")
        .arg("-out")
        .arg(&private)
        .status()
        .expect("openssl runs");
    assert!(made.success(), "openssl genpkey");
    let made = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(&public)
        .status()
        .expect("openssl runs");
    assert!(made.success(), "openssl pkey -pubout");
    let pem = std::fs::read_to_string(&private).expect("the key");
    std::fs::remove_file(&private).expect("the key file goes: it lives in the variable only");
    (pem, public)
}

/// The registry's HTTP API with the test's password.
struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    fn new(registry: &Registry, repository: &str) -> Api {
        Api {
            base: format!("http://{}/v2/{repository}", registry.address()),
            client: reqwest::Client::new(),
        }
    }

    async fn get(&self, path: &str, accept: &str) -> reqwest::Response {
        self.client
            .get(format!("{}/{path}", self.base))
            .header("Accept", accept)
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .expect("the registry answers")
    }

    async fn manifest(&self, reference: &str) -> Value {
        let response = self
            .get(&format!("manifests/{reference}"), OCI_MANIFEST)
            .await;
        assert!(response.status().is_success(), "{reference}: {response:?}");
        response.json().await.expect("a JSON manifest")
    }

    async fn blob(&self, digest: &str) -> Vec<u8> {
        let response = self.get(&format!("blobs/{digest}"), "*/*").await;
        assert!(response.status().is_success(), "{digest}");
        response.bytes().await.expect("the blob").to_vec()
    }

    /// Uploads `bytes` as a blob in one `POST` + `PUT`; its digest.
    async fn upload(&self, bytes: &[u8]) -> String {
        let digest = format!("sha256:{}", agent_loop::sha256_hex(bytes));
        let started = self
            .client
            .post(format!("{}/blobs/uploads/", self.base))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .expect("an upload starts");
        assert_eq!(started.status(), 202);
        let location = started.headers()["location"].to_str().unwrap().to_owned();
        let location = if location.starts_with("http") {
            location
        } else {
            let origin = self.base.split("/v2/").next().unwrap();
            format!("{origin}{location}")
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let put = self
            .client
            .put(format!("{location}{separator}digest={digest}"))
            .basic_auth(USER, Some(PASSWORD))
            .body(bytes.to_vec())
            .send()
            .await
            .expect("the upload ends");
        assert_eq!(put.status(), 201, "{digest}");
        digest
    }

    /// Puts `manifest` under `tag`; its digest.
    async fn put_manifest(&self, tag: &str, manifest: &Value) -> String {
        let body = serde_json::to_vec(manifest).unwrap();
        let response = self
            .client
            .put(format!("{}/manifests/{tag}", self.base))
            .header("Content-Type", OCI_MANIFEST)
            .basic_auth(USER, Some(PASSWORD))
            .body(body.clone())
            .send()
            .await
            .expect("the registry answers");
        assert!(response.status().is_success(), "{tag}: {response:?}");
        format!("sha256:{}", agent_loop::sha256_hex(&body))
    }

    /// A tiny image of its own under `tag` (a config blob and no layers): its digest.
    async fn decoy(&self, tag: &str) -> String {
        let config = serde_json::to_vec(&json!({"architecture": "amd64", "os": "linux", "decoy": tag, "rootfs": {"type": "layers", "diff_ids": []}})).unwrap();
        let digest = self.upload(&config).await;
        let manifest = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest, "size": config.len()},
            "layers": []});
        self.put_manifest(tag, &manifest).await
    }

    /// Stores `envelopes` (bytes) as the `.att` tag of `digest`, the way cosign lays it out.
    async fn attest(&self, digest: &str, envelopes: &[Vec<u8>]) {
        let mut layers = Vec::new();
        for envelope in envelopes {
            let layer = self.upload(envelope).await;
            layers.push(
                json!({"mediaType": ENVELOPE, "digest": layer, "size": envelope.len(),
                "annotations": {"predicateType": TEST_RESULT}}),
            );
        }
        let config = b"{}".to_vec();
        let config_digest = self.upload(&config).await;
        let manifest = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": 2},
            "layers": layers});
        self.put_manifest(&att_tag(digest), &manifest).await;
    }
}

fn att_tag(digest: &str) -> String {
    format!("{}.att", digest.replacen(':', "-", 1))
}

/// `agent verify --attestation <reference> --key <key> [spec]` with the test's Docker config.
async fn verify(
    workspace: &Workspace,
    config: &Path,
    reference: &str,
    key: &Path,
    spec: Option<&Path>,
) -> Output {
    let mut args = vec!["verify", "--attestation", reference, "--key"];
    args.push(key.to_str().unwrap());
    if let Some(spec) = spec {
        args.push(spec.to_str().unwrap());
    }
    let mut command = agent_command(workspace, &args);
    command.env("DOCKER_CONFIG", config);
    // No engine is needed: one that cannot be reached must not matter.
    command.env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
    run_agent(&mut command).await
}

/// Where the tamper cases look: `<repository>/attested:<tag>`, verified with `key`
/// and no spec.
struct Tags<'a> {
    workspace: &'a Workspace,
    config: &'a Path,
    repository: &'a str,
    key: &'a Path,
}

impl Tags<'_> {
    /// `agent verify --attestation` on `tag`: refused, naming `cause`.
    async fn refused(&self, tag: &str, cause: &str) {
        let reference = format!("{}/attested:{tag}", self.repository);
        let output = verify(self.workspace, self.config, &reference, self.key, None).await;
        assert_refused(&output, cause);
    }
}

/// Asserts `output` is a refusal (exit 1) whose reason contains `cause`.
fn assert_refused(output: &Output, cause: &str) {
    output.assert_code(1);
    assert!(
        output.stderr.contains("not verified") && output.stderr.contains(cause),
        "expected `{cause}`: {}",
        output.stderr
    );
}

fn attest_python() -> PathBuf {
    installed(
        "AGENT_TEST_ATTEST_PYTHON",
        "the python of securesystemslib's environment",
        "scripts/attest-check-setup",
    )
}

/// The independent check of `check.py`: its JSON summary.
fn independent_check(
    registry: &Registry,
    repository: &str,
    digest: &str,
    key: &Path,
    report: &Path,
) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/cli/attest/check.py");
    let output = std::process::Command::new(attest_python())
        .arg(script)
        .args([&registry.address(), repository, digest])
        .arg(key)
        .arg(report)
        .args([USER, PASSWORD])
        .output()
        .expect("check.py runs");
    assert!(
        output.status.success(),
        "check.py: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("check.py prints JSON")
}

/// The Test Result envelope of the run directory, as JSON.
fn test_result_envelope(run_dir: &Path) -> Value {
    let text = std::fs::read_to_string(run_dir.join("attestations/test-result.dsse.json"))
        .expect("the run directory holds the Test Result");
    serde_json::from_str(&text).expect("an envelope")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_push_verifies_independently_and_every_tamper_is_refused_with_its_cause() {
    require_engine();
    let registry = Registry::start(Some((USER, PASSWORD))).await;
    let server = crate::publish::model_printing("attested").await;
    let workspace = Workspace::new(&server.base_url(), "", "");
    let spec = workspace.spec("attested", SPEC);
    let keys = tempfile::tempdir().unwrap();
    let (pem, public) = key_pair(keys.path(), "signer");
    let (_, other_public) = key_pair(keys.path(), "other");
    let auth = base64_of(&format!("{USER}:{PASSWORD}"));
    let config = registry.docker_config(&format!(r#"{{"auth": "{auth}"}}"#));
    let repository = registry.repository();

    let push = ["--push", repository.as_str(), "--sign"];
    let mut command = run_command_with(&workspace, &spec, config.path(), &push);
    command.env("AGENT_SIGNING_KEY", &pem);
    let output = run_agent(&mut command).await;
    output.assert_code(0);

    let report = workspace.report("attested");
    let short = short_digest(&report);
    let reference = format!("{repository}/attested:{short}");
    let digest = report["published"]["digest"].as_str().unwrap().to_owned();
    let recorded = report["attestations"].as_array().expect("attestations");
    let types: Vec<&str> = recorded
        .iter()
        .map(|record| record["predicate_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, [TEST_RESULT, "https://slsa.dev/provenance/v1"]);
    let stored_at = format!("{repository}/attested:{}", att_tag(&digest));
    assert!(
        output
            .stderr
            .contains(&format!("signed 2 attestations, stored under {stored_at}")),
        "{}",
        output.stderr
    );
    assert!(
        recorded
            .iter()
            .all(|record| record["reference"] == stored_at.as_str())
    );
    let lock: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace.path().join("attested.lock/lock.json")).unwrap(),
    )
    .unwrap();
    let digests: Vec<&Value> = recorded.iter().map(|record| &record["digest"]).collect();
    assert_eq!(
        lock["attestations"]
            .as_array()
            .unwrap()
            .iter()
            .collect::<Vec<_>>(),
        digests
    );
    assert_eq!(lock["published"]["digest"], digest.as_str());

    // Independently of agent: securesystemslib verifies every envelope of the tag.
    let run_dir = workspace.run_dir("attested");
    let checked = independent_check(
        &registry,
        "team/attested",
        &digest,
        &public,
        &run_dir.join("report.json"),
    );
    assert_eq!(
        checked["passed_tests"],
        json!(["run/word", "run/exit_code"])
    );
    assert_eq!(checked["configuration"][0]["name"], "attested");
    // The provenance's base image is the lock's pin.
    let pin = lock["base_digest"]
        .as_str()
        .expect("the lock pins the base");
    assert_eq!(report["base_digest"], pin);
    let (_, pinned_hex) = pin.rsplit_once(':').expect("sha256:<hex>");
    assert_eq!(checked["base"]["digest"]["sha256"], pinned_hex);
    assert_eq!(checked["base"]["name"], "base image");

    // agent's own check, from the registry alone.
    let output = verify(&workspace, config.path(), &reference, &public, Some(&spec)).await;
    output.assert_code(0);
    assert_eq!(output.stdout, "run/word\nrun/exit_code\n");
    output.assert_stderr_has("says PASSED");

    // Another key.
    let output = verify(&workspace, config.path(), &reference, &other_public, None).await;
    assert_refused(&output, "signed by another key");

    // The spec changed since.
    let changed = workspace.spec(
        "changed",
        &SPEC.replace("prints attested.\"\n[", "prints attested!\"\n["),
    );
    let output = verify(
        &workspace,
        config.path(),
        &reference,
        &public,
        Some(&changed),
    )
    .await;
    assert_refused(&output, "attested for an older spec");

    let api = Api::new(&registry, "team/attested");
    let att = api.manifest(&att_tag(&digest)).await;
    assert_eq!(att["layers"].as_array().unwrap().len(), 2);
    let stored = api.blob(att["layers"][0]["digest"].as_str().unwrap()).await;
    assert_eq!(
        stored,
        std::fs::read(run_dir.join("attestations/test-result.dsse.json")).unwrap(),
        "the run directory keeps the envelope exactly as stored"
    );

    // The attestations copied onto another image's tag.
    let tags = Tags {
        workspace: &workspace,
        config: config.path(),
        repository: &repository,
        key: &public,
    };
    let copied = api.decoy("copied").await;
    api.put_manifest(&att_tag(&copied), &att).await;
    tags.refused("copied", "attested for another digest").await;

    // A payload changed after signing: the subject moved to the decoy, the checks kept.
    let envelope = test_result_envelope(&run_dir);
    let payload = STANDARD
        .decode(envelope["payload"].as_str().unwrap())
        .unwrap();
    let mut statement: Value = serde_json::from_slice(&payload).unwrap();
    let changed_payload = api.decoy("changed-payload").await;
    statement["subject"][0]["digest"]["sha256"] =
        json!(changed_payload.trim_start_matches("sha256:"));
    let mut forged = envelope.clone();
    forged["payload"] = json!(STANDARD.encode(serde_json::to_vec(&statement).unwrap()));
    api.attest(&changed_payload, &[serde_json::to_vec(&forged).unwrap()])
        .await;
    tags.refused("changed-payload", "changed after this key signed it")
        .await;

    // An envelope missing its signature, and one that is not an envelope at all.
    let unsigned_image = api.decoy("unsigned").await;
    let mut unsigned = forged.clone();
    unsigned["signatures"] = json!([]);
    api.attest(&unsigned_image, &[serde_json::to_vec(&unsigned).unwrap()])
        .await;
    tags.refused("unsigned", "it has no signature").await;
    let garbage_image = api.decoy("garbage").await;
    api.attest(&garbage_image, &[b"{\"payload\": 7".to_vec()])
        .await;
    tags.refused("garbage", "malformed envelope").await;

    // No attestation at all, and a registry that is not there (exit 3).
    api.decoy("bare").await;
    tags.refused("bare", "no attestation").await;
    let output = verify(
        &workspace,
        config.path(),
        "127.0.0.1:9/team/attested:x",
        &public,
        None,
    )
    .await;
    output.assert_code(3);

    // The key's PEM is nowhere: run directory, report, transcript, logs, the lock, the image.
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let needles = [body.as_str(), pem.lines().nth(1).unwrap()];
    let mut files = files_below(&workspace.out());
    files.extend(files_below(&workspace.path().join("attested.lock")));
    for path in files {
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        for needle in needles {
            assert!(
                !text.contains(needle),
                "the key leaked into {}",
                path.display()
            );
        }
    }
    for needle in needles {
        assert!(!output.stderr.contains(needle) && !output.stdout.contains(needle));
    }
    let image = report["image"].as_str().unwrap();
    let saved = docker(&["save", image]);
    assert!(saved.status.success());
    let saved = String::from_utf8_lossy(&saved.stdout);
    for needle in needles {
        assert!(!saved.contains(needle), "the key leaked into the image");
    }

    // A second run reuses the published image, builds nothing, and adds its own
    // provenance to the tag beside the first run's envelopes.
    std::fs::remove_dir_all(workspace.out()).unwrap();
    let push = ["--push", repository.as_str(), "--sign"];
    let mut command = run_command_with(&workspace, &spec, config.path(), &push);
    command.env("AGENT_SIGNING_KEY", &pem);
    run_agent(&mut command).await.assert_code(0);
    let again = workspace.report("attested");
    assert_eq!(again["reused"]["digest"], digest.as_str(), "{again}");
    assert_eq!(again["published"]["digest"], digest.as_str());
    let att = api.manifest(&att_tag(&digest)).await;
    assert_eq!(att["layers"].as_array().unwrap().len(), 3, "{att}");
    let lock: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace.path().join("attested.lock/lock.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(lock["attestations"].as_array().unwrap().len(), 3);
    let checked = independent_check(
        &registry,
        "team/attested",
        &digest,
        &public,
        &workspace.run_dir("attested").join("report.json"),
    );
    assert_eq!(checked["layers"], 3);
    verify(&workspace, config.path(), &reference, &public, Some(&spec))
        .await
        .assert_code(0);
    assert_eq!(server.requests().len(), 1, "the second run asked no model");

    // The reused image carries the first run's labels; nothing of this run is left.
    let label = format!("dev.agent.run={}", again["run_id"].as_str().unwrap());
    assert_eq!(containers_with(&label), Vec::<String>::new());
    let _ = docker(&["rmi", &reference]);
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_without_a_usable_key_exits_2_naming_the_variable_before_any_model_call() {
    let server = crate::publish::model_printing("unsigned").await;
    let workspace = Workspace::new(&server.base_url(), "", "");
    let spec = workspace.spec("unsigned", &crate::publish::spec_printing("unsigned"));
    let config = docker_config("{}");
    let push = ["--push", "127.0.0.1:9/team", "--sign"];

    let output = run_with(&workspace, &spec, config.path(), &push).await;
    output.assert_code(2);
    output.assert_stderr_has("`AGENT_SIGNING_KEY`");

    let mut command = agent_command(
        &workspace,
        &["run", spec.to_str().unwrap(), push[0], push[1], push[2]],
    );
    command.env("DOCKER_CONFIG", config.path());
    command.env("AGENT_SIGNING_KEY", "not-a-key-sentinel-31337");
    let output = run_agent(&mut command).await;
    output.assert_code(2);
    output.assert_stderr_has("`AGENT_SIGNING_KEY`");
    assert!(
        !output.stderr.contains("sentinel-31337"),
        "{}",
        output.stderr
    );

    // `[publish]` names another variable and turns signing on without the flag.
    let text = std::fs::read_to_string(workspace.path().join("agent.toml")).unwrap();
    std::fs::write(
        workspace.path().join("agent.toml"),
        format!("{text}\n[publish]\nrepository = \"127.0.0.1:9/team\"\nsign = true\nsigning_key_env = \"RELEASE_KEY\"\n"),
    )
    .unwrap();
    let output = run_with(&workspace, &spec, config.path(), &[]).await;
    output.assert_code(2);
    output.assert_stderr_has("`RELEASE_KEY`");
    assert!(server.requests().is_empty(), "no model call was made");
}
