//! One layer of settings: every field optional, `None` where the source is silent.
//! Each source (`agent.toml`, a spec's `[limits]`, the environment, the flags) is read
//! into a layer; layers are merged with [`Combine`] and resolved over the built-in
//! defaults into the types of `config::settings`.

/// Merging two layers: `a.combine(b)` keeps each value `a` sets and takes `b`'s where
/// `a` is silent, so the higher layer goes on the left.
pub trait Combine {
    #[must_use]
    fn combine(self, lower: Self) -> Self;
}

/// Declares the resolved struct of a table with its defaults, and its layer: the
/// same fields, each optional, with the layer's [`Combine`] and its resolution over
/// the defaults.
macro_rules! layer {
    (
        $(#[$meta:meta])*
        pub struct $resolved:ident, layer $layer:ident {
            $($(#[$field_meta:meta])* $field:ident: $type:ty = $default:expr,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $resolved {
            $($(#[$field_meta])* pub $field: $type,)*
        }

        impl Default for $resolved {
            fn default() -> Self {
                $resolved { $($field: $default,)* }
            }
        }

        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct $layer {
            $($(#[$field_meta])* pub $field: Option<$type>,)*
        }

        impl $crate::config::layer::Combine for $layer {
            fn combine(self, lower: Self) -> Self {
                $layer {
                    $($field: self.$field.or(lower.$field),)*
                }
            }
        }

        impl $layer {
            /// This layer's values, and `defaults`' where it is silent.
            pub fn resolve(self, defaults: $resolved) -> $resolved {
                $resolved {
                    $($field: self.$field.unwrap_or(defaults.$field),)*
                }
            }
        }
    };
}
/// Declares a table of `agent.toml` from one declaration of each key: its name,
/// resolved type, default, how the file writes it and how it is checked. It makes the
/// resolved settings and their defaults, the layer with its merge (`layer!`), the
/// file's table with spans (which the JSON Schema of `agent.toml` is also generated
/// from) and the reading of that table into the layer.
///
/// `$how` is a method of `Source`: `text` and `number` check the value with `$check`
/// and word its problem with the key; `with` hands the key and the value as written to
/// `$check`, which reads it. The docs of the table and of each key go on all three; the
/// `@` form takes the file's docs apart, for a table whose schema says less.
macro_rules! table {
    (
        $(#[$meta:meta])*
        pub struct $resolved:ident, layer $layer:ident, file $file:ident {
            $(
                $(#[$field_meta:meta])*
                $field:ident: $type:ty = $default:expr;
                    $raw:ty => $how:ident($check:expr),
            )*
        }
    ) => {
        $crate::config::layer::table! {
            @ [$(#[$meta])*] [$(#[$meta])*] $resolved, $layer, $file {
                $([$(#[$field_meta])*] [$(#[$field_meta])*] $field: $type = $default;
                    $raw => $how($check),)*
            }
        }
    };
    (
        @ [$(#[$meta:meta])*] [$(#[$file_meta:meta])*] $resolved:ident, $layer:ident, $file:ident {
            $(
                [$(#[$field_meta:meta])*] [$(#[$file_field_meta:meta])*]
                $field:ident: $type:ty = $default:expr;
                    $raw:ty => $how:ident($check:expr),
            )*
        }
    ) => {
        $crate::config::layer::layer! {
            $(#[$meta])*
            pub struct $resolved, layer $layer {
                $($(#[$field_meta])* $field: $type = $default,)*
            }
        }

        $(#[$file_meta])*
        #[derive(serde::Deserialize, schemars::JsonSchema, Default)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct $file {
            $($(#[$file_field_meta])* pub(crate) $field: Option<$raw>,)*
        }

        impl $file {
            /// Every value checked, its problem pointing at it.
            pub(crate) fn read(
                self,
                source: &$crate::validate::Source<'_>,
            ) -> Result<$layer, $crate::errors::ConfigError> {
                Ok($layer {
                    $($field: source.$how(stringify!($field), self.$field, $check)?,)*
                })
            }
        }
    };
}
pub(crate) use {layer, table};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::limits::{Limits, LimitsLayer};

    #[test]
    fn the_higher_layer_wins_field_by_field() {
        let high = LimitsLayer {
            max_iterations: Some(2),
            ..LimitsLayer::default()
        };
        let low = LimitsLayer {
            max_iterations: Some(5),
            memory_mb: Some(64),
            ..LimitsLayer::default()
        };
        let limits = high.combine(low).resolve(Limits::default());
        assert_eq!(limits.max_iterations, 2);
        assert_eq!(limits.memory_mb, 64);
        assert_eq!(limits.pids, Limits::default().pids);
    }
}
