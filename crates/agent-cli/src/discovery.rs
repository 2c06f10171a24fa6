//! Which engine the Docker CLI would talk to when none is named: `DOCKER_HOST`; else
//! the context `DOCKER_CONTEXT` names, else `currentContext` of `config.json` (the
//! context `default` meaning none); else the first socket that exists of the default
//! one, the rootless Docker one and the Podman ones; else the default socket, so that
//! the error names it. A context is read from the Docker CLI's own store: its engine
//! from `contexts/meta/<sha256 of its name>/meta.json`, its TLS files from
//! `contexts/tls/<the same hash>/docker/`. The values of the variables come in
//! resolved; this module reads only files.

use std::fmt;
use std::path::{Path, PathBuf};

use agent_sandbox::{DEFAULT_SOCKET, DockerConfigError, TlsFiles, read_docker_config};
use serde::Deserialize;

/// The context that stands for "no context": `DOCKER_HOST` or the local socket.
const DEFAULT_CONTEXT: &str = "default";

/// What the environment says about the engine, read once by the caller.
#[derive(Debug, Clone, Default)]
pub struct DockerEnvironment {
    /// `DOCKER_HOST`.
    pub host: Option<String>,
    /// `DOCKER_CONTEXT`.
    pub context: Option<String>,
    /// The folder of `config.json` and `contexts/` (`DOCKER_CONFIG`, else `~/.docker`).
    pub config_dir: PathBuf,
    /// `XDG_RUNTIME_DIR`, where rootless Docker and Podman put their sockets.
    pub runtime_dir: Option<PathBuf>,
}

/// The engine found, its TLS files when a context names them, and why it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    pub url: String,
    /// The context's client certificates; `None` leaves TLS to `DOCKER_TLS_VERIFY`
    /// (the Docker CLI's rule for `DOCKER_HOST` and the local socket).
    pub context_tls: Option<TlsFiles>,
    pub found_by: FoundBy,
}

/// Why an engine was chosen, in words for `agent doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FoundBy {
    /// `DOCKER_HOST` is set.
    Host,
    /// A context, named by `DOCKER_CONTEXT` or by `currentContext` in `config`.
    Context {
        name: String,
        config: Option<PathBuf>,
    },
    /// A socket that exists: the default one, or the first rootless or Podman one.
    Socket(PathBuf),
    /// No socket exists: the default one, for the error to name.
    NoSocket,
}

