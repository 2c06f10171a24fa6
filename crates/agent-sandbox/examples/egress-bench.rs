//! `scripts/bench-egress`: a build whose one `RUN` step pip-installs ten wheels from a
//! local index, built afresh (no cache) a number of times under each build network on
//! the engine `DOCKER_HOST` names: `default` with the builder `auto` picks there,
//! `default` with the classic builder, and `allowlist` (the classic builder through the
//! egress gate). Prints the median and spread of each. Usage:
//! `egress-bench <index URL> <rounds>`, the index reachable from the engine's default
//! network at that URL (the script serves it on the engine's bridge).

use std::collections::BTreeMap;
use std::time::Duration;

use agent_sandbox::{BuildRequest, BuildStatus, EgressPolicy, LABEL_RUN, Sandbox};
use agent_spec::{AllowEntry, BuildNetwork, BuilderChoice};

#[tokio::main]
async fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let [index, rounds] = arguments.as_slice() else {
        eprintln!("usage: egress-bench <index URL> <rounds>");
        std::process::exit(2);
    };
    let rounds: usize = rounds.parse().expect("rounds is a number");
    let run = format!("bench-egress-{}", std::process::id());
    let labels = BTreeMap::from([(LABEL_RUN.to_owned(), run.clone())]);
    let (context, policy) = the_build(index, &labels);
    let docker_host = std::env::var("DOCKER_HOST").ok();
    let connected = Sandbox::connect(docker_host.as_deref())
        .await
        .expect("the engine answers");
    println!(
        "engine: {} {}, storage driver {}",
        connected.engine().product,
        connected.engine().version,
        connected.engine().storage_driver
    );
    let modes = [
        (
            "default, auto builder",
            BuilderChoice::Auto,
            BuildNetwork::Default,
        ),
        (
            "default, classic builder",
            BuilderChoice::Classic,
            BuildNetwork::Default,
        ),
        (
            "allowlist (classic)",
            BuilderChoice::Auto,
            BuildNetwork::Allowlist,
        ),
    ];
    for (name, builder, network) in modes {
        let sandbox = Sandbox::connect(docker_host.as_deref())
            .await
            .expect("the engine answers")
            .with_builder(builder, network)
            .expect("the builder");
        let egress = (network == BuildNetwork::Allowlist).then_some(&policy);
        let mut times = Vec::new();
        for _ in 0..rounds {
            times.push(build_once(&sandbox, &context, &labels, egress).await);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{name:<26} {} {}: median {:.2} s (min {:.2}, max {:.2}) over {rounds} builds",
            sandbox.engine().builder,
            network.as_str(),
            times[times.len() / 2],
            times[0],
            times[times.len() - 1]
        );
    }
    let _ = connected.remove_labelled(LABEL_RUN, &run, None).await;
}

/// One build afresh: its seconds; its image is removed.
async fn build_once(
    sandbox: &Sandbox,
    context: &agent_sandbox::BuildContext,
    labels: &BTreeMap<String, String>,
    egress: Option<&EgressPolicy>,
) -> f64 {
    let request = BuildRequest {
        context,
        labels,
        timeout: Duration::from_secs(600),
        network: "default",
        egress,
        cache_repository: None,
        cache_from: &[],
        no_cache: true,
    };
    let built = sandbox.build(request, &mut |_| {}).await.expect("a build");
    let BuildStatus::Built { image_id } = &built.status else {
        panic!("the build failed: {}", built.log);
    };
    assert!(built.egress.kept.is_empty(), "{:?}", built.egress.kept);
    let _ = sandbox
        .remove_untagged_images(std::slice::from_ref(image_id))
        .await;
    built.duration.as_secs_f64()
}

/// The build's context, and the policy that lets it reach the index alone.
fn the_build(
    index: &str,
    labels: &BTreeMap<String, String>,
) -> (agent_sandbox::BuildContext, EgressPolicy) {
    let authority = index
        .trim_start_matches("http://")
        .split('/')
        .next()
        .expect("a host:port in the URL");
    let (host, port) = authority.rsplit_once(':').expect("host:port");
    let packages: Vec<String> = (0..10).map(|n| format!("pkg{n}")).collect();
    let dockerfile = format!(
        "FROM agent-base/python:3.11\nRUN pip install --no-cache-dir --index-url {index} --trusted-host {host} {}\n",
        packages.join(" ")
    );
    let files = BTreeMap::from([("Dockerfile".to_owned(), dockerfile.into_bytes())]);
    let context = agent_sandbox::build_context(&files).expect("a context");
    let policy = EgressPolicy {
        image: "agent-base/python:3.11".to_owned(),
        allow: vec![AllowEntry {
            host: host.to_owned(),
            port: port.parse().ok(),
            exact: true,
        }],
        labels: labels.clone(),
    };
    (context, policy)
}
