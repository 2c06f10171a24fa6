//! A registry that answers with hostile bodies, served from a plain TCP socket on the
//! loopback: every answer is read only up to its bound, and each refusal is an error
//! that says what was wrong, never a panic or a hang.

use std::sync::Arc;

use agent_attest::{AttestError, ImageReference, Registry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves `answer(path)` (status line, headers and body as bytes) to every request.
async fn serve(answer: impl Fn(&str) -> Vec<u8> + Send + Sync + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && socket.read(&mut byte).await.unwrap_or(0) == 1
                {
                    head.push(byte[0]);
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let path = text
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                let _ = socket.write_all(&answer(&path)).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    address
}

fn ok(content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(body);
    answer
}

const ATT_PREFIX: &str = "/v2/team/app/manifests/sha256-";

#[tokio::test]
async fn an_endless_manifest_is_cut_at_its_bound() {
    // 8 MiB announced and sent without a length: both are refused past 4 MiB.
    let address = serve(|path| {
        if path.contains("announced") {
            ok("application/json", &vec![b' '; 8 * 1024 * 1024])
        } else {
            let mut answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
            answer.extend(vec![b' '; 8 * 1024 * 1024]);
            answer
        }
    })
    .await;
    let registry = Registry::new(&address, None).unwrap();
    for tag in ["announced", "streamed"] {
        let reference = ImageReference::parse(&format!("{address}/team/app:{tag}")).unwrap();
        let error = agent_attest::resolve(&registry, &reference)
            .await
            .unwrap_err();
        assert!(
            matches!(error, AttestError::TooLarge { .. }),
            "{tag}: {error}"
        );
        assert!(
            error.to_string().contains("larger than 4194304 bytes"),
            "{error}"
        );
    }
}

#[tokio::test]
async fn a_manifest_of_too_many_layers_and_a_blob_that_is_not_its_digest_are_refused() {
    let digest = format!("sha256:{}", "a".repeat(64));
    let layer = |index: usize| {
        format!(
            r#"{{"mediaType":"application/vnd.dsse.envelope.v1+json","digest":"sha256:{index:064x}","size":3}}"#
        )
    };
    let many: Vec<String> = (0..1000).map(layer).collect();
    let crowded = format!(
        r#"{{"schemaVersion":2,"config":{{"mediaType":"x","digest":"sha256:00","size":2}},"layers":[{}]}}"#,
        many.join(",")
    );
    let one = format!(
        r#"{{"schemaVersion":2,"config":{{"mediaType":"x","digest":"sha256:00","size":2}},"layers":[{}]}}"#,
        layer(1)
    );
    let address = serve(move |path| {
        if path.starts_with("/v2/team/crowded/") {
            ok(
                "application/vnd.oci.image.manifest.v1+json",
                crowded.as_bytes(),
            )
        } else if path.starts_with(ATT_PREFIX) {
            ok("application/vnd.oci.image.manifest.v1+json", one.as_bytes())
        } else {
            ok("application/octet-stream", b"not the bytes of that digest")
        }
    })
    .await;
    let registry = Registry::new(&address, None).unwrap();
    for (repository, cause) in [
        ("team/crowded", "more than 256 layers"),
        ("team/app", "its bytes are not its digest"),
    ] {
        let error = agent_attest::fetch(&registry, repository, &digest)
            .await
            .unwrap_err();
        assert!(error.to_string().contains(cause), "{error}");
    }
}

#[tokio::test]
async fn garbage_where_a_manifest_belongs_is_an_error_and_a_dead_port_is_unreachable() {
    let address = serve(|_| ok("application/json", b"\x00\xff{[not json")).await;
    let registry = Registry::new(&address, None).unwrap();
    let digest = format!("sha256:{}", "b".repeat(64));
    let error = agent_attest::fetch(&registry, "team/app", &digest)
        .await
        .unwrap_err();
    assert!(matches!(error, AttestError::Malformed { .. }), "{error}");
    assert!(!error.is_unreachable());

    let dead = Registry::new("127.0.0.1:9", None).unwrap();
    let reference = ImageReference::parse("127.0.0.1:9/team/app:x").unwrap();
    let error = agent_attest::resolve(&dead, &reference).await.unwrap_err();
    assert!(error.is_unreachable(), "{error}");
}
