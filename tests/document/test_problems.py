"""document_problems: every problem at once, each at its JSON path, in the house style; never an
exception, whatever JSON it is given (fuzzed)."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from lbadmin.document import ClusterConfig, document_problems
from lbadmin.document.problems import json_path
from tests.document.support import V2_FIXTURES, minimal, problems, upgraded

# The guide's services, by index in the export (sorted by label).
FE_8081 = "layer7.virtual_services[4]"
FRONT_END = "layer7.virtual_services[5]"


def test_real_servers_5_is_a_problem_not_an_exception() -> None:
    document = upgraded()
    document["layer7"]["virtual_services"][0]["real_servers"] = 5
    assert problems(document) == ["layer7.virtual_services[0].real_servers: input should be a list"]


def test_the_envelope() -> None:
    assert problems([]) == ["document: input should be an object"]
    assert problems({}) == ["format: is required", "version: is required"]
    assert problems({"format": "lbadmin-config", "version": "3"}) == [
        'format: "lbadmin-config" is not "lbadmin-cluster-config"',
        'version: "3" is not version 3 (a version 2 document is upgraded first)',
    ]
    assert problems(minimal(version=2)) == [
        "version: 2 is not version 3 (a version 2 document is upgraded first)"
    ]
    assert problems(minimal(version=3.0)) == [
        "version: 3.0 is not version 3 (a version 2 document is upgraded first)"
    ]
    assert problems(minimal(layer5={})) == ["layer5: is not a known key"]
    assert problems(minimal(layer7=[], ssl=None)) == [
        "layer7: input should be an object",
        "ssl: input should be an object",
    ]


def test_unknown_keys_are_named_whatever_they_hold() -> None:
    document = upgraded()
    service = document["layer7"]["virtual_services"][0]
    service["surprise"] = 1
    service["$(reboot)\n"] = 1
    service["x" * 500] = 1
    assert problems(document) == [
        "layer7.virtual_services[0].surprise: is not a known key",
        'layer7.virtual_services[0]["$(reboot)\\n"]: is not a known key',
        f'layer7.virtual_services[0]["{"x" * 36}...]: is not a known key',
    ]


def test_every_section_is_reported_at_once() -> None:
    """Version 2's import stopped at the first section with problems and named form fields
    without their section."""
    document = upgraded()
    document["layer7"]["settings"]["redispatch"] = "no"
    document["layer7"]["virtual_services"][2]["ports"] = [5061, 65536]
    document["ssl"]["certificates"][0]["source"] = "stolen"
    document["ssl"]["terminations"][1]["port"] = "4443"
    document["layer4"]["virtual_services"][3]["real_servers"][1]["weight"] = -1
    document["ha"]["advert_interval_ms"] = 15
    assert problems(document) == [
        'layer7.settings.redispatch: "no" is not true or false',
        "layer7.virtual_services[2].ports[1]: 65536 is not a port (1–65535)",
        'ssl.certificates[0].source: "stolen" is not one of "upload", "csr" or "self_signed"',
        'ssl.terminations[1].port: "4443" is not a port (1–65535)',
        "layer4.virtual_services[3].real_servers[1].weight: -1 is not a weight (0–256; 0: no new "
        "connections)",
        "ha.advert_interval_ms: 15 is not a heartbeat interval: must be 10 to 40950 ms in steps "
        "of 10",
    ]


def test_rules_over_valid_objects_are_reported_with_other_objects_problems() -> None:
    document = upgraded()
    services = document["layer7"]["virtual_services"]
    services[1]["label"] = services[0]["label"]  # a rule of Layer 7
    services[5]["real_servers"][0]["weight"] = 999  # FrontEndPool is invalid itself
    document["layer4"]["virtual_services"][0]["ip"] = services[8]["ip"]  # 10.12.1.150:443
    document["layer4"]["virtual_services"][1]["scheduler"] = "fastest"  # Layer 4 invalid
    document["ssl"]["certificates"][2]["label"] = "Edge-csr"  # a rule of SSL
    document["ssl"]["terminations"][0]["mode"] = "none"  # SSL invalid
    assert problems(document) == [
        f"{FRONT_END}.real_servers[0].weight: 999 is not a weight (0–256; 0: no new connections)",
        "layer7.virtual_services[1].label: “DirPoolExtWebSvcs8080” is already the label of "
        "virtual_services[0]",
        'ssl.terminations[0].mode: "none" is not one of "high_security", "compatibility" or '
        '"custom"',
        "ssl.certificates[2].label: “Edge-csr” is already the label of certificates[1]",
        'layer4.virtual_services[1].scheduler: "fastest" is not one of "wlc", "rr", "wrr" or "sh"',
        "layer4.virtual_services[0].ports[0]: 10.12.1.150:443/TCP is already used by virtual "
        "service ReverseProxyFE-https",
    ]


def test_a_reference_to_an_invalid_object_is_not_called_missing() -> None:
    document = upgraded()
    fe_8081 = document["layer7"]["virtual_services"][4]
    fe_8081["balance"] = 7  # the termination's service: invalid, but there
    document["ssl"]["certificates"][0]["chain_pem"] = "junk"  # the default certificate too
    assert [line.split(": ", 1)[0] for line in problems(document)] == [
        f"{FE_8081}.balance",
        "ssl.certificates[0].chain_pem",
    ]


def test_paths_read_as_json_paths() -> None:
    assert json_path(()) == "document"
    assert json_path(("layer7", "virtual_services", 3, "ports", 0)) == (
        "layer7.virtual_services[3].ports[0]"
    )
    assert json_path(("a b", 1)) == '["a b"][1]'
    assert json_path(("layer7", "\x00")) == 'layer7["\\u0000"]'


def test_a_problem_quotes_no_more_than_forty_printable_characters() -> None:
    document = minimal(layer7={"virtual_services": [{"label": "\u202e" + "x" * 10_000}]})
    found = problems(document)
    assert found == [
        f'layer7.virtual_services[0].label: "?{"x" * 35}... is not a label: use 1 to 64 letters, '
        "digits and _ . : - only",
        "layer7.virtual_services[0].ip: is required",
        "layer7.virtual_services[0].ports: is required",
    ]
    assert "\u202e" not in "".join(found)


# --- Fuzz ---------------------------------------------------------------------------------------

HOSTILE = [
    None, True, False, 0, -1, 1, 2**63, -(2**63), 10**400, 0.5, float("nan"), float("inf"),
    "", " ", "\x00", "a\nb", "$(reboot)", "`reboot`", "; rm -rf /", "%n%s", "{value}", "{0}",
    "\ud800", "\u202e", "é", "192.168.1.1", "::", "http", "tcp", "no", "0", "81", "x" * 5000,
    [], {}, [None], {"": None}, {"label": {}}, [[[[[]]]]],
]  # fmt: skip


def hostile(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value: hostile scalars, nested nonsense, bounded in size."""
    roll = rng.random()
    if depth > 4 or roll < 0.5:
        return rng.choice(HOSTILE)
    if roll < 0.75:
        return [hostile(rng, depth + 1) for _ in range(rng.randint(0, 6))]
    keys = ["label", "ip", "ports", "real_servers", "version", "format", "layer7", "x", "\x00"]
    return {rng.choice(keys): hostile(rng, depth + 1) for _ in range(rng.randint(0, 6))}


