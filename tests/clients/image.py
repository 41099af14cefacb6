"""Local busybox images for the client tests, made without any registry: a
rootfs tarball (for `podman import` / `docker import`) and an OCI image
layout archive (for `ctr images import`), written with the stdlib only."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]


def build_rootfs(dest: Path) -> Path:
    """DEST/rootfs from the host's static busybox (bundles/build-rootfs.sh)."""
    subprocess.run([str(REPO / "bundles" / "build-rootfs.sh"), str(dest)], check=True,
                   stdout=subprocess.DEVNULL)
    return dest / "rootfs"


def _root_owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def rootfs_tar(rootfs: Path, dest: Path) -> Path:
    """An uncompressed layer tarball of ROOTFS with paths relative to it."""
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for child in sorted(rootfs.iterdir()):
            tar.add(child, arcname=child.name, filter=_root_owned)
    return dest


def _add_blob(tar: tarfile.TarFile, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest}")
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
    return f"sha256:{digest}"


def _add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def oci_archive(layer: Path, dest: Path, name: str) -> Path:
    """An OCI image layout tarball holding one image NAME (full reference,
    e.g. docker.io/library/bb:latest) whose single layer is LAYER."""
    layer_bytes = layer.read_bytes()
    with tarfile.open(dest, "w") as tar:
        layer_digest = _add_blob(tar, layer_bytes)
        config = json.dumps({
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["/bin/sh"], "Env": ENV, "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        }).encode()
        config_digest = _add_blob(tar, config)
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": layer_digest, "size": len(layer_bytes)}],
        }).encode()
        manifest_digest = _add_blob(tar, manifest)
        index = {
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest, "size": len(manifest),
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {"io.containerd.image.name": name,
                                "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1]},
            }],
        }
        _add_file(tar, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        _add_file(tar, "index.json", json.dumps(index).encode())
    return dest
