//! The base image a build stands on, pinned: a leaf type, named by the lock, the
//! report and the labels; the `base` module finds it.

/// The base image as the Dockerfile names it, and the reference builds use instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BasePin {
    pub name: String,
    pub reference: String,
}

impl BasePin {
    /// The digest alone (`sha256:…`): a repo digest's, or the image id.
    pub(crate) fn digest(&self) -> &str {
        self.reference
            .rsplit_once('@')
            .map_or(self.reference.as_str(), |(_, digest)| digest)
    }
}