def mutated(rng: random.Random, document: Any) -> Any:
    """The document with one random place (value, list item or key) made hostile."""
    node, parents = document, []
    while isinstance(node, dict | list) and node and rng.random() < 0.85:
        key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
        parents.append((node, key))
        node = node[key]
    if not parents:
        return hostile(rng)
    parent, key = parents[-1]
    roll = rng.random()
    if roll < 0.6:
        parent[key] = hostile(rng)
    elif roll < 0.75 and isinstance(parent, dict):
        del parent[key]
    elif roll < 0.9 and isinstance(parent, dict):
        parent[rng.choice(HOSTILE[15:30])] = hostile(rng)
    elif isinstance(parent, list):
        parent.extend([parent[key]] * rng.randint(1, 300))  # repeated, and long (bounded)
    else:
        parent[key] = [hostile(rng) for _ in range(rng.randint(0, 2000))]
    return document


def fuzz_round(rng: random.Random, document: Any) -> None:
    found = document_problems(document)
    assert isinstance(found, list) and all(isinstance(line, str) for line in found)
    for line in found:
        path, _, says = line.partition(": ")
        assert path and says, line
        assert all(char.isprintable() for char in line), line
    if not found:  # valid: the models take it, and their dump is valid again, unchanged
        dump = ClusterConfig.model_validate(document).model_dump(mode="json")
        assert document_problems(dump) == []
        assert ClusterConfig.model_validate(dump).model_dump(mode="json") == dump


@pytest.mark.parametrize("seed", range(4))
def test_fuzz_random_json(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(100):
        value = hostile(rng)
        fuzz_round(rng, value)
        fuzz_round(rng, minimal(**{rng.choice(["layer7", "ssl", "layer4", "ha"]): value}))


@pytest.mark.parametrize("name", V2_FIXTURES)
def test_fuzz_mutated_exports(name: str) -> None:
    rng = random.Random(name)
    for _ in range(150):
        document = mutated(rng, upgraded(name))
        fuzz_round(rng, json.loads(json.dumps(document)) if rng.random() < 0.5 else document)


def test_a_large_valid_document_is_checked_in_one_pass() -> None:
    """10,000 real servers (the benchmark's size) and every one of 200 problems reported."""
    services = [
        {
            "label": f"S{n}", "ip": f"10.1.{n // 250}.{n % 250 + 1}", "ports": [80],
            "real_servers": [
                {"label": f"R{m}", "ip": f"10.2.{m}.{n % 250 + 1}", "port": 8080}
                for m in range(50)
            ],
        }
        for n in range(200)
    ]  # fmt: skip
    document = minimal(layer7={"virtual_services": services})
    assert problems(document) == []
    for service in services:
        service["real_servers"][7]["weight"] = 300
    assert len(problems(document)) == 200
