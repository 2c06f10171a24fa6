//! `scripts/bench service`: a small HTTP service started, probed and stopped through
//! `Sandbox::serve` a number of times, on the engine `DOCKER_HOST` names. Prints the
//! time from start to ready, per probe, and the whole lifetime (median and max);
//! removes what it made. Usage: `service-bench <image> <rounds> <probes per round>`,
//! the image serving `GET /health` on port 8080.

use std::collections::BTreeMap;
use std::time::Duration;

use agent_sandbox::{
    DEFAULT_PROBE_IMAGE, LABEL_RUN, ProbeLimits, ProbeRequest, Readiness, ReadyEnd, RunLimits,
    RunNetwork, Sandbox, ServiceRequest,
};

#[tokio::main]
async fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let [image, rounds, probes] = arguments.as_slice() else {
        eprintln!("usage: service-bench <image> <rounds> <probes per round>");
        std::process::exit(2);
    };
    let rounds: usize = rounds.parse().expect("rounds is a number");
    let probes: usize = probes.parse().expect("probes is a number");
    let docker_host = std::env::var("DOCKER_HOST").ok();
    let sandbox = Sandbox::connect(docker_host.as_deref())
        .await
        .expect("the engine answers");
    let run = format!("bench-service-{}", std::process::id());
    let labels = BTreeMap::from([(LABEL_RUN.to_owned(), run.clone())]);
    let requests = vec![ProbeRequest::get("/health"); probes];
    let (mut ready, mut per_probe, mut whole) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let outcome = sandbox
            .serve(
                ServiceRequest {
                    image,
                    env: &BTreeMap::new(),
                    labels: &labels,
                    limits: RunLimits {
                        memory_mb: 256,
                        cpus: 1.0,
                        pids: 64,
                        network: RunNetwork::None,
                        timeout: Duration::from_secs(60),
                        output_limit_bytes: 64 * 1024,
                        access: agent_sandbox::RunAccess::default(),
                    },
                    port: 8080,
                    readiness: Readiness::Http {
                        path: "/health".to_owned(),
                    },
                    ready_timeout: Duration::from_secs(60),
                    stop_timeout: Duration::from_secs(10),
                    probe_image: DEFAULT_PROBE_IMAGE,
                    probe_limits: ProbeLimits {
                        timeout: Duration::from_secs(10),
                        body_limit_bytes: 64 * 1024,
                    },
                },
                &requests,
            )
            .await
            .expect("the engine answers");
        assert_eq!(
            outcome.readiness.end,
            ReadyEnd::Ready,
            "{:?}",
            outcome.readiness
        );
        ready.push(outcome.readiness.elapsed);
        for probe in &outcome.probes {
            assert!(probe.response.is_ok(), "{:?}", probe.response);
            per_probe.push(probe.duration);
        }
        whole.push(outcome.duration);
    }
    sandbox
        .remove_labelled(LABEL_RUN, &run, None)
        .await
        .expect("cleanup");
    report("start to ready", &mut ready);
    report("probe (exec relay + HTTP)", &mut per_probe);
    report("whole lifetime", &mut whole);
}

fn report(label: &str, durations: &mut [Duration]) {
    durations.sort();
    let median = durations[durations.len() / 2];
    let max = durations[durations.len() - 1];
    println!(
        "{label:28} n={:3}  median {:7.1} ms  max {:7.1} ms",
        durations.len(),
        median.as_secs_f64() * 1000.0,
        max.as_secs_f64() * 1000.0
    );
}
