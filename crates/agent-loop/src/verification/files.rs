//! `[[file]]`: paths in the built image (type, mode, owner, executable bits, content),
//! read from a container created and never started.

use agent_spec::FileCheck;

use crate::job::Job;
use crate::report::Outcome;
use crate::verification::{Evidence, Facts, Failure, Kind, failed_list, first_failed};

pub(crate) struct Files<'a>(pub &'a [FileCheck]);

impl Kind for Files<'_> {
    fn judge(&self, _job: &Job, facts: &Facts) -> Evidence {
        let results: Vec<_> = self
            .0
            .iter()
            .flat_map(|check| check.judge(&facts.file(&check.path)))
            .collect();
        let failure = results.iter().any(|result| !result.passed).then(|| {
            let mut feedback = String::from(
                "Files in the image do not meet the spec's [[file]] requirements (as the image has them after the build, before the program runs):\n",
            );
            failed_list(&mut feedback, &results);
            Failure {
                outcome: Outcome::ChecksFailed,
                detail: first_failed(&results),
                feedback,
            }
        });
        Evidence { results, failure }
    }
}