/// Words that follow "found by".
impl fmt::Display for FoundBy {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNSET: &str = "DOCKER_HOST, DOCKER_CONTEXT and a current context unset";
        match self {
            FoundBy::Host => write!(formatter, "DOCKER_HOST"),
            FoundBy::Context { name, config: None } => {
                write!(formatter, "context \"{name}\" (DOCKER_CONTEXT)")
            }
            FoundBy::Context {
                name,
                config: Some(config),
            } => write!(
                formatter,
                "context \"{name}\" (currentContext in {})",
                config.display()
            ),
            FoundBy::Socket(_) => {
                write!(formatter, "the first local socket that exists ({UNSET})")
            }
            FoundBy::NoSocket => write!(
                formatter,
                "the default socket, as no local socket exists ({UNSET})"
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("cannot read the Docker CLI's config `{path}`")]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the Docker CLI's config `{path}` is not valid JSON")]
    ParseConfig {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("the Docker context `{name}` ({chosen_by}) does not exist: no `{meta}`")]
    MissingContext {
        name: String,
        chosen_by: String,
        meta: PathBuf,
    },
    #[error("cannot read the Docker context `{name}` from `{meta}`")]
    ReadContext {
        name: String,
        meta: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the Docker context `{name}` in `{meta}` is not a context's meta.json")]
    ParseContext {
        name: String,
        meta: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "the Docker context `{name}` names no docker endpoint (`Endpoints.docker.Host` in `{meta}`)"
    )]
    NoEndpoint { name: String, meta: PathBuf },
    #[error("the Docker context `{name}` skips TLS verification, which `agent` never does")]
    SkipTlsVerify { name: String },
    #[error("the Docker context `{name}` has TLS files in `{folder}` but not {missing}")]
    PartialTls {
        name: String,
        folder: PathBuf,
        missing: String,
    },
}

impl DiscoveryError {
    /// What the user can do about it.
    pub fn hint(&self) -> String {
        match self {
            DiscoveryError::ReadConfig { .. } | DiscoveryError::ParseConfig { .. } => {
                crate::failure::DOCKER_CONFIG_HINT.to_string()
            }
            DiscoveryError::MissingContext { .. }
            | DiscoveryError::ReadContext { .. }
            | DiscoveryError::ParseContext { .. }
            | DiscoveryError::NoEndpoint { .. } => {
                "`docker context ls` lists the contexts there are; `docker context use <name>` or DOCKER_CONTEXT picks one (`default`: DOCKER_HOST or the local socket), DOCKER_CONFIG names the folder they are read from".to_string()
            }
            DiscoveryError::SkipTlsVerify { name } | DiscoveryError::PartialTls { name, .. } => format!(
                "give the context the engine's CA and a client certificate: `docker context update {name} --docker \"host=…,ca=…/ca.pem,cert=…/cert.pem,key=…/key.pem\"`, or name the engine with `--engine` and DOCKER_TLS_VERIFY / DOCKER_CERT_PATH"
            ),
        }
    }
}

/// The subset of a context's `meta.json` that says where its engine is.
#[derive(Deserialize)]
struct ContextMeta {
    #[serde(rename = "Endpoints", default)]
    endpoints: Endpoints,
}

#[derive(Deserialize, Default)]
struct Endpoints {
    docker: Option<DockerEndpoint>,
}

#[derive(Deserialize)]
struct DockerEndpoint {
    #[serde(rename = "Host", default)]
    host: String,
    #[serde(rename = "SkipTLSVerify", default)]
    skip_tls_verify: bool,
}

/// The engine the Docker CLI would use; `socket_exists` says whether a socket path is
/// there (the file system in production, a fixed answer in tests).
pub fn discover(
    environment: &DockerEnvironment,
    socket_exists: &dyn Fn(&Path) -> bool,
) -> Result<Discovered, DiscoveryError> {
    if let Some(host) = &environment.host {
        return Ok(Discovered {
            url: host.clone(),
            context_tls: None,
            found_by: FoundBy::Host,
        });
    }
    if let Some((name, config)) = context_name(environment)? {
        return read_context(&environment.config_dir, name, config);
    }
    Ok(local_socket(environment, socket_exists))
}

/// The context asked for, unless it is `default`: `DOCKER_CONTEXT`, else `currentContext`
/// with the `config.json` it came from.
fn context_name(
    environment: &DockerEnvironment,
) -> Result<Option<(String, Option<PathBuf>)>, DiscoveryError> {
    let chosen = match &environment.context {
        Some(name) => Some((name.clone(), None)),
        None => {
            let path = environment.config_dir.join("config.json");
            current_context(&path)?.map(|name| (name, Some(path)))
        }
    };
    Ok(chosen.filter(|(name, _)| name != DEFAULT_CONTEXT))
}

/// `currentContext` of `config.json`; `None` when the file or the key is missing.
fn current_context(path: &Path) -> Result<Option<String>, DiscoveryError> {
    let config = read_docker_config(path).map_err(|error| match error {
        DockerConfigError::Read(source) => DiscoveryError::ReadConfig {
            path: path.to_path_buf(),
            source,
        },
        DockerConfigError::Parse(source) => DiscoveryError::ParseConfig {
            path: path.to_path_buf(),
            source,
        },
    })?;
    Ok(config.current_context.filter(|name| !name.is_empty()))
}

/// A context from the Docker CLI's store: its docker endpoint and its TLS files.
fn read_context(
    config_dir: &Path,
    name: String,
    config: Option<PathBuf>,
) -> Result<Discovered, DiscoveryError> {
    let id = agent_loop::sha256_hex(name.as_bytes());
    let meta = config_dir.join("contexts/meta").join(&id).join("meta.json");
    let text = match std::fs::read_to_string(&meta) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let chosen_by = match &config {
                Some(path) => format!("`currentContext` in `{}`", path.display()),
                None => "DOCKER_CONTEXT".to_string(),
            };
            return Err(DiscoveryError::MissingContext {
                name,
                chosen_by,
                meta,
            });
        }
        Err(source) => return Err(DiscoveryError::ReadContext { name, meta, source }),
    };
    let parsed: ContextMeta = match serde_json::from_str(&text) {
        Ok(parsed) => parsed,
        Err(source) => return Err(DiscoveryError::ParseContext { name, meta, source }),
    };
    let Some(endpoint) = parsed
        .endpoints
        .docker
        .filter(|docker| !docker.host.is_empty())
    else {
        return Err(DiscoveryError::NoEndpoint { name, meta });
    };
    if endpoint.skip_tls_verify {
        return Err(DiscoveryError::SkipTlsVerify { name });
    }
    let context_tls = context_tls(
        &config_dir.join("contexts/tls").join(&id).join("docker"),
        &name,
    )?;
    Ok(Discovered {
        url: endpoint.host,
        context_tls,
        found_by: FoundBy::Context { name, config },
    })
}

