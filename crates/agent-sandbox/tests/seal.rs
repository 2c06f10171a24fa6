//! Sealing on the real engines: the main Docker engine and Podman's Docker-compatible
//! service (`AGENT_TEST_PODMAN`, started by `scripts/podman-engine start`). Each way of
//! labelling either gives an image that runs as the original with the labels verbatim,
//! or is refused and leaves nothing behind; `seal` finds the way each engine accepts.

mod common;
use common::{build_labelled, built_image, sandbox, unique_run_id};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use agent_sandbox::{
    EngineAddress, LABEL_OWNER, LABEL_RUN, Product, RunLimits, RunNetwork, RunRequest, Sandbox,
    SealMethod, owner_id,
};
use agent_testkit::BUSYBOX_IMAGE;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, ListContainersOptionsBuilder, ListImagesOptionsBuilder,
    RemoveImageOptionsBuilder,
};
use futures_util::StreamExt;

/// Fails loudly without Podman: these tests never skip themselves.
fn podman_url() -> String {
    std::env::var("AGENT_TEST_PODMAN").expect(
        "AGENT_TEST_PODMAN must name Podman's socket: `export AGENT_TEST_PODMAN=$(scripts/podman-engine start)`",
    )
}

/// The engine at `url` with the classic builder, whose images every way labels
/// (`buildkit` tests the seal of a BuildKit image).
async fn connect(url: &str) -> Sandbox {
    Sandbox::connect_to(&EngineAddress::plain(url))
        .await
        .unwrap_or_else(|error| panic!("the engine at {url} must answer: {error}"))
        .with_builder(
            agent_spec::BuilderChoice::Classic,
            agent_spec::BuildNetwork::Default,
        )
        .expect("every engine has the classic builder")
}

fn client(url: &str) -> bollard::Docker {
    bollard::Docker::connect_with_socket(url, 60, bollard::API_DEFAULT_VERSION).expect("client")
}

fn run_labels(run: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_RUN.to_owned(), run.to_owned()),
        (LABEL_OWNER.to_owned(), owner_id()),
    ])
}

/// The images and containers of this test on the engine, by id: those labelled with
/// its run, and images descending from `built` (a label build's steps). Other
/// processes share the engine, so nothing else is counted.
async fn ours(docker: &bollard::Docker, run: &str, built: &str) -> BTreeSet<String> {
    let images = docker
        .list_images(Some(ListImagesOptionsBuilder::default().all(true).build()))
        .await
        .expect("images listed");
    let parents: HashMap<&str, &str> = images
        .iter()
        .map(|image| (image.id.as_str(), image.parent_id.as_str()))
        .collect();
    let descends = |id: &str| {
        let mut next = parents.get(id).copied();
        while let Some(parent) = next.filter(|parent| !parent.is_empty()) {
            if parent == built {
                return true;
            }
            next = parents.get(parent).copied();
        }
        false
    };
    let labelled = |labels: Option<&HashMap<String, String>>| {
        labels
            .and_then(|labels| labels.get(LABEL_RUN))
            .is_some_and(|value| value == run)
    };
    let filters = HashMap::from([("label", vec![format!("{LABEL_RUN}={run}")])]);
    let containers = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .expect("containers listed");
    images
        .iter()
        .filter(|image| labelled(Some(&image.labels)) || descends(&image.id))
        .map(|image| image.id.clone())
        .chain(containers.into_iter().filter_map(|container| container.id))
        .collect()
}

/// Builds `seal`'s label Dockerfile for `image` and `labels` as that seal would, and
/// keeps every image it made, its steps included.
async fn leave_a_label_build(
    docker: &bollard::Docker,
    image: &str,
    labels: &BTreeMap<String, String>,
) {
    let (dockerfile, args) = agent_sandbox::label_dockerfile(image, labels);
    let files = BTreeMap::from([("Dockerfile".to_owned(), dockerfile.into_bytes())]);
    let context = agent_sandbox::build_context(&files).expect("context");
    let args: HashMap<&str, &str> = args
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    let options = BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .buildargs(&args)
        .rm(true)
        .build();
    let body = bollard::body_full(bytes::Bytes::copy_from_slice(&context.bytes));
    let mut stream = docker.build_image(options, None, Some(body));
    while let Some(info) = stream.next().await {
        info.expect("the label build runs");
    }
}

