//! Signed attestations of each pushed image (`--sign` / `[publish] sign`): a Test
//! Result of the checks the image passed and a SLSA provenance of how it was made,
//! each a DSSE envelope signed with the key in `[publish] signing_key_env`, stored
//! under cosign's `.att` tag beside the image, in the run directory's `attestations/`,
//! in `report.json` and in the lock. The key is read from the environment once, before
//! any model call, and never written anywhere.

use std::path::{Path, PathBuf};

use agent_attest::{
    BuildFacts, Envelope, ImageReference, Login, PAYLOAD_TYPE, Registry, ResourceDescriptor,
    Signed, SigningKey, Subject, TestFacts,
};
use agent_loop::{AttestationRecord, Report};
use agent_run_dir::RunDir;
use agent_sandbox::{RegistryCredentials, Sandbox};
use agent_spec::{PublishSettings, Spec};
use secrecy::SecretString;

use crate::failure::Failure;

/// The builder of `agent run`'s provenance.
const BUILDER_ID: &str = concat!("https://agent.dev/agent@", env!("CARGO_PKG_VERSION"));

/// The signing key, when signing is asked for.
#[derive(Debug)]
pub struct Signer {
    key: SigningKey,
}

impl Signer {
    /// The key of `settings.signing_key_env` when signing is on (`None` when off). A
    /// missing or unreadable key is bad usage naming the variable; so is signing with
    /// nowhere to push.
    pub fn from_settings(settings: &PublishSettings) -> Result<Option<Signer>, Failure> {
        if !settings.sign {
            return Ok(None);
        }
        let variable = &settings.signing_key_env;
        if settings.repository.is_none() {
            return Err(Failure::usage(anyhow::anyhow!(
                "signing attests pushed images, and nothing is pushed"
            ))
            .with_hint("give `--push <REPOSITORY>` or `[publish] repository`"));
        }
        let Some(pem) = crate::env::var(variable) else {
            return Err(Failure::usage(anyhow::anyhow!(
                "signing is on and the variable `{variable}` holding the signing key is not set"
            ))
            .with_hint(format!(
                "set `{variable}` to an ECDSA P-256 private key in PEM, e.g. from `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`"
            )));
        };
        let key = SigningKey::from_pem(&SecretString::from(pem), variable).map_err(|error| {
            Failure::usage(error).with_hint(
                "an unencrypted PKCS#8 PEM key (`-----BEGIN PRIVATE KEY-----`), as `openssl genpkey` writes it",
            )
        })?;
        Ok(Some(Signer { key }))
    }
}

/// What signing an image needs besides the key and the report.
pub struct Context<'a> {
    pub spec: &'a Spec,
    pub run_dir: &'a RunDir,
    pub sandbox: &'a Sandbox,
    pub credentials: Option<&'a RegistryCredentials>,
    /// The `[docker] builder` setting.
    pub builder: &'a str,
}

/// Signs the attestations of `report`'s pushed image, writes them into the run
/// directory and adds them to the image's `.att` tag; their records.
pub async fn attest(
    signer: &Signer,
    context: &Context<'_>,
    report: &Report,
) -> Result<Vec<AttestationRecord>, Failure> {
    let Some(published) = &report.published else {
        return Ok(Vec::new());
    };
    let reference = ImageReference::parse(&published.reference).map_err(infrastructure)?;
    let subject = Subject::image(&reference.repository(), &published.digest);
    let (test_facts, spec) = test_facts(context.spec, report)?;
    let build_facts = build_facts(context, report, spec).await?;
    let statements = [
        agent_attest::test_result_statement(subject.clone(), &test_facts),
        agent_attest::provenance_statement(subject, &build_facts),
    ];
    let signed: Vec<Signed> = statements
        .iter()
        .map(|statement| {
            let payload = serde_json::to_vec(statement).unwrap_or_default();
            Envelope::sign(PAYLOAD_TYPE, &payload, &signer.key).seal(&statement.predicate_type)
        })
        .collect();
    write_envelopes(context.run_dir, &signed)?;
    let registry = Registry::new(&reference.registry, context.credentials.and_then(login))
        .map_err(infrastructure)?;
    let tag = agent_attest::attach(&registry, &reference.path, &published.digest, &signed)
        .await
        .map_err(infrastructure)?;
    let stored_as = format!("{}:{tag}", reference.repository());
    Ok(signed
        .into_iter()
        .map(|envelope| AttestationRecord {
            predicate_type: envelope.predicate_type,
            digest: envelope.digest,
            reference: stored_as.clone(),
        })
        .collect())
}

fn infrastructure(error: agent_attest::AttestError) -> Failure {
    Failure::infrastructure(anyhow::Error::new(error).context("cannot store the attestations"))
}

/// The registry login the Docker CLI's credentials give.
pub fn login(credentials: &RegistryCredentials) -> Option<Login> {
    if let Some((username, password)) = credentials.password() {
        return Some(Login::Password {
            username: username.to_owned(),
            password: password.clone(),
        });
    }
    credentials
        .identity_token()
        .cloned()
        .map(Login::IdentityToken)
}

