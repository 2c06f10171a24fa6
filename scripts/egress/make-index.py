"""Ten wheels pkg0..pkg9, each with VALUE = n, and a PEP 503 index of them, in the
folder given: what the build egress tests and scripts/bench-egress install from."""

import base64, hashlib, os, sys, zipfile
root = sys.argv[1]
for n in range(10):
    name = "pkg%d" % n
    wheel = "%s-1.0-py3-none-any.whl" % name
    files = {
        "%s/__init__.py" % name: "VALUE = %d\n" % n,
        "%s-1.0.dist-info/METADATA" % name: "Metadata-Version: 2.1\nName: %s\nVersion: 1.0\n" % name,
        "%s-1.0.dist-info/WHEEL" % name: "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = ""
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record += "%s,sha256=%s,%d\n" % (path, digest, len(text.encode()))
    record += "%s-1.0.dist-info/RECORD,,\n" % name
    files["%s-1.0.dist-info/RECORD" % name] = record
    os.makedirs(os.path.join(root, "simple", name), exist_ok=True)
    with zipfile.ZipFile(os.path.join(root, "simple", name, wheel), "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    with open(os.path.join(root, "simple", name, "index.html"), "w") as page:
        page.write('<html><body><a href="%s">%s</a></body></html>\n' % (wheel, wheel))
