//! The resolved settings a spec runs with: every value decided, nothing optional
//! that a layer could still fill in. The layers (`config::layer`) produce them; the
//! `FromStr` of each choice is how every source spells it.

/// Declares a choice: an enum whose variants each have one spelling, and its
/// `FromStr`, whose problem names what is chosen and lists every spelling.
macro_rules! choice {
    (
        $(#[$meta:meta])*
        pub enum $name:ident, $what:literal {
            $($(#[$variant_meta:meta])* $variant:ident = $spelling:literal,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$variant_meta])* $variant,)*
        }

        impl $name {
            /// As the settings write it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $spelling,)*
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(value: &str) -> Result<$name, String> {
                match value {
                    $($spelling => Ok($name::$variant),)*
                    _ => Err(format!(
                        "unknown {} `{value}`; expected {}",
                        $what,
                        one_of(&[$($spelling),*])
                    )),
                }
            }
        }
    };
}

/// "`a`, `b` or `c`".
fn one_of(spellings: &[&str]) -> String {
    let quoted: Vec<String> = spellings.iter().map(|one| format!("`{one}`")).collect();
    match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

choice! {
    /// `[model] structured_output`: how the reply's shape is asked for.
    pub enum StructuredOutput, "mode" {
        /// Chosen per server: the strictest mode it supports.
        Auto = "auto",
        JsonSchema = "json_schema",
        JsonObject = "json_object",
        None = "none",
    }
}

/// One engine of `[docker] engines`: its address, how many builds and runs it
/// takes at once (`None`: its CPU count), and for an `ssh://` engine the private key
/// to log in with (`None`: what `ssh` itself would use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSetting {
    pub url: String,
    pub slots: Option<usize>,
    pub identity: Option<String>,
}

choice! {
    /// `[docker] builder` (or `--builder`): which builder an engine's builds go to.
    pub enum BuilderChoice, "builder" {
        /// Per engine, the builder that does less work there (BuildKit where the engine
        /// runs it, else the classic builder).
        Auto = "auto",
        Classic = "classic",
        /// BuildKit; an engine that cannot run it is an error.
        BuildKit = "buildkit",
    }
}

choice! {
    /// `[docker] build_network`: what a build's `RUN` steps may reach.
    pub enum BuildNetwork, "network" {
        /// Only what `[docker] build_allow` names, through the egress gate.
        Allowlist = "allowlist",
        /// The engine's default network: anything the engine reaches.
        Default = "default",
        None = "none",
        Host = "host",
    }
}

choice! {
    /// `[limits] network`: the network a run gets.
    pub enum NetworkMode, "network" {
        None = "none",
        Bridge = "bridge",
    }
}

/// What the model is told to build `FROM` unless `[docker] base_image` says otherwise.
pub(crate) const DEFAULT_BASE_IMAGE: &str = "python:3.10-slim";
/// The probe image unless `[docker] probe_image` says otherwise: small, and built
/// locally by `scripts/base-images`.
pub(crate) const DEFAULT_PROBE_IMAGE: &str = "agent-base/busybox:1";
/// The image of the build egress gate and relay unless `[docker] egress_image` says
/// otherwise: any image with `python3` serves, and this one is there wherever the
/// default base image is.
pub(crate) const DEFAULT_EGRESS_IMAGE: &str = DEFAULT_BASE_IMAGE;
/// The build cache's default cap: room for the dependency layers of many specs.
pub(crate) const DEFAULT_CACHE_MAX_MB: u64 = 4096;
