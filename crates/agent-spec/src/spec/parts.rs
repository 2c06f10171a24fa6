//! What a spec checks besides running its image (its `[[check]]`s and `[[case]]`s):
//! the one place that lists those parts, for whoever asks whether a spec has any
//! (the parser deciding the judge, the verifier choosing its cases) or counts them
//! (`agent check`).

use crate::check::ImageFacts;
use crate::spec::Spec;

/// A part of a spec checked besides its runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecPart {
    /// `[image]`, counted by the results it gives.
    Image,
    /// `[[file]]`s.
    Files,
    /// `structure_tests`, counted by file.
    StructureTests,
    /// `[service]`, counted by its `[[probe]]`s.
    Service,
    /// `[[suite]]`s.
    Suites,
}

impl Spec {
    /// Each part the spec has besides its runs, with its count, in the order of the
    /// guide; none it lacks.
    pub fn other_parts(&self) -> Vec<(SpecPart, usize)> {
        let image = self.image.as_ref().map(|image| {
            let results = image.judge(&ImageFacts::default()).len();
            (SpecPart::Image, results)
        });
        let files = (SpecPart::Files, self.files.len());
        let structure_tests = (SpecPart::StructureTests, self.structure_tests.len());
        let service = self
            .service
            .as_ref()
            .map(|_| (SpecPart::Service, self.probes.len()));
        let suites = (SpecPart::Suites, self.suites.len());
        let listed = |part: (SpecPart, usize)| Some(part).filter(|(_, n)| *n > 0);
        [
            image,
            listed(files),
            listed(structure_tests),
            service,
            listed(suites),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// Whether the spec checks nothing but its runs: no part of [`Spec::other_parts`].
    pub fn checks_runs_only(&self) -> bool {
        self.other_parts().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::testing::{MINIMAL, parse};

    #[test]
    fn a_spec_lists_the_parts_it_has_in_order_and_counts_them() {
        let bare = parse(&format!("{MINIMAL}[[check]]\nexit_code = 0\n")).unwrap();
        assert_eq!(bare.other_parts(), []);
        assert!(bare.checks_runs_only());
        let spec = parse(&format!(
            "{MINIMAL}[[file]]\npath = \"/a\"\nexists = true\n\
             [[file]]\npath = \"/b\"\nexists = false\n\
             [image]\nnon_root = true\nworkdir = \"/app\"\n"
        ))
        .unwrap();
        assert_eq!(
            spec.other_parts(),
            [(SpecPart::Image, 2), (SpecPart::Files, 2)]
        );
        assert!(!spec.checks_runs_only());
        assert!(
            !spec.judge,
            "a spec with other parts is not judged by default"
        );
    }
}
