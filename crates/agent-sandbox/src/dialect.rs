//! What differs between the engines that speak the Docker Engine API (Docker's own,
//! Podman's compatible service), in one place: which product answered, how its build
//! output marks steps and images, how it names and lists images. Every other module
//! asks here instead of trusting one engine's answers.
//!
//! What each engine answers, as checked (Docker 20.10 / API 1.41, Podman 4.3.1):
//! - Who it is: Docker's `/version` lists a component `Engine`; Podman's lists
//!   `Podman Engine` (and its `/_ping` carries `Libpod-Buildah-Version`). Both say API
//!   1.41, so the API version does not tell them apart.
//! - Build output: Docker's classic builder prints `Step 2/5 : RUN …`, ` ---> <id>`,
//!   ` ---> Running in <id>` and ` ---> Using cache`; Podman's (buildah) prints
//!   `STEP 2/5: RUN …`, `--> <id>` (11 hex), `--> Using cache <id>` and `COMMIT`.
//! - Names: Podman lists an image tagged `agent/x:1` through the API as
//!   `docker.io/agent/x:1` (loaded or tagged by its CLI: `localhost/agent/x:1`), and an
//!   untagged image with `RepoTags` null; Docker 20.10 with `<none>:<none>`, and
//!   Docker from API 1.43 (and its containerd store) with `[]`.
//! - Listing by label: Podman 4.3 answers `GET /images/json` with `[]` when the filter
//!   holds two labels (podman#18092); one label filters as on Docker. Containers
//!   filter by several labels on both.
//! - Labelling an image: Docker loads a config-only archive (no layer tarballs) over
//!   layers it has; Podman refuses it (`Some layer tarfiles are missing in the
//!   tarball`). Podman's commit adds its own environment (`container=podman`,
//!   `TERM=xterm`) to the image, so a commit is kept only when the config came out as
//!   it went in (see `seal`).
//! - Removing an image: Podman also removes its untagged parents, whatever `noprune`
//!   says; a concurrent build whose cached parent went that way fails with `layer not
//!   known` and is built again (see `build`), and the seal holds a container of the
//!   image it labels so the image cannot go that way.
//! - Out of memory: Docker sets `State.OOMKilled`; Podman 4.3 leaves it `false` (see
//!   [`oom_killed`]).
//! - Build errors: a `FROM` the engine cannot get reads `pull access denied …` on
//!   Docker and `initializing source docker://x: pinging container registry …` on
//!   Podman; both name the registry, which is what `build` looks for.
//! - Cache sources: `cachefrom` is one name, not a list, on Podman before 4.4.
//! - Builders: Docker's engine also runs BuildKit, through the session API (from API
//!   1.39), whose steps are vertices (`[2/3] RUN …`) in status messages; Podman's
//!   service takes the classic build API only.
//! - Not used, so not a difference here: `/events` (the run's outcome comes from wait
//!   and inspect).
//! - Docker 29's containerd store names an image by its manifest digest and needs API
//!   1.44; nothing here compares ids across engines or pins a version.

use std::collections::HashMap;

use crate::outcome::{BuildOutcome, Builder, Product, SealMethod};
use bollard::models::{ImageInspect, SystemVersion};

/// The product and its own version, from `/version`'s components (Podman's
/// top-level `Version` is its own too, but the component says which product it is).
pub(crate) fn product_of(version: &SystemVersion) -> (Product, String) {
    let components = version.components.as_deref().unwrap_or_default();
    let component = |name: &str| {
        components
            .iter()
            .find(|component| component.name.eq_ignore_ascii_case(name))
            .map(|component| component.version.clone())
    };
    if let Some(podman) = component("Podman Engine") {
        return (Product::Podman, podman);
    }
    let top = version.version.clone().unwrap_or_default();
    match component("Engine") {
        Some(docker) => (Product::Docker, docker),
        None => (Product::Other, top),
    }
}

/// Whether the engine takes `cachefrom` as the list bollard sends. Docker reads a JSON
/// array of references; Podman before 4.4 reads one repository name and answers the
/// array with a 400, so such an engine is sent no cache sources and builds without them.
pub(crate) fn takes_cache_from_list(product: Product, version: &str) -> bool {
    product != Product::Podman || major_minor(version) >= (4, 4)
}

