"""Tiny OCI image layouts written by hand, and ``skopeo`` to move them: no network, no daemon.

``layout(dir, tag, content)`` writes a one-layer image (a gzip tar holding one file whose text is
``content``, so different content gives a different manifest digest) as an OCI image layout that
``skopeo copy oci:<dir>:<tag> docker://...`` pushes. ``labels`` go into the image config
(``config.Labels``, what ``LABEL`` / ``--label`` write); ``index(dir, tag, platforms)`` writes an
OCI index of one such image per platform (``skopeo copy --all`` pushes it whole).
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
INDEX = "application/vnd.oci.image.index.v1+json"


def _blob(root: Path, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (root / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _image(root: Path, content: str, labels: dict[str, str] | None, os: str = "linux",
           architecture: str = "amd64") -> dict:
    """Layer, config and manifest blobs of one image; the manifest's descriptor."""
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w") as tar:
        data = content.encode()
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mtime = len(data), 0
        tar.addfile(info, io.BytesIO(data))
    layer_tar = tar_bytes.getvalue()
    layer = _blob(root, gzip.compress(layer_tar, mtime=0))
    config = _blob(root, json.dumps({
        "architecture": architecture, "os": os,
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(layer_tar).hexdigest()}"]},
        "config": {"Labels": labels} if labels else {},
    }).encode())
    manifest = _blob(root, json.dumps({
        "schemaVersion": 2, "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer}],
    }).encode())
    return {"mediaType": MANIFEST, **manifest}


def _write_index(root: Path, tag: str, descriptor: dict) -> None:
    (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {**descriptor, "annotations": {"org.opencontainers.image.ref.name": tag}}]}))


def layout(root: Path, tag: str, content: str, labels: dict[str, str] | None = None) -> str:
    """Write the layout; returns the manifest digest."""
    manifest = _image(root, content, labels)
    _write_index(root, tag, manifest)
    return manifest["digest"]


def index(root: Path, tag: str, platforms: dict[tuple[str, str], dict[str, str] | None]) -> tuple[str, dict]:
    """An OCI index with one image per ``(os, architecture)`` and its labels; (index digest,
    ``{"os/arch": manifest digest}``)."""
    manifests, digests = [], {}
    for (os, architecture), labels in platforms.items():
        descriptor = _image(root, f"{os}/{architecture}", labels, os, architecture)
        manifests.append({**descriptor, "platform": {"os": os, "architecture": architecture}})
        digests[f"{os}/{architecture}"] = descriptor["digest"]
    blob = _blob(root, json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests}).encode())
    _write_index(root, tag, {"mediaType": INDEX, **blob})
    return blob["digest"], digests


def skopeo(*args: str) -> str:
    result = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)
    if result.returncode:
        raise RuntimeError(f"skopeo {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def push(root: Path, tag: str, destination: str, *, creds: str | None = None, all_images: bool = False) -> str:
    """``skopeo copy`` the layout to ``docker://destination``; the digest skopeo reports
    (``all_images``: an index with every image it lists, as is)."""
    digestfile = root / "pushed.digest"
    extra = ["--dest-creds", creds] if creds else []
    if all_images:
        extra += ["--all", "--preserve-digests"]
    skopeo("copy", "--quiet", "--dest-tls-verify=false", *extra, "--digestfile", str(digestfile),
           f"oci:{root}:{tag}", f"docker://{destination}")
    return digestfile.read_text().strip()
