"""The generated fast validator (pyrunc/spec/_validator.py) and jsonschema
give the same verdict, on the spec's corpus and on thousands of seeded
random mutations of real configs."""

from __future__ import annotations

import copy
import json
import random
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pyrunc import spec
from pyrunc.spec import _validator
from pyrunc.spec.compile import parse_pattern
from pyrunc.spec.schemas import CONFIG, PROCESS, load_schema

REPO = Path(__file__).resolve().parents[2]
SPEC_TESTS = REPO.parent / "shared" / "oci-runtime-spec" / "schema" / "test" / "config"
CONFIG_SCHEMA = jsonschema.Draft4Validator(load_schema(CONFIG))
PROCESS_SCHEMA = jsonschema.Draft4Validator(load_schema(PROCESS))

# Touches every section of the Linux schema, so mutations reach them all
# even where ../shared (and its spec-example.json) is absent.
RICH: dict[str, Any] = {
    "ociVersion": "1.3.0",
    "root": {"path": "rootfs", "readonly": False},
    "hostname": "h", "domainname": "d",
    "annotations": {"org.example.k": "v"},
    "mounts": [{"destination": "/data", "source": "/srv", "type": "none",
                "options": ["rbind", "idmap"],
                "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}],
    "hooks": {"createRuntime": [{"path": "/bin/true", "args": ["true"], "env": ["A=b"],
                                 "timeout": 3}],
              "poststop": [{"path": "/bin/true"}]},
    "process": {
        "terminal": True, "consoleSize": {"height": 25, "width": 80},
        "cwd": "/", "args": ["sh"], "env": ["PATH=/bin"], "commandLine": "",
        "user": {"uid": 1, "gid": 2, "umask": 18, "additionalGids": [3], "username": "u"},
        "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 2}],
        "capabilities": {"bounding": ["CAP_KILL"], "effective": [], "inheritable": [],
                         "permitted": ["CAP_KILL"], "ambient": []},
        "noNewPrivileges": True, "apparmorProfile": "p", "selinuxLabel": "l",
        "oomScoreAdj": -100,
        "scheduler": {"policy": "SCHED_DEADLINE", "nice": 0, "priority": 0,
                      "flags": ["SCHED_FLAG_RECLAIM"], "runtime": 1, "deadline": 2,
                      "period": 3},
        "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 4},
        "execCPUAffinity": {"initial": "0-1, 3", "final": "2"},
    },
    "linux": {
        "namespaces": [{"type": "pid"}, {"type": "user"}, {"type": "network",
                                                           "path": "/proc/1/ns/net"}],
        "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        "timeOffsets": {"boottime": {"secs": -1, "nanosecs": 5}, "monotonic": {"secs": 1}},
        "devices": [{"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229,
                     "fileMode": 438, "uid": 0, "gid": 0}],
        "netDevices": {"eth1": {"name": "eth0"}, "dummy0": {}},
        "cgroupsPath": "/x",
        "resources": {
            "devices": [{"allow": False, "access": "rwm"},
                        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}],
            "memory": {"limit": 1 << 30, "reservation": 1, "swap": -1, "kernel": 1,
                       "kernelTCP": 1, "swappiness": 0, "disableOOMKiller": False,
                       "useHierarchy": True, "checkBeforeUpdate": True},
            "cpu": {"shares": 1024, "quota": -1, "burst": 0, "period": 100000,
                    "realtimeRuntime": 0, "realtimePeriod": 0, "cpus": "0", "mems": "0",
                    "idle": 0},
            "blockIO": {"weight": 10, "leafWeight": 10,
                        "weightDevice": [{"major": 8, "minor": 0, "weight": 5}],
                        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1}],
                        "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 2}]},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 0}],
            "network": {"classID": 1, "priorities": [{"name": "eth0", "priority": 1}]},
            "pids": {"limit": 32},
            "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}},
            "unified": {"memory.high": "max"},
        },
        "intelRdt": {"closID": "c", "l3CacheSchema": "L3:0=f", "memBwSchema": "MB:0=20",
                     "schemata": ["L2:0=ff"], "enableMonitoring": True},
        "memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]},
        "sysctl": {"net.ipv4.ip_forward": "1"},
        "seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
                    "architectures": ["SCMP_ARCH_X86_64"],
                    "flags": ["SECCOMP_FILTER_FLAG_LOG"], "listenerPath": "/run/l",
                    "listenerMetadata": "m",
                    "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1,
                                  "args": [{"index": 0, "value": 1, "valueTwo": 0,
                                            "op": "SCMP_CMP_EQ"}]}]},
        "rootfsPropagation": "slave",
        "maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"],
        "mountLabel": "m",
        "personality": {"domain": "LINUX32", "flags": []},
    },
    "vm": {"kernel": {"path": "/k"}}, "windows": {}, "solaris": {}, "zos": {}, "freebsd": {},
}

