//! Credentials from real files and real helper programs in temp folders.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::*;

const SECRET: &str = "s3cret-PASSWORD-4711";

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(config: &str) -> Setup {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::write(dir.path().join("config.json"), config).expect("config written");
        Setup { dir }
    }

    /// Writes `docker-credential-<name>` as a shell script into the helper folder.
    fn helper(&self, name: &str, body: &str) {
        let bin = self.dir.path().join("bin");
        std::fs::create_dir_all(&bin).expect("bin");
        let path = bin.join(format!("docker-credential-{name}"));
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("helper written");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    fn source(&self) -> CredentialSource {
        let bin = self.dir.path().join("bin");
        let path = format!("{}:/usr/bin:/bin", bin.display());
        CredentialSource {
            config_file: self.dir.path().join("config.json"),
            helper_path: Some(path.into()),
            helper_timeout: Duration::from_secs(5),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn base64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

async fn resolve(setup: &Setup, server: &str) -> Option<RegistryCredentials> {
    resolve_credentials(&setup.source(), server)
        .await
        .expect("credentials resolve")
}

fn password_of(credentials: &RegistryCredentials) -> (Option<String>, Option<String>) {
    let docker = credentials.to_docker();
    (docker.username, docker.password)
}

#[tokio::test]
async fn an_auth_entry_is_base64_of_user_and_password() {
    let config = format!(
        r#"{{"auths": {{"127.0.0.1:5000": {{"auth": "{}"}}}}}}"#,
        base64(&format!("user:{SECRET}"))
    );
    let setup = Setup::new(&config);
    let credentials = resolve(&setup, "127.0.0.1:5000").await.expect("found");
    assert_eq!(credentials.server(), "127.0.0.1:5000");
    assert_eq!(
        password_of(&credentials),
        (Some("user".into()), Some(SECRET.into()))
    );
    assert_eq!(
        credentials.to_docker().serveraddress.as_deref(),
        Some("127.0.0.1:5000")
    );
    assert!(resolve(&setup, "127.0.0.1:5001").await.is_none());
}

#[tokio::test]
async fn username_password_and_identity_token_entries_are_read() {
    let config = format!(
        r#"{{"auths": {{
            "https://registry.example.com/v1/": {{"username": "alice", "password": "{SECRET}"}},
            "tokens.example.com": {{"identitytoken": "{SECRET}-token"}}
        }}}}"#
    );
    let setup = Setup::new(&config);
    let by_host = resolve(&setup, "registry.example.com")
        .await
        .expect("a key with scheme and path matches its host");
    assert_eq!(
        password_of(&by_host),
        (Some("alice".into()), Some(SECRET.into()))
    );
    let token = resolve(&setup, "tokens.example.com").await.expect("token");
    let docker = token.to_docker();
    assert_eq!(
        docker.identitytoken.as_deref(),
        Some(&*format!("{SECRET}-token"))
    );
    assert_eq!(docker.password, None);
}

