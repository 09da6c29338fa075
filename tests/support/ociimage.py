"""Tiny OCI image layouts written by hand, and ``skopeo`` to move them: no network, no daemon.

``layout(dir, tag, content)`` writes a one-layer image (a gzip tar holding one file whose text is
``content``, so different content gives a different manifest digest) as an OCI image layout that
``skopeo copy oci:<dir>:<tag> docker://...`` pushes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _blob(root: Path, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (root / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def layout(root: Path, tag: str, content: str) -> str:
    """Write the layout; returns the manifest digest."""
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w") as tar:
        data = content.encode()
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mtime = len(data), 0
        tar.addfile(info, io.BytesIO(data))
    layer_tar = tar_bytes.getvalue()
    layer = _blob(root, gzip.compress(layer_tar, mtime=0))
    config = _blob(root, json.dumps({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(layer_tar).hexdigest()}"]},
        "config": {},
    }).encode())
    manifest = _blob(root, json.dumps({
        "schemaVersion": 2, "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer}],
    }).encode())
    (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": MANIFEST, **manifest, "annotations": {"org.opencontainers.image.ref.name": tag}}]}))
    return manifest["digest"]


def skopeo(*args: str) -> str:
    result = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)
    if result.returncode:
        raise RuntimeError(f"skopeo {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def push(root: Path, tag: str, destination: str, *, creds: str | None = None) -> str:
    """``skopeo copy`` the layout to ``docker://destination``; the digest skopeo reports."""
    digestfile = root / "pushed.digest"
    extra = ["--dest-creds", creds] if creds else []
    skopeo("copy", "--quiet", "--dest-tls-verify=false", *extra, "--digestfile", str(digestfile),
           f"oci:{root}:{tag}", f"docker://{destination}")
    return digestfile.read_text().strip()