async fn labels_of(docker: &bollard::Docker, image: &str) -> HashMap<String, String> {
    docker
        .inspect_image(image)
        .await
        .expect("inspect")
        .config
        .and_then(|config| config.labels)
        .unwrap_or_default()
}

async fn build_marked(sandbox: &Sandbox, run: &str) -> String {
    let dockerfile = format!(
        "FROM {BUSYBOX_IMAGE}\nRUN echo {run} > /marker\nWORKDIR /srv\nENV MODE=sealed\nCMD [\"cat\", \"/marker\"]\n"
    );
    let files = BTreeMap::from([("Dockerfile".to_owned(), dockerfile.into_bytes())]);
    let (outcome, _) =
        build_labelled(sandbox, &files, &run_labels(run), Duration::from_secs(120)).await;
    built_image(&outcome)
}

async fn printed_by(sandbox: &Sandbox, run: &str, image: &str) -> String {
    let labels = run_labels(run);
    let outcome = sandbox
        .run(RunRequest {
            image,
            args: &[],
            entrypoint: None,
            command: None,
            user: None,
            env: &BTreeMap::new(),
            stdin: None,
            limits: RunLimits {
                memory_mb: 64,
                cpus: 1.0,
                pids: 32,
                network: RunNetwork::None,
                timeout: Duration::from_secs(30),
                output_limit_bytes: 4096,
                access: agent_sandbox::RunAccess::default(),
            },
            labels: &labels,
        })
        .await
        .expect("the engine answers");
    String::from_utf8_lossy(&outcome.stdout.bytes)
        .trim()
        .to_owned()
}

/// The ways `product` is expected to accept, as checked: Docker all three, Podman
/// only the build (its commit adds `container=podman` to the environment).
fn accepted(product: Product, method: SealMethod) -> bool {
    match product {
        Product::Podman => method == SealMethod::Build,
        _ => true,
    }
}

