//! The layering of `agent.toml`, the environment and the flags, and the errors of
//! each source.

use std::path::Path;

use super::*;
use crate::config::settings::EngineSetting;
use crate::spec::parse_spec;

fn parse(text: &str) -> Result<ConfigFile, ConfigError> {
    ConfigFile::parse(Path::new("/project/agent.toml"), text)
}

/// The (line, column, message) of an `Invalid` error.
fn invalid(text: &str) -> (usize, usize, String) {
    match parse(text) {
        Err(ConfigError::Invalid { location, message }) => {
            assert_eq!(location.path, Path::new("/project/agent.toml"));
            (location.line, location.column, message)
        }
        other => panic!("expected an invalid config, got {other:?}"),
    }
}

fn resolve(file: Option<&ConfigFile>, env: &EnvOverrides, flags: &FlagOverrides) -> Settings {
    Settings::resolve(file, env, flags).unwrap()
}

fn override_error(env: &EnvOverrides, flags: &FlagOverrides) -> (String, String) {
    match Settings::resolve(None, env, flags) {
        Err(ConfigError::Override { origin, message }) => (origin, message),
        other => panic!("expected an override error, got {other:?}"),
    }
}

#[test]
fn cache_sources_are_image_references_and_the_flags_replace_them() {
    let digest = format!("127.0.0.1:5000/ci/hello@sha256:{}", "a".repeat(64));
    let text = format!("[docker]\ncache_from = [\"ghcr.io/acme/tool:main\", \"{digest}\"]\n");
    let file = parse(&text).unwrap();
    let settings = resolve(
        Some(&file),
        &EnvOverrides::default(),
        &FlagOverrides::default(),
    );
    assert_eq!(
        settings.docker.cache_from,
        ["ghcr.io/acme/tool:main", digest.as_str()]
    );
    let flags = FlagOverrides {
        cache_from: vec!["127.0.0.1:5000/ci/hello".to_owned()],
        ..FlagOverrides::default()
    };
    let settings = resolve(Some(&file), &EnvOverrides::default(), &flags);
    assert_eq!(settings.docker.cache_from, ["127.0.0.1:5000/ci/hello"]);

    let (line, column, message) = invalid("[docker]\ncache_from = [\"Not/Lower\"]\n");
    assert_eq!((line, column), (2, 15), "{message}");
    assert!(message.contains("`cache_from`"), "{message}");
    let (origin, _) = override_error(
        &EnvOverrides::default(),
        &FlagOverrides {
            cache_from: vec!["x@sha256:short".to_owned()],
            ..FlagOverrides::default()
        },
    );
    assert_eq!(origin, "flag `--cache-from`");
}

#[test]
fn engines_are_addresses_or_tables_and_the_flags_replace_them() {
    let text = "[docker]\nengines = [\"unix:///var/run/docker.sock\", { url = \"tcp://b2:2376\", slots = 3 }]\n";
    let file = parse(text).unwrap();
    let settings = resolve(
        Some(&file),
        &EnvOverrides::default(),
        &FlagOverrides::default(),
    );
    assert_eq!(
        settings.docker.engines,
        vec![
            EngineSetting {
                url: "unix:///var/run/docker.sock".to_owned(),
                slots: None,
                identity: None,
            },
            EngineSetting {
                url: "tcp://b2:2376".to_owned(),
                slots: Some(3),
                identity: None,
            },
        ]
    );
    let flags = FlagOverrides {
        engines: vec!["unix:///tmp/other.sock".to_owned()],
        ..FlagOverrides::default()
    };
    let settings = resolve(Some(&file), &EnvOverrides::default(), &flags);
    assert_eq!(settings.docker.engines.len(), 1);
    assert_eq!(settings.docker.engines[0].url, "unix:///tmp/other.sock");

    let (line, column, message) =
        invalid("[docker]\nengines = [{ url = \"tcp://b2:2376\", slot = 3 }]\n");
    assert_eq!((line, column), (2, 12), "{message}");
    assert!(message.contains("unknown key `slot`"), "{message}");
    let text = "[docker]\nengines = [{ url = \"ssh://ci@b3\", identity = \"keys/b3\" }]\n";
    let settings = resolve(
        Some(&parse(text).unwrap()),
        &EnvOverrides::default(),
        &FlagOverrides::default(),
    );
    assert_eq!(
        settings.docker.engines[0].identity.as_deref(),
        Some("keys/b3")
    );
    let (_, _, message) =
        invalid("[docker]\nengines = [{ url = \"tcp://b2:2376\", identity = \"k\" }]\n");
    assert!(message.contains("not one"), "{message}");
    let (origin, message) = override_error(
        &EnvOverrides::default(),
        &FlagOverrides {
            engines: vec!["b2:2376".to_owned()],
            ..FlagOverrides::default()
        },
    );
    assert_eq!(origin, "flag `--engine`");
    assert!(message.contains("not an engine address"), "{message}");
}

