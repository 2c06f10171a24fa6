//! `[image]`: the built image's config (user, workdir, ports, env, labels, entrypoint,
//! cmd, size) from its inspect; no container started.

use agent_spec::ImageChecks;

use crate::job::Job;
use crate::report::Outcome;
use crate::verification::{Evidence, Facts, Failure, Kind, failed_list, first_failed};

pub(crate) struct Image<'a>(pub &'a ImageChecks);

impl Kind for Image<'_> {
    fn judge(&self, _job: &Job, facts: &Facts) -> Evidence {
        let results = self.0.judge(&facts.image);
        let failure = results.iter().any(|result| !result.passed).then(|| {
            let mut feedback = String::from(
                "The image's configuration does not meet the spec's [image] requirements (set them in the Dockerfile: USER, WORKDIR, EXPOSE, ENV, LABEL, ENTRYPOINT, CMD; keep the image small):\n",
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