/// `test-result.dsse.json`, `provenance.dsse.json`.
fn write_envelopes(run_dir: &RunDir, signed: &[Signed]) -> Result<(), Failure> {
    let folder = run_dir.attestations();
    let failed = |error: std::io::Error| {
        Failure::infrastructure(
            anyhow::Error::new(error).context(format!("cannot write `{}`", folder.display())),
        )
    };
    std::fs::create_dir_all(&folder).map_err(failed)?;
    for envelope in signed {
        let name = if envelope.predicate_type == agent_attest::TEST_RESULT {
            "test-result"
        } else {
            "provenance"
        };
        std::fs::write(folder.join(format!("{name}.dsse.json")), &envelope.bytes)
            .map_err(failed)?;
    }
    Ok(())
}

/// The checks of the last iteration, and what they were checked against: the spec,
/// then each hidden-suite and structure-test file. Also the spec's own descriptor.
fn test_facts(spec: &Spec, report: &Report) -> Result<(TestFacts, ResourceDescriptor), Failure> {
    let passed = report
        .history
        .last()
        .map(|iteration| {
            iteration
                .checks
                .iter()
                .map(|check| format!("{}/{}", check.group, check.name))
                .collect()
        })
        .unwrap_or_default();
    let spec_digest = agent_loop::current_spec_digest(spec).map_err(|error| {
        Failure::infrastructure(anyhow::Error::new(error).context("cannot read the spec's files"))
    })?;
    let root = crate::provenance::repository_root(spec.path.parent().unwrap_or(Path::new(".")));
    let uri = |path: &Path| Some(relative_to(root.as_deref(), path));
    let spec_descriptor =
        ResourceDescriptor::new(&spec.name, uri(&spec.path), "sha256", &spec_digest);
    let mut configuration = vec![spec_descriptor.clone()];
    let folder = spec.path.parent().unwrap_or(Path::new("."));
    for structure in &spec.structure_tests {
        let path = folder.join(&structure.path);
        let hex = agent_loop::sha256_hex(structure.contents.as_bytes());
        configuration.push(ResourceDescriptor::new(
            &structure.path,
            uri(&path),
            "sha256",
            &hex,
        ));
    }
    for suite in &spec.suites {
        for (name, path) in &suite.files {
            let bytes = std::fs::read(path).map_err(|error| {
                Failure::infrastructure(
                    anyhow::Error::new(error).context(format!("cannot read `{}`", path.display())),
                )
            })?;
            let hex = agent_loop::sha256_hex(&bytes);
            let label = format!("suite:{}/{name}", suite.name);
            configuration.push(ResourceDescriptor::new(&label, uri(path), "sha256", &hex));
        }
    }
    Ok((
        TestFacts {
            passed,
            configuration,
        },
        spec_descriptor,
    ))
}

/// `path` relative to the repository's root (else as it is), with `/`.
fn relative_to(root: Option<&Path>, path: &Path) -> String {
    let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| PathBuf::from(path));
    let relative = root
        .and_then(|root| absolute.strip_prefix(root).ok())
        .unwrap_or(path);
    relative
        .components()
        .map(|part| part.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// The provenance: the spec, model and builder; the base image, bundle and source
/// revision it was made from; this run as its invocation.
async fn build_facts(
    context: &Context<'_>,
    report: &Report,
    spec: ResourceDescriptor,
) -> Result<BuildFacts, Failure> {
    // The lock's pin of the base (`repository@sha256:…` or an image id): the digest
    // the verified image was built on.
    let base_digest = report.base_digest.as_deref().unwrap_or_default();
    let digest = base_digest
        .rsplit_once('@')
        .map_or(base_digest, |(_, digest)| digest);
    let (algorithm, hex) = digest.split_once(':').unwrap_or(("sha256", ""));
    let base_image = ResourceDescriptor::new(
        "base image",
        Some(format!("docker-image://{}", report.base_image)),
        algorithm,
        hex,
    );
    let labels = match &report.image {
        Some(image) => context
            .sandbox
            .image_facts(image)
            .await
            .map(|facts| facts.labels)
            .unwrap_or_default(),
        None => Default::default(),
    };
    let source = labels
        .get("org.opencontainers.image.revision")
        .map(|revision| {
            let uri = labels
                .get("org.opencontainers.image.source")
                .map(|source| format!("git+{source}@{revision}"));
            ResourceDescriptor::new("source", uri, "gitCommit", revision)
        });
    let bundle_digest = labels
        .get("dev.agent.bundle-digest")
        .cloned()
        .or_else(|| {
            report
                .history
                .last()
                .and_then(|last| last.context_digest.clone())
        })
        .unwrap_or_default();
    let finished = time::OffsetDateTime::now_utc();
    let started = finished - time::Duration::seconds_f64(report.duration_secs);
    Ok(BuildFacts {
        spec,
        model: report.model.clone(),
        builder: context.builder.to_owned(),
        base_image,
        bundle_digest,
        source,
        builder_id: BUILDER_ID.to_owned(),
        invocation_id: report.run_id.clone(),
        started_on: rfc3339(started),
        finished_on: rfc3339(finished),
    })
}

fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
