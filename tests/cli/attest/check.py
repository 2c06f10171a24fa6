"""Checks the attestations agent stored for an image, without agent's code: reads the
`sha256-<hex>.att` manifest over the registry's HTTP API, verifies each DSSE envelope
with securesystemslib (ECDSA P-256, key id = SHA-256 of the public key's DER), and
checks each in-toto Statement against the pushed digest and report.json.

Usage: check.py REGISTRY REPOSITORY DIGEST PUBLIC_KEY_PEM REPORT_JSON [USER PASSWORD]
Prints one JSON line of what it found; exits 1 on the first disagreement.
"""

import base64
import hashlib
import json
import sys
import urllib.request

from cryptography.hazmat.primitives import serialization
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

TEST_RESULT = "https://in-toto.io/attestation/test-result/v0.1"
PROVENANCE = "https://slsa.dev/provenance/v1"
STATEMENT = "https://in-toto.io/Statement/v1"


def fail(message):
    print(f"check.py: {message}", file=sys.stderr)
    sys.exit(1)


def get(url, auth, accept=None):
    request = urllib.request.Request(url)
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    if accept:
        request.add_header("Accept", accept)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()


def main():
    registry, repository, digest, key_path, report_path = sys.argv[1:6]
    auth = tuple(sys.argv[6:8]) if len(sys.argv) >= 8 else None
    with open(key_path, "rb") as file:
        pem = file.read()
    public = serialization.load_pem_public_key(pem)
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    keyid = hashlib.sha256(der).hexdigest()
    key = SSlibKey.from_crypto(public, keyid=keyid, scheme="ecdsa-sha2-nistp256")
    with open(report_path) as file:
        report = json.load(file)
    checks = [f"{c['group']}/{c['name']}" for c in report["history"][-1]["checks"]]

    tag = digest.replace(":", "-", 1) + ".att"
    base = f"http://{registry}/v2/{repository}"
    manifest = json.loads(
        get(f"{base}/manifests/{tag}", auth, "application/vnd.oci.image.manifest.v1+json")
    )
    if manifest.get("mediaType") != "application/vnd.oci.image.manifest.v1+json":
        fail(f"the .att manifest is {manifest.get('mediaType')}")
    found = {}
    for layer in manifest["layers"]:
        if layer["mediaType"] != "application/vnd.dsse.envelope.v1+json":
            fail(f"a layer of media type {layer['mediaType']}")
        blob = get(f"{base}/blobs/{layer['digest']}", auth)
        if "sha256:" + hashlib.sha256(blob).hexdigest() != layer["digest"]:
            fail(f"blob {layer['digest']} does not hash to its digest")
        envelope = Envelope.from_dict(json.loads(blob))
        if envelope.payload_type != "application/vnd.in-toto+json":
            fail(f"payload type {envelope.payload_type}")
        envelope.verify([key], 1)
        statement = json.loads(envelope.payload)
        predicate_type = statement["predicateType"]
        if layer.get("annotations", {}).get("predicateType") != predicate_type:
            fail(f"annotation and statement disagree on {predicate_type}")
        if statement["_type"] != STATEMENT:
            fail(f"statement type {statement['_type']}")
        subject_digests = [s["digest"].get("sha256") for s in statement["subject"]]
        if subject_digests != [digest.split(":", 1)[1]]:
            fail(f"subject digests {subject_digests}, pushed {digest}")
        if not statement["subject"][0]["name"].endswith(repository):
            fail(f"subject name {statement['subject'][0]['name']}")
        found.setdefault(predicate_type, []).append(statement["predicate"])

    if set(found) != {TEST_RESULT, PROVENANCE}:
        fail(f"predicate types {sorted(found)}")
    for result in found[TEST_RESULT]:
        if result["result"] != "PASSED" or result["failedTests"] != []:
            fail(f"result {result['result']}, failed {result['failedTests']}")
        if result["passedTests"] != checks:
            fail(f"passedTests {result['passedTests']}, report {checks}")
    # Each run that signed the image adds its own provenance; this run's is among them.
    invocations = [p["runDetails"]["metadata"]["invocationId"] for p in found[PROVENANCE]]
    if report["run_id"] not in invocations:
        fail(f"invocations {invocations}, run {report['run_id']}")
    this_run = found[PROVENANCE][invocations.index(report["run_id"])]
    base = this_run["buildDefinition"]["resolvedDependencies"][0]
    print(
        json.dumps(
            {
                "layers": len(manifest["layers"]),
                "predicate_types": sorted(found),
                "passed_tests": found[TEST_RESULT][0]["passedTests"],
                "configuration": found[TEST_RESULT][0]["configuration"],
                "base": base,
            }
        )
    )


if __name__ == "__main__":
    main()