#[test]
fn built_in_defaults() {
    let settings = resolve(None, &EnvOverrides::default(), &FlagOverrides::default());
    assert_eq!(
        settings.model,
        ModelSettings {
            base_url: "https://api.openai.com/v1".to_owned(),
            api_key_env: "OPENAI_API_KEY".to_owned(),
            name: "gpt-4o-2024-08-06".to_owned(),
            temperature: 0.2,
            request_timeout_secs: 180,
            max_retries: 4,
            max_retry_after_secs: 60,
            structured_output: StructuredOutput::Auto,
            stream: false,
            max_tokens: None,
            max_concurrent_requests: 8,
            candidates: 1,
        }
    );
    assert_eq!(
        settings.docker,
        DockerSettings {
            base_image: "python:3.10-slim".to_owned(),
            allowed_base_images: Vec::new(),
            build_network: BuildNetwork::Allowlist,
            build_allow: None,
            builder: BuilderChoice::Auto,
            cache_max_mb: settings::DEFAULT_CACHE_MAX_MB,
            engines: Vec::new(),
            cache_from: Vec::new(),
            probe_image: "agent-base/busybox:1".to_owned(),
            egress_image: "python:3.10-slim".to_owned(),
        }
    );
    assert_eq!(settings.limits, Limits::default());
    assert_eq!(settings.bundle, BundleLimits::default());
    assert_eq!(settings.prompts, PromptSettings::default());
    assert_eq!(settings.limit_flags, LimitsLayer::default());
}

#[test]
fn every_file_key_is_read() {
    let text = r#"
[model]
base_url = "http://localhost:8000/v1/"
api_key_env = "LOCAL_KEY"
name = "qwen"
temperature = 0
request_timeout_secs = 30
max_retries = 0
max_retry_after_secs = 5
structured_output = "json_object"
stream = true
max_tokens = 4096
max_concurrent_requests = 2
candidates = 3

[docker]
base_image = "agent-base/python:3.11"
allowed_base_images = ["agent-base/python:3.11", "agent-base/busybox:1"]
build_network = "none"
builder = "buildkit"
cache_max_mb = 512
probe_image = "tools/probe:2"
build_allow = ["python", "10.0.0.5:8080"]
egress_image = "tools/egress:1"

[limits]
max_iterations = 3
build_timeout_secs = 100
run_timeout_secs = 10
memory_mb = 256
cpus = 0.5
pids = 64
output_limit_kb = 16
max_total_tokens = 100000
max_wall_secs = 900
network = "bridge"

[bundle]
max_total_bytes = 1000
max_files = 5
max_file_bytes = 500
max_path_bytes = 50
"#;
    let file = parse(text).unwrap();
    assert_eq!(file.path, Path::new("/project/agent.toml"));
    let settings = resolve(
        Some(&file),
        &EnvOverrides::default(),
        &FlagOverrides::default(),
    );
    assert_eq!(
        settings.model,
        ModelSettings {
            base_url: "http://localhost:8000/v1".to_owned(),
            api_key_env: "LOCAL_KEY".to_owned(),
            name: "qwen".to_owned(),
            temperature: 0.0,
            request_timeout_secs: 30,
            max_retries: 0,
            max_retry_after_secs: 5,
            structured_output: StructuredOutput::JsonObject,
            stream: true,
            max_tokens: Some(4096),
            max_concurrent_requests: 2,
            candidates: 3,
        }
    );
    assert_eq!(
        settings.docker,
        DockerSettings {
            base_image: "agent-base/python:3.11".to_owned(),
            allowed_base_images: vec![
                "agent-base/python:3.11".to_owned(),
                "agent-base/busybox:1".to_owned()
            ],
            build_network: BuildNetwork::None,
            build_allow: Some(vec!["python".to_owned(), "10.0.0.5:8080".to_owned()]),
            builder: BuilderChoice::BuildKit,
            cache_max_mb: 512,
            engines: Vec::new(),
            cache_from: Vec::new(),
            probe_image: "tools/probe:2".to_owned(),
            egress_image: "tools/egress:1".to_owned(),
        }
    );
    assert_eq!(
        settings.limits,
        Limits {
            max_iterations: 3,
            build_timeout_secs: 100,
            run_timeout_secs: 10,
            memory_mb: 256,
            cpus: 0.5,
            pids: 64,
            output_limit_kb: 16,
            max_total_tokens: 100000,
            max_wall_secs: 900,
            network: NetworkMode::Bridge,
        }
    );
    assert_eq!(
        settings.bundle,
        BundleLimits {
            max_total_bytes: 1000,
            max_files: 5,
            max_file_bytes: 500,
            max_path_bytes: 50,
        }
    );
}