/// The first two numbers of a version (`4.3.1`, `1.41`, `4.4.0-rc1`); a part that is
/// not a number counts as 0.
fn major_minor(version: &str) -> (u32, u32) {
    let mut numbers = version
        .split(['.', '-'])
        .map(|part| part.parse::<u32>().unwrap_or(0));
    (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0))
}

/// A build step line, either builder's: index, total and the instruction.
pub(crate) fn build_step(line: &str) -> Option<(u32, u32, &str)> {
    let (counts, instruction) = if let Some(rest) = line.strip_prefix("Step ") {
        rest.split_once(" : ")?
    } else {
        line.strip_prefix("STEP ")?.split_once(": ")?
    };
    let (index, total) = counts.split_once('/')?;
    Some((
        index.trim().parse().ok()?,
        total.trim().parse().ok()?,
        instruction.trim(),
    ))
}

/// A BuildKit vertex that is a Dockerfile step (`[2/3] RUN …`, `[build 1/4] FROM …`):
/// index and total within its stage, and the instruction. BuildKit's own vertices
/// (`[internal] load build context`, `exporting to image`) are none.
pub(crate) fn buildkit_step(name: &str) -> Option<(u32, u32, &str)> {
    let (head, instruction) = name.strip_prefix('[')?.split_once("] ")?;
    let (index, total) = head.rsplit(' ').next()?.split_once('/')?;
    Some((index.parse().ok()?, total.parse().ok()?, instruction.trim()))
}

/// A line of the builder's own bookkeeping, either builder's.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BuildMarker<'a> {
    /// The image a step ended on (an id or a prefix of one).
    Image(&'a str),
    /// The container a step runs in (Docker's; buildah prints none).
    RunningIn(&'a str),
    /// Anything else the builder says of itself (`Using cache`, `COMMIT`, removals).
    Other,
}

pub(crate) fn build_marker(line: &str) -> Option<BuildMarker<'_>> {
    let trimmed = line.trim();
    let marker = trimmed
        .strip_prefix("---> ")
        .or_else(|| trimmed.strip_prefix("--> "));
    let Some(marker) = marker.map(str::trim) else {
        let own = trimmed == "COMMIT"
            || trimmed.starts_with("COMMIT ")
            || trimmed.starts_with("Removing intermediate container ");
        return own.then_some(BuildMarker::Other);
    };
    if let Some(id) = marker.strip_prefix("Running in ") {
        return Some(BuildMarker::RunningIn(id.trim()));
    }
    if is_image_id(marker) {
        return Some(BuildMarker::Image(marker));
    }
    Some(BuildMarker::Other)
}

/// Whether a builder's marker is an image id (hex, at most the 64 of a full id).
pub(crate) fn is_image_id(text: &str) -> bool {
    !text.is_empty() && text.len() <= 64 && text.chars().all(|c| c.is_ascii_hexdigit())
}

/// The repository-and-tag of a listed tag as the user wrote it: Podman lists a short
/// name tagged through its Docker API under `docker.io/` (and through its own CLI or
/// `podman load` under `localhost/`); Docker lists it as written.
pub(crate) fn as_written(tag: &str) -> &str {
    ["docker.io/library/", "docker.io/", "localhost/"]
        .iter()
        .find_map(|prefix| tag.strip_prefix(prefix))
        .unwrap_or(tag)
}

/// Whether a listed tag lies under `prefix` (`agent/`, `agent-cache/`), on either engine.
pub(crate) fn tag_under(tag: &str, prefix: &str) -> bool {
    as_written(tag).starts_with(prefix)
}

/// Whether a listed image has no tag: `[]`, null (read as `[]`) or `<none>:<none>`.
pub(crate) fn is_untagged(repo_tags: &[String]) -> bool {
    repo_tags.iter().all(|tag| tag == "<none>:<none>")
}

