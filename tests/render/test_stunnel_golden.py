"""render_stunnel: golden files, determinism, hostile values.

To rewrite the golden files after an intended change of the renderer (then review them):

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/render/test_stunnel_golden.py

Whether stunnel itself accepts each rendered file is proven by tests/engines (a throw-away
stunnel validates every file before an apply) and tests/test_ssl_termination_e2e.py.
"""

import dataclasses
from pathlib import Path

import pytest

from lbadmin.engines.daemons import RuntimeLayout
from lbadmin.render.snapshot import SslMode, SslTermination, StunnelSnapshot
from lbadmin.render.stunnel import (
    COMPATIBILITY_CIPHERS,
    HIGH_SECURITY_CIPHERS,
    render_stunnel,
    render_termination,
    stunnel_document,
    termination_instance,
)
from tests.render.golden import assert_golden

GOLDEN_DIR = Path(__file__).parent / "golden_stunnel"
LAYOUT = RuntimeLayout.under(Path("/var/lib/lbadmin"))


def termination(label: str = "SSL-FePoolExtWebSvcs4443", **changes: object) -> SslTermination:
    instance = termination_instance(label)
    values: dict = {
        "label": label,
        "instance": instance,
        "ip": "192.168.20.30",
        "port": 4443,
        "target_socket": str(LAYOUT.termination_socket(instance)),
        "certificate_file": str(LAYOUT.stunnel_cert_dir / ("ab" * 16 + ".pem")),
    }
    return dataclasses.replace(SslTermination(**values), **changes)


# The guide's Lync 2010 path: SSL-FePoolExtWebSvcs4443 (High Security, the default) in front
# of FePoolExtWebSvcs8081; and the same for the Director pool.
GUIDE = termination()
DIRECTOR = termination("SSL-DirPoolExtWebSvcs4443", ip="192.168.20.20")
CASES: dict[str, SslTermination] = {
    "guide_high_security": GUIDE,
    "compatibility": dataclasses.replace(GUIDE, mode=SslMode.COMPATIBILITY),
    "custom": dataclasses.replace(
        GUIDE, mode=SslMode.CUSTOM, ciphers="ECDHE-RSA-AES256-GCM-SHA384:!aNULL"
    ),
    "ipv6": termination("SSL-v6", ip="2001:db8::30", port=443),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    assert_golden(render_termination(CASES[case], LAYOUT), GOLDEN_DIR / f"{case}.conf")


def test_no_stale_golden_files() -> None:
    assert {path.stem for path in GOLDEN_DIR.glob("*.conf")} == set(CASES)


def test_guide_termination_key_lines() -> None:
    lines = render_termination(GUIDE, LAYOUT).splitlines()
    name = GUIDE.instance
    assert f"pid = {LAYOUT.stunnel_instance_pid(name)}" in lines
    assert "[SSL-FePoolExtWebSvcs4443]" in lines
    assert "accept = 192.168.20.30:4443" in lines
    assert f"connect = /var/lib/lbadmin/run/{name}.sock" in lines
    assert "protocol = proxy" in lines
    assert "sslVersionMin = TLSv1.2" in lines
    assert f"ciphers = {HIGH_SECURITY_CIPHERS}" in lines
    compatibility = render_termination(CASES["compatibility"], LAYOUT).splitlines()
    assert "sslVersionMin = TLSv1" in compatibility
    assert f"ciphers = {COMPATIBILITY_CIPHERS}" in compatibility


def test_one_file_per_termination_in_label_order() -> None:
    configs = render_stunnel(StunnelSnapshot(terminations=(DIRECTOR, GUIDE)), LAYOUT)
    assert list(configs) == [DIRECTOR.instance, GUIDE.instance]
    document = stunnel_document(configs)
    assert document.index("[SSL-DirPoolExtWebSvcs4443]") < document.index(
        "[SSL-FePoolExtWebSvcs4443]"
    )


def test_instance_names_are_stable_and_safe() -> None:
    assert termination_instance("SSL-FePoolExtWebSvcs4443") == GUIDE.instance
    assert termination_instance("a") != termination_instance("b")
    assert all(
        len(termination_instance(label)) == 16 for label in ("x", "SSL-" + "y" * 60, "a:b.c")
    )


def test_rendering_is_deterministic() -> None:
    snapshot = StunnelSnapshot(terminations=(DIRECTOR, GUIDE))
    assert render_stunnel(snapshot, LAYOUT) == render_stunnel(snapshot, LAYOUT)


# ---------------------------------------------------------------------------------------------
# Hostile values: a newline followed by `exec = /bin/sh` (or any other injection) must be
# impossible to render; each raises ValueError.

INJECTION = "\nexec = /bin/sh\n"
LABEL = termination().label  # the label the messages about its own fields start with
UNSAFE_PATH = "unsafe path for a config file"  # names neither the field nor the termination
HOSTILE: dict[str, tuple[SslTermination, str]] = {
    **{
        f"label {v!r}": (
            dataclasses.replace(termination(), label=v),
            f"invalid SSL termination label: {v!r}",
        )
        for v in ("SSL-x" + INJECTION, "SSL]x", "SSL x", "SSL;x", "", "x" * 65)
    },
    **{
        f"ip {v!r}": (termination(ip=v), f"{LABEL}: invalid IP address {v!r}")
        for v in ("192.168.20.30" + INJECTION, "192.168.20.30 ", "localhost")
    },
    "ip '2001:DB8::30'": (
        termination(ip="2001:DB8::30"),
        f"{LABEL}: IP address is not canonical: '2001:DB8::30'",
    ),
    **{
        f"port {v!r}": (termination(port=v), f"{LABEL}: invalid port {v!r}")
        for v in (0, 65536, "4443", True)
    },
    **{
        f"ciphers {v!r}": (
            termination(mode=SslMode.CUSTOM, ciphers=v),
            f"{LABEL}: unsafe cipher list {v!r}",
        )
        for v in ("HIGH" + INJECTION, "HIGH MEDIUM", "HIGH;x", "", "H" * 1025, "HIGH#x")
    },
    **{
        f"socket {v!r}": (termination(target_socket=v), f"{UNSAFE_PATH}: {v!r}")
        for v in ("/run/x.sock" + INJECTION, "/run/x y.sock", "run/x.sock")
    },
    **{
        f"certificate file {v!r}": (termination(certificate_file=v), f"{UNSAFE_PATH}: {v!r}")
        for v in ("/etc/x.pem" + INJECTION, "/etc/x y.pem", "x.pem")
    },
    "unknown mode": (termination(mode="weak"), "'weak' is not a valid SslMode"),
    "instance not derived from the label": (
        termination(instance="ssl-000000000000"),
        f"{LABEL}: instance name 'ssl-000000000000' does not match its label",
    ),
    "instance with a path": (
        termination(instance="../../etc/x"),
        f"{LABEL}: instance name '../../etc/x' does not match its label",
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_values_raise(name: str) -> None:
    snapshot, refusal = HOSTILE[name]
    with pytest.raises(ValueError) as refused:
        render_termination(snapshot, LAYOUT)
    assert str(refused.value) == refusal


def test_two_terminations_on_one_address_raise() -> None:
    twin = termination("SSL-other")
    with pytest.raises(
        ValueError, match=r"^SSL-other: 192\.168\.20\.30 port 4443 is already used$"
    ):
        render_stunnel(StunnelSnapshot(terminations=(GUIDE, twin)), LAYOUT)