/// The context's `ca.pem`, `cert.pem` and `key.pem`: all three, or none (a plain
/// connection). The engine client takes TLS only with all three.
fn context_tls(folder: &Path, name: &str) -> Result<Option<TlsFiles>, DiscoveryError> {
    let files = TlsFiles::in_folder(folder);
    let named = [
        ("ca.pem", &files.ca),
        ("cert.pem", &files.cert),
        ("key.pem", &files.key),
    ];
    let missing: Vec<&str> = named
        .iter()
        .filter(|(_, path)| !path.is_file())
        .map(|(file, _)| *file)
        .collect();
    match missing.len() {
        0 => Ok(Some(files)),
        3 => Ok(None),
        _ => Err(DiscoveryError::PartialTls {
            name: name.to_owned(),
            folder: folder.to_path_buf(),
            missing: missing.join(" nor "),
        }),
    }
}

/// The default socket when it exists; else the first rootless Docker or Podman
/// socket that does; else the default one.
fn local_socket(
    environment: &DockerEnvironment,
    socket_exists: &dyn Fn(&Path) -> bool,
) -> Discovered {
    let default = PathBuf::from(DEFAULT_SOCKET.trim_start_matches("unix://"));
    let mut candidates = vec![default];
    if let Some(runtime) = &environment.runtime_dir {
        candidates.push(runtime.join("docker.sock"));
        candidates.push(runtime.join("podman/podman.sock"));
    }
    candidates.push(PathBuf::from("/run/podman/podman.sock"));
    match candidates.into_iter().find(|path| socket_exists(path)) {
        Some(path) => Discovered {
            url: format!("unix://{}", path.display()),
            context_tls: None,
            found_by: FoundBy::Socket(path),
        },
        None => Discovered {
            url: DEFAULT_SOCKET.to_owned(),
            context_tls: None,
            found_by: FoundBy::NoSocket,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `DOCKER_CONFIG` folder laid out as the Docker CLI writes it.
    struct Store {
        dir: tempfile::TempDir,
    }

    impl Store {
        fn new() -> Store {
            Store {
                dir: tempfile::tempdir().expect("a temp dir"),
            }
        }

        fn path(&self) -> &Path {
            self.dir.path()
        }

        fn config(&self, text: &str) {
            std::fs::write(self.path().join("config.json"), text).expect("config.json");
        }

        /// A context as `docker context create NAME --docker host=HOST` writes it.
        fn context(&self, name: &str, host: &str, skip_tls_verify: bool) -> PathBuf {
            let id = agent_loop::sha256_hex(name.as_bytes());
            let folder = self.path().join("contexts/meta").join(id);
            std::fs::create_dir_all(&folder).expect("meta folder");
            let meta = serde_json::json!({
                "Name": name,
                "Metadata": {"Description": "made by a test"},
                "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": skip_tls_verify}},
            });
            std::fs::write(folder.join("meta.json"), meta.to_string()).expect("meta.json");
            folder.join("meta.json")
        }

        fn tls(&self, name: &str, files: &[&str]) -> PathBuf {
            let id = agent_loop::sha256_hex(name.as_bytes());
            let folder = self.path().join("contexts/tls").join(id).join("docker");
            std::fs::create_dir_all(&folder).expect("tls folder");
            for file in files {
                std::fs::write(folder.join(file), "PEM").expect("pem");
            }
            folder
        }

        fn environment(&self) -> DockerEnvironment {
            DockerEnvironment {
                config_dir: self.path().to_path_buf(),
                ..DockerEnvironment::default()
            }
        }
    }

    fn no_socket(_: &Path) -> bool {
        false
    }

    #[test]
    fn a_context_is_looked_up_under_the_folder_the_docker_cli_names_it_by() {
        // `docker context create local` writes `contexts/meta/25bf8e…/meta.json`.
        let store = Store::new();
        let folder = store
            .path()
            .join("contexts/meta/25bf8e1a2393f1108d37029b3df5593236c755742ec93465bbafa9b290bddcf6");
        std::fs::create_dir_all(&folder).expect("meta folder");
        std::fs::write(
            folder.join("meta.json"),
            r#"{"Name":"local","Metadata":{},"Endpoints":{"docker":{"Host":"tcp://localhost:2376","SkipTLSVerify":false}}}"#,
        )
        .expect("meta.json");
        let environment = DockerEnvironment {
            context: Some("local".into()),
            ..store.environment()
        };
        assert_eq!(
            discover(&environment, &no_socket).expect("found").url,
            "tcp://localhost:2376"
        );
    }

    #[test]
    fn docker_host_wins_over_a_context() {
        let store = Store::new();
        store.config(r#"{"currentContext": "colima"}"#);
        store.context("colima", "unix:///colima.sock", false);
        let environment = DockerEnvironment {
            host: Some("tcp://10.0.0.1:2376".into()),
            context: Some("colima".into()),
            ..store.environment()
        };
        let found = discover(&environment, &no_socket).expect("found");
        assert_eq!(found.url, "tcp://10.0.0.1:2376");
        assert_eq!(found.found_by, FoundBy::Host);
        assert_eq!(found.found_by.to_string(), "DOCKER_HOST");
    }

    #[test]
    fn the_current_context_of_config_json_is_read_from_the_store() {
        let store = Store::new();
        store.config(r#"{"auths": {}, "currentContext": "colima"}"#);
        store.context(
            "colima",
            "unix:///home/me/.colima/default/docker.sock",
            false,
        );
        let found = discover(&store.environment(), &no_socket).expect("found");
        assert_eq!(found.url, "unix:///home/me/.colima/default/docker.sock");
        assert_eq!(found.context_tls, None);
        let config = store.path().join("config.json");
        assert_eq!(
            found.found_by.to_string(),
            format!(
                "context \"colima\" (currentContext in {})",
                config.display()
            )
        );
    }

    #[test]
    fn docker_context_wins_over_the_current_context() {
        let store = Store::new();
        store.config(r#"{"currentContext": "colima"}"#);
        store.context("colima", "unix:///colima.sock", false);
        store.context("orbstack", "unix:///orbstack.sock", false);
        let environment = DockerEnvironment {
            context: Some("orbstack".into()),
            ..store.environment()
        };
        let found = discover(&environment, &no_socket).expect("found");
        assert_eq!(found.url, "unix:///orbstack.sock");
        assert_eq!(
            found.found_by.to_string(),
            "context \"orbstack\" (DOCKER_CONTEXT)"
        );
    }

    #[test]
    fn the_default_context_means_no_context() {
        let store = Store::new();
        store.config(r#"{"currentContext": "default"}"#);
        let found = discover(&store.environment(), &|path| {
            path == Path::new("/var/run/docker.sock")
        })
        .expect("found");
        assert_eq!(found.url, "unix:///var/run/docker.sock");
        assert_eq!(
            found.found_by,
            FoundBy::Socket(PathBuf::from("/var/run/docker.sock"))
        );
        let environment = DockerEnvironment {
            context: Some("default".into()),
            ..store.environment()
        };
        assert_eq!(
            discover(&environment, &no_socket).expect("found").found_by,
            FoundBy::NoSocket
        );
    }

    #[test]
    fn a_context_that_does_not_exist_is_named_with_where_it_was_looked_for() {
        let store = Store::new();
        store.config(r#"{"currentContext": "gone"}"#);
        let error = discover(&store.environment(), &no_socket).expect_err("no such context");
        let text = error.to_string();
        assert!(text.contains("`gone`"), "{text}");
        assert!(text.contains("currentContext"), "{text}");
        let meta = store
            .path()
            .join("contexts/meta")
            .join(agent_loop::sha256_hex(b"gone"))
            .join("meta.json");
        assert!(text.contains(&meta.display().to_string()), "{text}");
        assert!(error.hint().contains("docker context ls"));

        let environment = DockerEnvironment {
            context: Some("typo".into()),
            ..store.environment()
        };
        let text = discover(&environment, &no_socket)
            .expect_err("no such context")
            .to_string();
        assert!(text.contains("`typo` (DOCKER_CONTEXT)"), "{text}");
    }

    #[test]
    fn a_context_with_all_three_tls_files_uses_them() {
        let store = Store::new();
        store.context("remote", "tcp://builder:2376", false);
        let folder = store.tls("remote", &["ca.pem", "cert.pem", "key.pem"]);
        let environment = DockerEnvironment {
            context: Some("remote".into()),
            ..store.environment()
        };
        let found = discover(&environment, &no_socket).expect("found");
        assert_eq!(found.url, "tcp://builder:2376");
        assert_eq!(found.context_tls, Some(TlsFiles::in_folder(&folder)));
    }

    #[test]
    fn a_context_with_some_tls_files_or_skipping_verification_is_refused() {
        let store = Store::new();
        store.context("half", "tcp://builder:2376", false);
        store.tls("half", &["ca.pem"]);
        store.context("careless", "tcp://builder:2376", true);
        let environment = |name: &str| DockerEnvironment {
            context: Some(name.into()),
            ..store.environment()
        };
        let half = discover(&environment("half"), &no_socket).expect_err("partial TLS");
        assert!(
            half.to_string().contains("not cert.pem nor key.pem"),
            "{half}"
        );
        let careless = discover(&environment("careless"), &no_socket).expect_err("skip verify");
        assert!(matches!(careless, DiscoveryError::SkipTlsVerify { .. }));
        assert!(careless.hint().contains("docker context update careless"));
    }

    #[test]
    fn a_broken_config_or_meta_is_an_error_naming_the_file() {
        let store = Store::new();
        store.config("{not json");
        let error = discover(&store.environment(), &no_socket).expect_err("broken config");
        assert!(
            matches!(error, DiscoveryError::ParseConfig { .. }),
            "{error}"
        );

        let store = Store::new();
        let meta = store.context("odd", "unix:///x.sock", false);
        std::fs::write(&meta, r#"{"Endpoints": {"docker": {"Host": ""}}}"#).expect("meta");
        let environment = DockerEnvironment {
            context: Some("odd".into()),
            ..store.environment()
        };
        let error = discover(&environment, &no_socket).expect_err("no endpoint");
        assert!(
            error.to_string().contains("Endpoints.docker.Host"),
            "{error}"
        );
        std::fs::write(&meta, r#"{"Endpoints": "unix:///x.sock"}"#).expect("meta");
        let error = discover(&environment, &no_socket).expect_err("not a meta.json");
        assert!(
            matches!(error, DiscoveryError::ParseContext { .. }),
            "{error}"
        );
    }

    #[test]
    fn without_the_default_socket_the_rootless_and_podman_sockets_are_tried_in_order() {
        let store = Store::new();
        let runtime = PathBuf::from("/run/user/1000");
        let environment = DockerEnvironment {
            runtime_dir: Some(runtime.clone()),
            ..store.environment()
        };
        let only = |present: PathBuf| move |path: &Path| path == present;
        let cases = [
            runtime.join("docker.sock"),
            runtime.join("podman/podman.sock"),
            PathBuf::from("/run/podman/podman.sock"),
        ];
        for present in cases {
            let found = discover(&environment, &only(present.clone())).expect("found");
            assert_eq!(found.url, format!("unix://{}", present.display()));
            assert_eq!(found.found_by, FoundBy::Socket(present));
        }
        // Rootless Docker comes before Podman when both are there.
        let both = |path: &Path| path.starts_with(&runtime);
        assert_eq!(
            discover(&environment, &both).expect("found").url,
            "unix:///run/user/1000/docker.sock"
        );
        // The default socket comes first of all.
        assert_eq!(
            discover(&environment, &|_: &Path| true).expect("found").url,
            DEFAULT_SOCKET
        );
        let none = discover(&environment, &no_socket).expect("found");
        assert_eq!(none.url, DEFAULT_SOCKET);
        assert_eq!(none.found_by, FoundBy::NoSocket);
    }
}