#[test]
fn empty_file_keeps_the_defaults() {
    let file = parse("").unwrap();
    let settings = resolve(
        Some(&file),
        &EnvOverrides::default(),
        &FlagOverrides::default(),
    );
    assert_eq!(
        settings,
        resolve(None, &EnvOverrides::default(), &FlagOverrides::default())
    );
}

#[test]
fn each_layer_wins_over_the_one_below() {
    let file = parse("[model]\nbase_url = \"http://file/v1\"\nname = \"file-model\"\n").unwrap();
    let none = EnvOverrides::default();
    let no_flags = FlagOverrides::default();
    let settings = resolve(Some(&file), &none, &no_flags);
    assert_eq!(settings.model.base_url, "http://file/v1");
    assert_eq!(settings.model.name, "file-model");

    let env = EnvOverrides {
        base_url: Some("http://env/v1".to_owned()),
        model: Some("env-model".to_owned()),
    };
    let settings = resolve(Some(&file), &env, &no_flags);
    assert_eq!(settings.model.base_url, "http://env/v1");
    assert_eq!(settings.model.name, "env-model");

    let flags = FlagOverrides {
        base_url: Some("https://flag/v1".to_owned()),
        model: Some("flag-model".to_owned()),
        max_iterations: Some(2),
        ..FlagOverrides::default()
    };
    let settings = resolve(Some(&file), &env, &flags);
    assert_eq!(settings.model.base_url, "https://flag/v1");
    assert_eq!(settings.model.name, "flag-model");
    assert_eq!(settings.limit_flags.max_iterations, Some(2));
}

#[test]
fn spec_limits_sit_between_the_file_and_the_flags() {
    let file =
        parse("[limits]\nmax_iterations = 5\nmemory_mb = 512\nrun_timeout_secs = 7\n").unwrap();
    let spec = parse_spec(
        Path::new("/specs/task.toml"),
        "prompt = \"x\"\nconditions = \"y\"\n[limits]\nmax_iterations = 4\nmemory_mb = 64\ncpus = 2\nnetwork = \"bridge\"\n",
    )
    .unwrap();
    let settings = resolve(
        Some(&file),
        &EnvOverrides::default(),
        &FlagOverrides::default(),
    );
    assert_eq!(settings.limits.max_iterations, 5);
    let limits = settings.limits_for(&spec);
    assert_eq!(limits.max_iterations, 4);
    assert_eq!(limits.memory_mb, 64);
    assert_eq!(limits.cpus, 2.0);
    assert_eq!(limits.network, NetworkMode::Bridge);
    // Left alone by the spec: the file's value.
    assert_eq!(limits.run_timeout_secs, 7);
    assert_eq!(limits.build_timeout_secs, 600);

    let flags = FlagOverrides {
        max_iterations: Some(1),
        ..FlagOverrides::default()
    };
    let settings = resolve(Some(&file), &EnvOverrides::default(), &flags);
    let limits = settings.limits_for(&spec);
    assert_eq!(limits.max_iterations, 1);
    assert_eq!(limits.memory_mb, 64);
}