#[tokio::test]
async fn a_missing_config_means_no_credentials_and_a_broken_one_is_an_error_without_secrets() {
    let setup = Setup::new("");
    std::fs::remove_file(setup.path().join("config.json")).unwrap();
    assert!(resolve(&setup, "127.0.0.1:5000").await.is_none());

    let setup = Setup::new(&format!(r#"{{"auths": {{"h": {{"auth": "{SECRET}"#));
    let error = resolve_credentials(&setup.source(), "h").await.unwrap_err();
    let text = format!("{error} {error:?}");
    assert!(matches!(error, SandboxError::DockerConfig { .. }), "{text}");
    assert!(!text.contains(SECRET), "{text}");

    let setup = Setup::new(r#"{"auths": {"h": {"auth": "not base64!"}}}"#);
    let error = resolve_credentials(&setup.source(), "h").await.unwrap_err();
    assert!(error.to_string().contains("config.json"), "{error}");
}

#[tokio::test]
async fn a_cred_helper_gets_the_server_on_stdin_and_answers_json() {
    let setup = Setup::new(r#"{"credHelpers": {"127.0.0.1:5000": "test"}, "auths": {}}"#);
    let seen = setup.path().join("seen");
    setup.helper(
        "test",
        &format!(
            "[ \"$1\" = get ] || exit 9\ncat > '{}'\necho '{{\"ServerURL\":\"127.0.0.1:5000\",\"Username\":\"bob\",\"Secret\":\"{SECRET}\"}}'",
            seen.display()
        ),
    );
    let credentials = resolve(&setup, "127.0.0.1:5000").await.expect("found");
    assert_eq!(
        password_of(&credentials),
        (Some("bob".into()), Some(SECRET.into()))
    );
    assert_eq!(std::fs::read_to_string(&seen).unwrap(), "127.0.0.1:5000");
    assert!(
        resolve(&setup, "elsewhere.example.com").await.is_none(),
        "the helper is only for its registry"
    );
}

#[tokio::test]
async fn a_creds_store_token_answer_is_an_identity_token() {
    let setup = Setup::new(r#"{"credsStore": "test"}"#);
    setup.helper(
        "test",
        &format!("cat > /dev/null\necho '{{\"Username\":\"<token>\",\"Secret\":\"{SECRET}\"}}'"),
    );
    let credentials = resolve(&setup, DOCKER_HUB_SERVER).await.expect("found");
    assert_eq!(
        credentials.to_docker().identitytoken.as_deref(),
        Some(SECRET)
    );
    assert_eq!(credentials.to_docker().username, None);
}

#[tokio::test]
async fn a_helper_that_knows_nothing_falls_back_to_the_auths_entry() {
    let config = format!(
        r#"{{"credsStore": "test", "auths": {{"127.0.0.1:5000": {{"auth": "{}"}}}}}}"#,
        base64(&format!("user:{SECRET}"))
    );
    let setup = Setup::new(&config);
    setup.helper(
        "test",
        "cat > /dev/null\necho 'credentials not found in native keychain'\nexit 1",
    );
    let credentials = resolve(&setup, "127.0.0.1:5000").await.expect("from auths");
    assert_eq!(password_of(&credentials).1.as_deref(), Some(SECRET));
}

#[tokio::test]
async fn a_failing_helper_names_itself_and_never_repeats_its_output() {
    let setup = Setup::new(r#"{"credsStore": "test"}"#);
    setup.helper(
        "test",
        &format!("cat > /dev/null\necho 'not json {SECRET}'"),
    );
    let error = resolve_credentials(&setup.source(), "h").await.unwrap_err();
    let text = format!("{error} {error:?}");
    assert!(text.contains("docker-credential-test"), "{text}");
    assert!(!text.contains(SECRET), "{text}");

    setup.helper(
        "test",
        "cat > /dev/null\necho 'keychain locked' >&2\nexit 2",
    );
    let error = resolve_credentials(&setup.source(), "h").await.unwrap_err();
    assert!(error.to_string().contains("keychain locked"), "{error}");

    let setup = Setup::new(r#"{"credsStore": "absent"}"#);
    let error = resolve_credentials(&setup.source(), "h").await.unwrap_err();
    assert!(
        error.to_string().contains("docker-credential-absent"),
        "{error}"
    );
}

#[tokio::test]
async fn a_helper_that_hangs_is_stopped_at_the_timeout() {
    let setup = Setup::new(r#"{"credsStore": "test"}"#);
    setup.helper("test", "sleep 30");
    let mut source = setup.source();
    source.helper_timeout = Duration::from_secs(1);
    let started = Instant::now();
    let error = resolve_credentials(&source, "h").await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(error.to_string().contains("within 1 s"), "{error}");
}

#[tokio::test]
async fn debug_output_shows_no_secret() {
    let config = format!(r#"{{"auths": {{"h": {{"username": "u", "password": "{SECRET}"}}}}}}"#);
    let setup = Setup::new(&config);
    let credentials = resolve(&setup, "h").await.expect("found");
    let debug = format!("{credentials:?} {:?}", Some(&credentials));
    assert!(!debug.contains(SECRET), "{debug}");
    assert!(debug.contains("\"h\""), "{debug}");
    let parsed: DockerConfig = serde_json::from_str(&config).unwrap();
    assert!(!format!("{parsed:?}").contains(SECRET));
}

#[test]
fn the_registry_is_the_first_component_when_it_names_a_host() {
    assert_eq!(registry_server("127.0.0.1:5000/team"), "127.0.0.1:5000");
    assert_eq!(registry_server("ghcr.io/acme/tools"), "ghcr.io");
    assert_eq!(registry_server("localhost/team"), "localhost");
    assert_eq!(registry_server("acme"), DOCKER_HUB_SERVER);
    assert_eq!(registry_server("acme/tools"), DOCKER_HUB_SERVER);
    assert_eq!(registry_server("docker.io/acme"), DOCKER_HUB_SERVER);
}