/// Whether a failed listing is one of Podman's passing states, so that listing again
/// soon gives the store as it then is: an image list that names an image another
/// client is removing and then cannot read it back (`image not known`, HTTP 500), or a
/// container list holding a container between its stop and its cleanup, whose state
/// Podman 4.3 calls `stopped`, which is no state of Docker's API (bollard refuses the
/// whole list).
pub(crate) fn is_listing_race(error: &bollard::errors::Error) -> bool {
    match error {
        bollard::errors::Error::DockerResponseServerError {
            status_code: 500,
            message,
        } => message.contains("image not known"),
        bollard::errors::Error::JsonDataError { message, .. } => {
            message.contains("unknown variant `stopped`")
        }
        _ => false,
    }
}

/// The label filter sent with `GET /images/json`: only the first of `labels`, since
/// Podman 4.3 answers a filter of two with nothing; [`has_labels`] checks the rest.
pub(crate) fn image_label_filter(labels: &[String]) -> Vec<String> {
    labels.iter().take(1).cloned().collect()
}

/// Whether `present` holds every `key` or `key=value` of `wanted`.
pub(crate) fn has_labels(present: &HashMap<String, String>, wanted: &[String]) -> bool {
    wanted.iter().all(|wanted| match wanted.split_once('=') {
        Some((key, value)) => present.get(key).is_some_and(|found| found == value),
        None => present.contains_key(wanted),
    })
}

/// Whether two images run alike: the same environment, command, entrypoint, working
/// directory, user, ports, volumes and stop signal; labels, hostname and the like may
/// differ. An engine's commit may add its own environment (Podman: `container=podman`,
/// `TERM=xterm`) or write an unset working directory as `/`; the first difference found.
pub(crate) fn same_run_config(before: &ImageInspect, after: &ImageInspect) -> Result<(), String> {
    let before = before.config.clone().unwrap_or_default();
    let after = after.config.clone().unwrap_or_default();
    let list = |value: Option<Vec<String>>| value.unwrap_or_default();
    let workdir = |value: Option<String>| value.filter(|dir| !dir.is_empty() && dir != "/");
    let keys = |value: Option<Vec<String>>| {
        let mut keys = value.unwrap_or_default();
        keys.sort();
        keys
    };
    let fields = [
        ("Env", list(before.env) != list(after.env)),
        ("Cmd", list(before.cmd) != list(after.cmd)),
        (
            "Entrypoint",
            list(before.entrypoint) != list(after.entrypoint),
        ),
        (
            "WorkingDir",
            workdir(before.working_dir) != workdir(after.working_dir),
        ),
        (
            "User",
            before.user.unwrap_or_default() != after.user.unwrap_or_default(),
        ),
        (
            "ExposedPorts",
            keys(before.exposed_ports) != keys(after.exposed_ports),
        ),
        ("Volumes", keys(before.volumes) != keys(after.volumes)),
        ("StopSignal", before.stop_signal != after.stop_signal),
    ];
    match fields.iter().find(|(_, differs)| *differs) {
        Some((field, _)) => Err(format!("its `{field}` differs")),
        None => Ok(()),
    }
}

/// The way of labelling an image to try first on `product` (the others follow when it
/// fails): Podman 4.3 refuses the config-only load and its commit changes the
/// environment, so each seal there would pay for two refusals before the build.
pub(crate) fn first_seal_method(product: Product) -> SealMethod {
    match product {
        Product::Podman => SealMethod::Build,
        Product::Docker | Product::Other => SealMethod::ConfigLoad,
    }
}

/// Whether the engine runs BuildKit builds: Docker's engine from API 1.39 (18.09),
/// which serves the session BuildKit needs. Podman's compatible service takes the
/// classic build API only (its builder, buildah, has no BuildKit sessions).
pub(crate) fn runs_buildkit(product: Product, api_version: &str) -> bool {
    product == Product::Docker && major_minor(api_version) >= (1, 39)
}