#[test]
fn bad_environment_values_name_the_variable() {
    let env = EnvOverrides {
        base_url: Some("localhost:8000/v1".to_owned()),
        model: None,
    };
    let (origin, message) = override_error(&env, &FlagOverrides::default());
    assert_eq!(origin, "environment variable `OPENAI_BASE_URL`");
    assert_eq!(
        message,
        "the base URL must start with `http://` or `https://`"
    );

    let env = EnvOverrides {
        base_url: None,
        model: Some(" ".to_owned()),
    };
    let (origin, message) = override_error(&env, &FlagOverrides::default());
    assert_eq!(origin, "environment variable `AGENT_MODEL`");
    assert_eq!(message, "the model name is empty");
}

#[test]
fn bad_flag_values_name_the_flag() {
    let flags = FlagOverrides {
        base_url: Some("https://".to_owned()),
        ..FlagOverrides::default()
    };
    let (origin, message) = override_error(&EnvOverrides::default(), &flags);
    assert_eq!(origin, "flag `--base-url`");
    assert_eq!(message, "the base URL has no host");

    let flags = FlagOverrides {
        model: Some(String::new()),
        ..FlagOverrides::default()
    };
    let (origin, _) = override_error(&EnvOverrides::default(), &flags);
    assert_eq!(origin, "flag `--model`");

    let flags = FlagOverrides {
        max_iterations: Some(0),
        ..FlagOverrides::default()
    };
    let (origin, message) = override_error(&EnvOverrides::default(), &flags);
    assert_eq!(origin, "flag `--max-iterations`");
    assert_eq!(message, "must be at least 1");
}

#[test]
fn a_flag_replaces_a_bad_environment_value_without_error() {
    let env = EnvOverrides {
        base_url: Some("ftp://x".to_owned()),
        model: Some(String::new()),
    };
    let flags = FlagOverrides {
        base_url: Some("http://ok/v1".to_owned()),
        model: Some("m".to_owned()),
        max_iterations: None,
        ..FlagOverrides::default()
    };
    let settings = resolve(None, &env, &flags);
    assert_eq!(settings.model.base_url, "http://ok/v1");
    assert_eq!(settings.model.name, "m");
}

#[test]
fn unknown_keys_have_line_and_column() {
    let (line, column, message) = invalid("[model]\nname = \"m\"\n  temprature = 0.1\n");
    assert_eq!((line, column), (3, 3));
    assert!(
        message.starts_with("unknown key `temprature` in [model]; expected one of `base_url`, `api_key_env`, `name`, `temperature`"),
        "{message}"
    );
    let (line, column, message) = invalid("[limits]\n\n[dockr]\nbase_image = \"x\"\n");
    assert_eq!((line, column), (3, 2));
    assert!(message.starts_with("unknown key `dockr` at the top level; expected one of `model`, `docker`, `limits`, `bundle`, `prompts`"), "{message}");
    let (line, column, message) = invalid("[bundle]\nmax_file = 3\n");
    assert_eq!((line, column), (2, 1));
    assert!(
        message.starts_with("unknown key `max_file` in [bundle]"),
        "{message}"
    );
    let (_, _, message) = invalid("[prompts]\nsystm = \"a\"\n");
    assert!(
        message.starts_with("unknown key `systm` in [prompts]"),
        "{message}"
    );
    let (_, _, message) = invalid("[docker]\nbuild_net = \"a\"\n");
    assert!(
        message.starts_with("unknown key `build_net` in [docker]"),
        "{message}"
    );
}