# Values that sit on the edges of the schema's rules.
POOL: list[Any] = [
    None, True, False, 0, 1, -1, 1.0, 0.5, 2**16 - 1, 2**16, 2**32 - 1, 2**32, 2**63 - 1, 2**63,
    -(2**63), -(2**63) - 1, 2**64 - 1, 2**64, 511, 512, "", "x", "/", "RLIMIT_NOFILE",
    "RLIMIT_NOFILE\n", "RLIMIT_", "rlimit_nofile", "RLIMIT_NOFILE\nx", "2MB", "64kB", "0MB",
    "10GB\n", "c", "b", "u", "p", "cb", "MB:0=1", "MB:\n", "MB:a\nb", "0-3, 5", "0-a", "pid",
    "pidd", "user", "SCMP_ACT_ALLOW", "SCMP_ARCH_X86_64", "SCHED_FIFO", "LINUX",
    "MPOL_BIND", "slave", "IOPRIO_CLASS_RT", [], [""], [1], ["a", 2], {}, {"a": "b"}, {"a": 1},
    {"type": "pid"}, {"path": "/x"}, [{}], [{"type": "uts"}],
]


def _containers(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every dict and list in doc (the root included)."""
    out = []
    if isinstance(doc, dict):
        out.append(path)
        for k, v in doc.items():
            out += _containers(v, (*path, k))
    elif isinstance(doc, list):
        out.append(path)
        for i, v in enumerate(doc):
            out += _containers(v, (*path, i))
    return out


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def perturb(value: Any, rng: random.Random) -> Any:
    """A near miss: a number one off or 2**32 away, a string one character
    shorter or longer."""
    if type(value) is int:
        return value + rng.choice([1, -1, 2**32, -(2**32), 2**63, -(2**64)])
    if isinstance(value, str):
        i = rng.randint(0, len(value))
        if value and rng.random() < 0.5:
            return value[:i] + value[i + 1:]
        return value[:i] + rng.choice("aZ0_:\n-") + value[i:]
    return value


def mutate(doc: Any, rng: random.Random) -> Any:
    """1 to 3 random edits: delete, replace (from POOL or from elsewhere in
    the document, or a near miss of the value), add an unknown key, append,
    empty."""
    doc = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 3)):
        paths = _containers(doc)
        if not paths:
            return rng.choice(POOL)
        target = _at(doc, rng.choice(paths))
        op = rng.random()
        donor = _at(doc, rng.choice(paths))
        donated = list(donor.values()) if isinstance(donor, dict) else donor
        value = copy.deepcopy(rng.choice(POOL if op < 0.6 or not donated else donated))
        if isinstance(target, dict):
            if target and op < 0.25:
                del target[rng.choice(list(target))]
            elif target and op < 0.9:
                key = rng.choice(list(target))
                target[key] = perturb(target[key], rng) if op > 0.7 else value
            else:
                target[rng.choice(["x-unknown", "type", "path", "limit", "args"])] = value
        else:
            if target and op < 0.2:
                del target[rng.randrange(len(target))]
            elif target and op < 0.8:
                i = rng.randrange(len(target))
                target[i] = perturb(target[i], rng) if op > 0.6 else value
            elif op < 0.9:
                target.append(value)
            else:
                target.clear()
    return doc


def _bases() -> list[tuple[str, dict[str, Any]]]:
    bases = [("rich", RICH), ("template", spec.template()),
             ("busybox", json.loads((REPO / "bundles" / "busybox" / "config.json").read_text()))]
    if (SPEC_TESTS / "good").is_dir():
        for p in sorted((SPEC_TESTS / "good").glob("*.json")):
            bases.append((p.stem, json.loads(p.read_text())))
    return bases


def test_rich_config_is_valid() -> None:
    assert CONFIG_SCHEMA.is_valid(RICH) and _validator.valid_config(RICH)


@pytest.mark.parametrize(("name", "base"), _bases(), ids=[n for n, _ in _bases()])
def test_config_verdicts_agree_on_mutations(name: str, base: dict[str, Any]) -> None:
    rng = random.Random(f"config-{name}")
    verdicts = {True: 0, False: 0}
    for i in range(400):
        doc = mutate(base, rng)
        ref = CONFIG_SCHEMA.is_valid(doc)
        assert _validator.valid_config(doc) == ref, (i, json.dumps(doc)[:2000])
        verdicts[ref] += 1
    # both verdicts must occur often, or the test proves little
    assert verdicts[True] > 20 and verdicts[False] > 100, verdicts


@pytest.mark.parametrize("seed", range(3))
def test_process_verdicts_agree_on_mutations(seed: int) -> None:
    rng = random.Random(f"process-{seed}")
    verdicts = {True: 0, False: 0}
    for i in range(400):
        doc = mutate(RICH["process"], rng)
        ref = PROCESS_SCHEMA.is_valid(doc)
        assert _validator.valid_process(doc) == ref, (i, doc)
        verdicts[ref] += 1
    assert verdicts[True] > 20 and verdicts[False] > 100, verdicts


@pytest.mark.parametrize("doc", [None, 1, "x", [], [RICH], {}, {"ociVersion": "1"},
                                 {"root": {"path": "r"}}, {"ociVersion": "1", "root": {}}])
def test_degenerate_documents(doc: Any) -> None:
    assert _validator.valid_config(doc) == CONFIG_SCHEMA.is_valid(doc) is False
    assert _validator.valid_process(doc) == PROCESS_SCHEMA.is_valid(doc) is False


def _schema_patterns(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["pattern"]} if isinstance(node.get("pattern"), str) else set()
        return found.union(*(_schema_patterns(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_schema_patterns(v) for v in node))
    return set()


def test_pattern_matcher_agrees_with_re() -> None:
    patterns = _schema_patterns(load_schema(CONFIG)) | {"^a?b*[^x-z]+$", "^\\.[-a]$"}
    assert len(patterns) >= 6
    rng = random.Random("patterns")
    for pattern in sorted(patterns):
        atoms = parse_pattern(pattern)
        alphabet = sorted({c for c in pattern if c not in "^$[]*+?\\"} | set("aZ9\n -_:.xé"))
        samples = ["", "\n", "\n\n", "RLIMIT_A", "RLIMIT_A\n", "2MB", "MB:", "MB:\n", ".a", ".-"]
        samples += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
                    for _ in range(3000)]
        for s in samples:
            assert _validator._match(atoms, s) == bool(re.search(pattern, s)), (pattern, s)


def _leaves(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(doc, dict):
        return [p for k, v in doc.items() for p in _leaves(v, (*path, k))]
    if isinstance(doc, list):
        return [p for i, v in enumerate(doc) for p in _leaves(v, (*path, i))]
    return [path]


def _near_misses(value: Any) -> list[Any]:
    if type(value) is int:
        return [value - 1, value + 1]
    if isinstance(value, str):
        cuts = sorted({*range(min(3, len(value))), *range(max(0, len(value) - 3), len(value))})
        return ([value[:i] + value[i + 1:] for i in cuts]
                + [value + "\n", value + "a", value.lower(), value.upper()])
    return []


def _edited(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    out = copy.deepcopy(doc)
    parent = _at(out, path[:-1])
    if value is _DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return out


_DELETE = object()
INT_EDGES = [2**31 - 1, 2**31, -(2**31), -(2**31) - 1]


TYPE_CHANGERS: list[Any] = [None, True, 1, 1.0, "x", [], {}]


def _edits_of(value: Any) -> list[Any]:
    """Edge values and near misses fitting a leaf's own type, plus one value
    of every JSON type."""
    if type(value) is int:
        same: list[Any] = [v for v in [*POOL, *INT_EDGES] if type(v) is int]
    elif isinstance(value, str):
        same = [v for v in POOL if isinstance(v, str)]
    else:
        same = []
    return [*TYPE_CHANGERS, *same, *_near_misses(value)]


SECTIONS = ["process", "linux.resources", "linux.seccomp", "linux", ""]


def _section(path: tuple[Any, ...]) -> str:
    dotted = ".".join(str(p) for p in path)
    return next(s for s in SECTIONS if dotted.startswith(s))


@pytest.mark.parametrize("section", SECTIONS)
def test_every_single_edit_of_the_rich_config_agrees(section: str) -> None:
    """Exhaustive where the random mutations are sparse: every leaf set to
    every edge value and near miss, every key deleted."""
    checked = 0
    for path in [*_leaves(RICH), *_containers(RICH)]:
        if not path or _section(path) != section:
            continue
        for value in _edits_of(_at(RICH, path)):
            doc = _edited(RICH, path, value)
            assert _validator.valid_config(doc) == CONFIG_SCHEMA.is_valid(doc), (path, value)
            checked += 1
    for path in [*_containers(RICH), *_leaves(RICH)]:
        if path and _section(path) == section and isinstance(_at(RICH, path[:-1]), dict):
            doc = _edited(RICH, path, _DELETE)
            assert _validator.valid_config(doc) == CONFIG_SCHEMA.is_valid(doc), path
            checked += 1
    assert checked > 300