/// The builder `auto` picks: the one that does less engine work there. BuildKit makes
/// no container and commits nothing for a metadata step (`ENV`, `CMD`, `LABEL`,
/// `EXPOSE`, `USER`…) and no image per step; measured with `scripts/bench economy 40`
/// (docs/ci.md, "Which builder"), its median build is 2.03 s against the classic
/// builder's 3.77 s on fuse-overlayfs and 0.14 s against 0.21 s on overlay2, so it is
/// picked wherever it runs.
pub(crate) fn auto_builder(product: Product, api_version: &str) -> Builder {
    if runs_buildkit(product, api_version) {
        Builder::BuildKit
    } else {
        Builder::Classic
    }
}

/// Whether a run's container was killed for want of memory. Docker reports it in
/// `State.OOMKilled`. Podman 4.3 reports `false` there when the kernel's OOM killer
/// struck (seen on cgroup v1 hosts), so on Podman a SIGKILL (exit 137) that no timeout
/// of ours sent is taken as the OOM killer's: every run has a memory limit, all
/// capabilities dropped and `no-new-privileges`, which leaves the program itself as
/// the only other sender.
pub(crate) fn oom_killed(
    product: Product,
    reported: bool,
    exit_code: Option<i64>,
    timed_out: bool,
) -> bool {
    reported || (product == Product::Podman && exit_code == Some(137) && !timed_out)
}

impl BuildOutcome {
    /// The image ids the build printed as `---> <id>` (buildah: `--> <id>`), in build order: the
    /// intermediate images (the last one is the built image when it succeeded). For
    /// [`crate::Sandbox::remove_untagged_images`].
    pub fn intermediate_images(&self) -> Vec<String> {
        intermediate_images(&self.log)
    }
}

