"""v1 controllers this host does not mount (net_cls, net_prio, rdma), set
through the v1 manager on directories laid out like theirs: what runc
writes. (The mounted ones are tested for real in
tests/integration/test_cgroups_v1_resources.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from pyrunc.cgroups import Manager
from pyrunc.errors import PyruncError


def fake(tmp_path: Path, hierarchy: str, files: dict[str, str]) -> Path:
    d = tmp_path / hierarchy / "ctr"
    d.mkdir(parents=True)
    for name, text in files.items():
        (d / name).write_text(text)
    return d


def test_net_cls_net_prio_and_rdma(tmp_path: Path) -> None:
    net = fake(tmp_path, "net_cls,net_prio", {"net_cls.classid": "0\n",
                                              "net_prio.ifpriomap": "lo 0\n"})
    rdma = fake(tmp_path, "rdma", {"rdma.max": ""})
    mgr = Manager({"net_cls,net_prio": str(net), "rdma": str(rdma)})
    mgr.set({"network": {"classID": 1048577, "priorities": [{"name": "lo", "priority": 5}]},
             "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}}})
    assert (net / "net_cls.classid").read_text() == "1048577"
    assert (net / "net_prio.ifpriomap").read_text() == "lo 5"
    assert (rdma / "rdma.max").read_text() == "mlx5_1 hca_handle=3 hca_object=10000"


def test_unified_refused_on_v1(tmp_path: Path) -> None:
    mgr = Manager({"pids": str(fake(tmp_path, "pids", {"pids.max": "max\n"}))})
    with pytest.raises(PyruncError, match="linux.resources.unified: needs cgroup v2"):
        mgr.set({"unified": {"pids.max": "10"}})


def test_swappiness_range(tmp_path: Path) -> None:
    mem = fake(tmp_path, "memory", {"memory.swappiness": "60\n"})
    with pytest.raises(PyruncError, match=r"memory\.swappiness: invalid value 101"):
        Manager({"memory": str(mem)}).set({"memory": {"swappiness": 101}})
    assert (mem / "memory.swappiness").read_text() == "60\n"