#[test]
fn bad_file_values_point_at_the_value() {
    let cases = [
        (
            "[model]\nbase_url = \"api.openai.com\"",
            "`base_url`: the base URL must start with `http://` or `https://`",
        ),
        ("[model]\nname = \"\"", "`name`: the model name is empty"),
        (
            "[model]\ntemperature = 3",
            "`temperature` must be between 0 and 2",
        ),
        (
            "[model]\nrequest_timeout_secs = 0",
            "`request_timeout_secs` must be at least 1",
        ),
        (
            "[model]\nstructured_output = \"xml\"",
            "`structured_output`: unknown mode `xml`; expected `auto`, `json_schema`, `json_object` or `none`",
        ),
        ("[model]\nmax_tokens = 0", "`max_tokens` must be at least 1"),
        (
            "[model]\nmax_concurrent_requests = 0",
            "`max_concurrent_requests` must be at least 1",
        ),
        (
            "[model]\ncandidates = 17",
            "`candidates` must be between 1 and 16",
        ),
        (
            "[model]\napi_key_env = \"\"",
            "`api_key_env`: must name an environment variable: non-empty, without `=` or NUL",
        ),
        (
            "[docker]\nbuild_network = \"bridge\"",
            "`build_network`: unknown network `bridge`; expected `allowlist`, `default`, `none` or `host`",
        ),
        (
            "[docker]\nbuilder = \"kaniko\"",
            "`builder`: unknown builder `kaniko`; expected `auto`, `classic` or `buildkit`",
        ),
        ("[docker]\nbase_image = \" \"", "`base_image`: is empty"),
        ("[docker]\nprobe_image = \"\"", "`probe_image`: is empty"),
        (
            "[limits]\nmax_iterations = 0",
            "`max_iterations` must be at least 1",
        ),
        ("[limits]\nmemory_mb = 5", "`memory_mb` must be at least 6"),
        (
            "[limits]\ncpus = 0.0",
            "`cpus` must be a number above 0, e.g. `0.5` or `2`",
        ),
        ("[limits]\npids = 0", "`pids` must be at least 1"),
        (
            "[limits]\nnetwork = \"host\"",
            "`network`: unknown network `host`; expected `none` or `bridge`",
        ),
        ("[bundle]\nmax_files = 0", "`max_files` must be at least 1"),
    ];
    for (text, expected) in cases {
        let (line, column, message) = invalid(text);
        let value_column = text.split('\n').nth(1).unwrap().find('=').unwrap() + 3;
        assert_eq!((line, column), (2, value_column), "{text}");
        assert_eq!(message, expected, "{text}");
    }
    let (line, column, message) = invalid("[limits]\nmax_iterations = -1\n");
    assert_eq!((line, column), (2, 18));
    assert_eq!(
        message,
        "`limits.max_iterations`: invalid value: integer `-1`, expected a non-negative integer"
    );
}

#[test]
fn structured_output_defaults_to_auto_and_reads_json_schema() {
    let file = parse("[model]\nstructured_output = \"json_schema\"\n").unwrap();
    let settings = resolve(
        Some(&file),
        &EnvOverrides::default(),
        &FlagOverrides::default(),
    );
    assert_eq!(
        settings.model.structured_output,
        StructuredOutput::JsonSchema
    );
    let settings = resolve(None, &EnvOverrides::default(), &FlagOverrides::default());
    assert_eq!(settings.model.structured_output, StructuredOutput::Auto);
}

#[test]
fn publish_is_read_from_the_file_and_the_push_flag_wins() {
    let file =
        parse("[publish]\nrepository = \"ghcr.io/acme/tools/\"\ntags = [\"latest\", \"v1\"]\n")
            .unwrap();
    let settings = resolve(
        Some(&file),
        &EnvOverrides::default(),
        &FlagOverrides::default(),
    );
    assert_eq!(
        settings.publish.repository.as_deref(),
        Some("ghcr.io/acme/tools")
    );
    assert_eq!(settings.publish.tags, ["latest", "v1"]);
    let flags = FlagOverrides {
        push: Some("127.0.0.1:5000/team".to_owned()),
        ..FlagOverrides::default()
    };
    let settings = resolve(Some(&file), &EnvOverrides::default(), &flags);
    assert_eq!(
        settings.publish.repository.as_deref(),
        Some("127.0.0.1:5000/team")
    );
    assert_eq!(
        settings.publish.tags,
        ["latest", "v1"],
        "tags stay from the file"
    );
    assert_eq!(
        resolve(None, &EnvOverrides::default(), &FlagOverrides::default()).publish,
        PublishSettings::default()
    );

    let (line, column, message) = invalid("[publish]\nrepository = \"Acme/Tools\"\n");
    assert_eq!((line, column), (2, 14));
    assert!(
        message.starts_with("`repository`: `Acme/Tools` is not a repository"),
        "{message}"
    );
    let (line, _, message) = invalid("[publish]\ntags = [\"latest\",\n  \".hidden\"]\n");
    assert_eq!(line, 3);
    assert!(
        message.starts_with("`tags`: `.hidden` is not a tag"),
        "{message}"
    );
    let flags = FlagOverrides {
        push: Some("a b".to_owned()),
        ..FlagOverrides::default()
    };
    let (origin, _) = override_error(&EnvOverrides::default(), &flags);
    assert_eq!(origin, "flag `--push`");
}

