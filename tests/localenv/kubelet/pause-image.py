"""Writes the opt-in real node's sandbox ("pause") image as an OCI archive
that `ctr images import` reads: one layer holding the static binary built
from cmd/pause, user 65535, no registry involved (registry.k8s.io cannot be
reached here). Deterministic: the same binary gives the same digest.

    pause-image.py BINARY OUT.tar REF     prints the manifest digest
"""

import gzip, hashlib, io, json, sys, tarfile
binpath, out, ref = sys.argv[1:4]
def blob(b): return "sha256:" + hashlib.sha256(b).hexdigest()
raw = io.BytesIO()
with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
    data = open(binpath, "rb").read()
    ti = tarfile.TarInfo("pause"); ti.size = len(data); ti.mode = 0o755; ti.mtime = 0
    t.addfile(ti, io.BytesIO(data))
layer_tar = raw.getvalue()
layer = gzip.compress(layer_tar, mtime=0)
config = json.dumps({"architecture": "amd64", "os": "linux",
    "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
    "rootfs": {"type": "layers", "diff_ids": [blob(layer_tar)]}}, sort_keys=True).encode()
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob(config), "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": blob(layer), "size": len(layer)}]}, sort_keys=True).encode()
index = json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": blob(manifest), "size": len(manifest), "annotations": {"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": ref}}]}).encode()
with tarfile.open(out, "w") as t:
    def add(name, b):
        ti = tarfile.TarInfo(name); ti.size = len(b); ti.mtime = 0; t.addfile(ti, io.BytesIO(b))
    add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    add("index.json", index)
    for b in (layer, config, manifest): add("blobs/sha256/" + blob(b)[7:], b)
print(blob(manifest))