/// The image ids a build printed as image markers, in order: its intermediate images
/// (and, last, the built image).
pub(crate) fn intermediate_images(log: &str) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for line in log.lines() {
        let Some(BuildMarker::Image(id)) = build_marker(line) else {
            continue;
        };
        if ids.last().is_none_or(|last| last != id) {
            ids.push(id.to_owned());
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::SystemVersionComponents;

    fn version(components: &[(&str, &str)], top: &str) -> SystemVersion {
        SystemVersion {
            version: Some(top.to_owned()),
            components: Some(
                components
                    .iter()
                    .map(|(name, version)| SystemVersionComponents {
                        name: (*name).to_owned(),
                        version: (*version).to_owned(),
                        details: None,
                    })
                    .collect(),
            ),
            ..SystemVersion::default()
        }
    }

    #[test]
    fn podman_before_4_4_is_sent_no_list_of_cache_sources() {
        assert!(!takes_cache_from_list(Product::Podman, "4.3.1"));
        assert!(takes_cache_from_list(Product::Podman, "4.4.0"));
        assert!(takes_cache_from_list(Product::Podman, "5.2.1-dev"));
        assert!(takes_cache_from_list(Product::Docker, "20.10.24"));
    }

    #[test]
    fn buildkit_runs_on_docker_from_api_1_39_only() {
        assert!(runs_buildkit(Product::Docker, "1.41"));
        assert!(runs_buildkit(Product::Docker, "1.39"));
        assert!(!runs_buildkit(Product::Docker, "1.38"));
        assert!(!runs_buildkit(Product::Podman, "1.41"));
        assert!(!runs_buildkit(Product::Other, "1.41"));
    }

    #[test]
    fn the_product_is_read_from_the_components() {
        let podman = version(&[("Podman Engine", "4.3.1"), ("Conmon", "2.1.6")], "4.3.1");
        assert_eq!(product_of(&podman), (Product::Podman, "4.3.1".into()));
        let docker = version(&[("Engine", "20.10.24"), ("containerd", "1.6")], "20.10.24");
        assert_eq!(product_of(&docker), (Product::Docker, "20.10.24".into()));
        assert_eq!(
            product_of(&version(&[], "1.0")),
            (Product::Other, "1.0".into())
        );
    }

    #[test]
    fn steps_of_both_builders_are_read() {
        assert_eq!(
            build_step("Step 2/5 : RUN pip install x"),
            Some((2, 5, "RUN pip install x"))
        );
        assert_eq!(
            build_step("STEP 3/4: COPY fizzbuzz.py ."),
            Some((3, 4, "COPY fizzbuzz.py ."))
        );
        assert_eq!(build_step("STEP: nothing"), None);
        assert_eq!(build_step("Stepping 1/2 : x"), None);
        assert_eq!(
            buildkit_step("[stage-1 2/3] COPY app.py ."),
            Some((2, 3, "COPY app.py ."))
        );
        assert_eq!(
            buildkit_step("[1/2] FROM docker.io/x:1"),
            Some((1, 2, "FROM docker.io/x:1"))
        );
        assert_eq!(buildkit_step("[internal] load build context"), None);
        assert_eq!(buildkit_step("exporting to image"), None);
    }

    #[test]
    fn markers_of_both_builders_are_read() {
        assert_eq!(
            build_marker(" ---> 3c4d5e"),
            Some(BuildMarker::Image("3c4d5e"))
        );
        assert_eq!(
            build_marker("--> a47fe4a59dd"),
            Some(BuildMarker::Image("a47fe4a59dd"))
        );
        assert_eq!(
            build_marker(" ---> Running in ffee"),
            Some(BuildMarker::RunningIn("ffee"))
        );
        assert_eq!(build_marker(" ---> Using cache"), Some(BuildMarker::Other));
        assert_eq!(
            build_marker(
                "--> Using cache f89f0da5017bf556179677a373ad6664558797421abcf02d30ca8b01181fdad1"
            ),
            Some(BuildMarker::Other)
        );
        assert_eq!(build_marker("COMMIT"), Some(BuildMarker::Other));
        assert_eq!(build_marker("hello --> world"), None);
        assert_eq!(build_marker("Traceback (most recent call last):"), None);
    }

    #[test]
    fn a_sigkill_on_podman_that_no_timeout_sent_is_out_of_memory() {
        assert!(oom_killed(Product::Podman, false, Some(137), false));
        assert!(!oom_killed(Product::Podman, false, Some(137), true));
        assert!(!oom_killed(Product::Docker, false, Some(137), false));
        assert!(oom_killed(Product::Docker, true, Some(137), false));
        assert!(!oom_killed(Product::Podman, false, Some(1), false));
    }

    #[test]
    fn tags_are_compared_as_written() {
        assert!(tag_under("localhost/agent/fizzbuzz:abc", "agent/"));
        assert!(tag_under("agent/fizzbuzz:abc", "agent/"));
        assert!(tag_under(
            "docker.io/agent-cache/fizzbuzz:d66512dc594",
            "agent-cache/"
        ));
        assert!(!tag_under("registry:5000/agent/fizzbuzz:abc", "agent/"));
        assert!(is_untagged(&[]));
        assert!(is_untagged(&["<none>:<none>".into()]));
        assert!(!is_untagged(&["localhost/x:1".into()]));
    }

    #[test]
    fn labels_past_the_first_are_checked_here() {
        let wanted = ["dev.agent.run".to_owned(), "dev.agent.spec=a".to_owned()];
        assert_eq!(image_label_filter(&wanted), ["dev.agent.run"]);
        let mut present = HashMap::from([("dev.agent.run".to_owned(), "r".to_owned())]);
        assert!(!has_labels(&present, &wanted));
        present.insert("dev.agent.spec".into(), "b".into());
        assert!(!has_labels(&present, &wanted));
        present.insert("dev.agent.spec".into(), "a".into());
        assert!(has_labels(&present, &wanted));
    }

    #[test]
    fn intermediate_images_are_read_from_the_log() {
        let log = "Step 1/2 : FROM x\n ---> 1a2b\nStep 2/2 : RUN y\n ---> Running in ffee\n ---> 3c4d\nSuccessfully built 3c4d\n";
        assert_eq!(intermediate_images(log), ["1a2b", "3c4d"]);
        let podman = "STEP 1/3: FROM x\nSTEP 2/3: WORKDIR /app\n--> Using cache f89f0da5017bf5\n--> f89f0da5017\nSTEP 3/3: CMD [\"y\"]\nCOMMIT\n--> dfbc671662c\ndfbc671662cf78b6\n";
        assert_eq!(intermediate_images(podman), ["f89f0da5017", "dfbc671662c"]);
    }
}
