//! `[[file]]`: paths in the built image (type, mode, owner, executable bits, content),
//! read from a container created and never started.

use agent_spec::FileCheck;

use crate::job::Job;
use crate::verification::{Evidence, Facts, Kind};

pub(crate) struct Files<'a>(pub &'a [FileCheck]);

impl Kind for Files<'_> {
    fn judge(&self, _job: &Job, facts: &Facts) -> Evidence {
        let results: Vec<_> = self
            .0
            .iter()
            .flat_map(|check| check.judge(&facts.file(&check.path)))
            .collect();
        Evidence::of_results(
            results,
            "Files in the image do not meet the spec's [[file]] requirements (as the image has them after the build, before the program runs):",
        )
    }

    /// The `[[file]]` requirements in words, for the task prompt.
    fn describe(&self, _job: &Job) -> String {
        let files = self.0;
        if files.is_empty() {
            return String::new();
        }
        let mut text = String::from("\nThese paths in the image are checked after the build:\n");
        for file in files {
            if !file.exists {
                text.push_str(&format!("- `{}` must not exist\n", file.path));
                continue;
            }
            let mut wants = vec!["exists".to_owned()];
            if let Some(mode) = file.mode {
                wants.push(format!("mode {}", agent_spec::ls_mode(mode)));
            }
            if let Some(uid) = file.uid {
                wants.push(format!("owned by uid {uid}"));
            }
            if let Some(gid) = file.gid {
                wants.push(format!("group gid {gid}"));
            }
            match file.executable {
                Some(true) => wants.push("executable".to_owned()),
                Some(false) => wants.push("not executable".to_owned()),
                None => {}
            }
            match &file.content {
                Some(agent_spec::ContentMatcher::Contains(text)) => {
                    wants.push(format!("contains {text:?}"))
                }
                Some(agent_spec::ContentMatcher::NotContains(text)) => {
                    wants.push(format!("does not contain {text:?}"))
                }
                Some(agent_spec::ContentMatcher::Matches(regex)) => {
                    wants.push(format!("matches the regex {:?}", regex.as_str()))
                }
                None => {}
            }
            text.push_str(&format!("- `{}`: {}\n", file.path, wants.join(", ")));
        }
        text
    }
}