#[test]
fn the_flags_limits_sit_above_the_file_but_not_in_its_limits() {
    let file = parse("[limits]\nmax_iterations = 5\n").unwrap();
    let flags = FlagOverrides {
        max_iterations: Some(2),
        ..FlagOverrides::default()
    };
    let settings = resolve(Some(&file), &EnvOverrides::default(), &flags);
    assert_eq!(settings.limits.max_iterations, 5);
    let spec = parse_spec(
        Path::new("/specs/task.toml"),
        "prompt = \"x\"\nconditions = \"y\"\n",
    )
    .unwrap();
    assert_eq!(settings.limits_for(&spec).max_iterations, 2);
}

#[test]
fn base_image_must_be_allowed() {
    let text = "[docker]\nallowed_base_images = [\"agent-base/busybox:1\"]\n";
    let (line, column, message) = invalid(text);
    assert_eq!((line, column), (2, 23));
    assert!(
        message.contains("does not contain the base image `python:3.10-slim`"),
        "{message}"
    );
    let allowed = "[docker]\nbase_image = \"agent-base/busybox:1\"\nallowed_base_images = [\"agent-base/busybox:1\"]\n";
    assert!(parse(allowed).is_ok());
}

#[test]
fn prompts_are_resolved_against_the_config_folder() {
    let folder = tempfile::tempdir().unwrap();
    std::fs::create_dir(folder.path().join("prompts")).unwrap();
    std::fs::write(folder.path().join("prompts/system.md"), "be brief").unwrap();
    std::fs::write(folder.path().join("judge.md"), "judge well").unwrap();
    let path = folder.path().join("agent.toml");
    std::fs::write(
        &path,
        "[prompts]\nsystem = \"prompts/system.md\"\njudge = \"./judge.md\"\n",
    )
    .unwrap();
    let file = ConfigFile::load(&path).unwrap();
    let settings = resolve(
        Some(&file),
        &EnvOverrides::default(),
        &FlagOverrides::default(),
    );
    let root = std::fs::canonicalize(folder.path()).unwrap();
    assert_eq!(
        settings.prompts,
        PromptSettings {
            system: Some(root.join("prompts/system.md")),
            task: None,
            repair: None,
            judge: Some(root.join("judge.md")),
        }
    );
    assert!(settings.prompts.system.as_ref().unwrap().is_absolute());
}

#[test]
fn a_missing_prompt_file_is_an_error_with_location() {
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("agent.toml");
    let text = "[prompts]\nrepair = \"nowhere.md\"\n";
    let error = ConfigFile::parse(&path, text).unwrap_err();
    let ConfigError::Invalid { location, message } = error else {
        panic!("expected invalid, got {error:?}");
    };
    assert_eq!((location.line, location.column), (2, 10));
    assert!(message.starts_with("`prompts.repair`: `"), "{message}");
    assert!(message.ends_with("nowhere.md` does not exist"), "{message}");
    std::fs::create_dir(folder.path().join("folder.md")).unwrap();
    let error = ConfigFile::parse(&path, "[prompts]\ntask = \"folder.md\"\n").unwrap_err();
    assert!(error.to_string().ends_with("is not a file"), "{error}");
}

#[test]
fn a_missing_config_file_is_a_read_error() {
    let error = ConfigFile::load(Path::new("/nonexistent/agent.toml"))
        .unwrap_err()
        .into_iter()
        .next()
        .unwrap();
    assert!(matches!(error, ConfigError::Read { .. }));
    assert_eq!(
        error.to_string(),
        "cannot read config `/nonexistent/agent.toml`"
    );
}
