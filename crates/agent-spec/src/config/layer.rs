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

/// Declares a layer struct of optional fields for a resolved struct with the same
/// field names, with its [`Combine`] and its resolution over defaults.
macro_rules! layer {
    (
        $(#[$meta:meta])*
        pub struct $layer:ident => $resolved:ident {
            $($(#[$field_meta:meta])* $field:ident: $type:ty,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct $layer {
            $($(#[$field_meta])* pub $field: Option<$type>,)*
        }

        impl Combine for $layer {
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
pub(crate) use layer;

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