async fn each_way_labels_verbatim_or_leaves_nothing(url: &str) {
    let sandbox = connect(url).await;
    let docker = client(url);
    let product = sandbox.engine().product;
    let run = unique_run_id(&format!("seal-{}", product as u8));
    let built = build_marked(&sandbox, &run).await;
    let hostile = "x\"y\\z $HOME ${PATH}\nLABEL evil=1\n".to_owned();
    let mut labels = run_labels(&run);
    labels.insert("dev.agent.checks".into(), hostile.clone());
    labels.insert(
        "org.opencontainers.image.title".into(),
        "it's \"quoted\"".into(),
    );
    let before_config = docker.inspect_image(&built).await.expect("inspect").config;

    for method in [
        SealMethod::ConfigLoad,
        SealMethod::Commit,
        SealMethod::Build,
    ] {
        let before = ours(&docker, &run, &built).await;
        let sealed = sandbox.seal_by(method, &built, &labels).await;
        if !accepted(product, method) {
            let error = sealed.expect_err(&format!("{product} refuses {method:?}"));
            assert_eq!(
                ours(&docker, &run, &built).await,
                before,
                "{product}: the refused {method:?} ({error}) left something"
            );
            continue;
        }
        let sealed = sealed.unwrap_or_else(|error| panic!("{product} {method:?}: {error:?}"));
        assert_ne!(sealed, built, "a new image");
        let after = ours(&docker, &run, &built).await;
        let mut added: BTreeSet<String> = after.difference(&before).cloned().collect();
        // Docker keeps a label build's steps as the new image's parents (they go
        // with it); Podman keeps none.
        let parents: HashMap<String, String> = docker
            .list_images(Some(ListImagesOptionsBuilder::default().all(true).build()))
            .await
            .expect("images listed")
            .into_iter()
            .map(|image| (image.id, image.parent_id))
            .collect();
        let mut next = Some(sealed.clone());
        while let Some(id) = next.take().filter(|id| added.remove(id)) {
            next = parents.get(&id).cloned();
        }
        assert!(
            added.is_empty(),
            "{product} {method:?}: more than the image and its parents: {added:?}"
        );
        let config = docker
            .inspect_image(&sealed)
            .await
            .expect("inspect")
            .config
            .expect("a config");
        let found = config.labels.clone().unwrap_or_default();
        for (key, value) in &labels {
            assert_eq!(found.get(key), Some(value), "{product} {method:?}: `{key}`");
        }
        let old = before_config.clone().expect("a config");
        assert_eq!(config.env, old.env, "{product} {method:?}: the environment");
        assert_eq!(config.cmd, old.cmd, "{product} {method:?}: the command");
        assert_eq!(printed_by(&sandbox, &run, &sealed).await, run);
    }

    // `seal` goes through the ways itself, and remembers the one that worked.
    let first = sandbox.seal(&built, &labels).await.expect("sealed");
    let expected = if product == Product::Podman {
        SealMethod::Build
    } else {
        SealMethod::ConfigLoad
    };
    assert_eq!(first.method, expected, "{product}");
    // Another seal of the same image with other values gets its own labels (no
    // builder's cache hands it the first one's).
    let mut other = labels.clone();
    other.insert("dev.agent.checks".into(), "other $VALUE".into());
    let second = sandbox.seal(&built, &other).await.expect("sealed again");
    assert_eq!(second.method, expected);
    let found = labels_of(&docker, &second.image_id).await;
    assert_eq!(found["dev.agent.checks"], "other $VALUE", "{product}");
    let again = sandbox
        .seal_by(SealMethod::Build, &built, &other)
        .await
        .expect("built again");
    let found = labels_of(&docker, &again).await;
    assert_eq!(
        found["dev.agent.checks"], "other $VALUE",
        "{product}: the build way"
    );

    // Another seal's label build of the same image, its steps still on the engine (as
    // while that seal is removing them; identical builds of several specs give one
    // image id on Podman): this seal gets its own labels, not that build's.
    let mut stale = labels.clone();
    stale.insert("dev.agent.checks".into(), "another seal's".into());
    let before_left_over = ours(&docker, &run, &built).await;
    leave_a_label_build(&docker, &built, &stale).await;
    let left_over: Vec<String> = ours(&docker, &run, &built)
        .await
        .difference(&before_left_over)
        .cloned()
        .collect();
    assert!(!left_over.is_empty(), "the label build left its images");
    let own = sandbox
        .seal_by(expected, &built, &other)
        .await
        .expect("sealed beside a left-over label build");
    let found = labels_of(&docker, &own).await;
    assert_eq!(
        found["dev.agent.checks"], "other $VALUE",
        "{product}: beside another seal's steps"
    );
    for image in &left_over {
        let _ = docker
            .remove_image(
                image,
                Some(RemoveImageOptionsBuilder::default().force(true).build()),
                None,
            )
            .await;
    }

    // A build's images are parents of the next: Docker removes a child first, so a
    // second sweep takes what the first left.
    for _ in 0..2 {
        sandbox
            .remove_labelled(LABEL_RUN, &run, None)
            .await
            .expect("cleanup");
    }
    let filters = std::collections::HashMap::from([("label", vec![format!("{LABEL_RUN}={run}")])]);
    let left = docker
        .list_images(Some(
            ListImagesOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await
        .expect("listed");
    assert!(left.is_empty(), "{product}: left {left:?}");
    assert!(!sandbox.image_present(&built).await.expect("inspect"));
}

#[tokio::test]
async fn docker_seals_each_way_with_labels_verbatim() {
    each_way_labels_verbatim_or_leaves_nothing(agent_sandbox::DEFAULT_SOCKET).await;
}

#[tokio::test]
async fn podman_seals_by_build_and_its_refusals_leave_nothing() {
    each_way_labels_verbatim_or_leaves_nothing(&podman_url()).await;
}

#[tokio::test]
async fn podman_is_told_apart_from_docker() {
    let podman = connect(&podman_url()).await;
    assert_eq!(podman.engine().product, Product::Podman);
    assert!(podman.engine().version.starts_with('4') || podman.engine().version.starts_with('5'));
    let docker = sandbox().await;
    assert_eq!(docker.engine().product, Product::Docker);
}
