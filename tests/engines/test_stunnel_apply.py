"""lbadmin.engines.stunnel_apply with real stunnel instances on loopback.

Each instance listens on a random 127.x.y.z address (tests/daemon_support.py) and forwards
plain TCP to a Python HTTP backend on 127.0.0.1; certificates are made here with
cryptography (EC P-256: fast to generate). The ``stunnel`` fixture stops every instance, and
the ``layout`` fixture SIGKILLs and reports anything left (throw-away checks included).
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lbadmin.engines.daemons import (
    DaemonError,
    RuntimeLayout,
    StunnelControl,
)
from lbadmin.engines.stunnel_apply import (
    StunnelApplyResult,
    StunnelInstance,
    apply_stunnel,
)
from tests.daemon_support import (
    Backends,
    free_listen_address,
    free_port,
    https_get,
    served_certificate,
    wait_until,
)

pytestmark = pytest.mark.daemons

BODY = b"through stunnel"
NAME_A = "ssl-00000000000a"
NAME_B = "ssl-00000000000b"
NAME_C = "ssl-00000000000c"


# ---------------------------------------------------------------------------------------------
# Certificates


@dataclass(frozen=True)
class Bundle:
    """A key + self-signed certificate PEM bundle, named as the appliance names them."""

    pem: bytes
    der: bytes  # the certificate, to compare with what a server presents

    @property
    def file_name(self) -> str:
        return hashlib.sha256(self.pem).hexdigest()[:32] + ".pem"


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _certificate(cn: str, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )


def make_bundle(cn: str) -> Bundle:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(cn, key)
    pem = _key_pem(key) + cert.public_bytes(serialization.Encoding.PEM)
    return Bundle(pem, cert.public_bytes(serialization.Encoding.DER))


@pytest.fixture(scope="module")
def cert_a() -> Bundle:
    return make_bundle("a.example.com")


@pytest.fixture(scope="module")
def cert_b() -> Bundle:
    return make_bundle("b.example.com")


@pytest.fixture(scope="module")
def mismatched(cert_a: Bundle) -> Bundle:
    """cert_a's certificate with some other key: stunnel must refuse it."""
    other_key = ec.generate_private_key(ec.SECP256R1())
    cert_pem = cert_a.pem[cert_a.pem.index(b"-----BEGIN CERTIFICATE-----") :]
    return Bundle(_key_pem(other_key) + cert_pem, cert_a.der)


# ---------------------------------------------------------------------------------------------
# Helpers


@pytest.fixture
def backend_port(backends: Backends) -> int:
    return backends.http(BODY.decode(), "127.0.0.1").server_address[1]


def instance_config(
    layout: RuntimeLayout,
    name: str,
    host: str,
    port: int,
    backend_port: int,
    bundle: Bundle,
    extra: str = "",
) -> str:
    """What render.stunnel writes, with a plain TCP backend instead of HAProxy's socket."""
    return (
        f"; test instance {name}\n"
        f"pid = {layout.stunnel_instance_pid(name)}\n"
        "foreground = no\n"
        f"output = {layout.stunnel_instance_log(name)}\n"
        "syslog = no\n"
        f"\n[svc-{name[-1]}]\n"
        f"accept = {host}:{port}\n"
        f"connect = 127.0.0.1:{backend_port}\n"
        f"cert = {layout.stunnel_cert_dir / bundle.file_name}\n"
        f"{extra}"
    )


def instance(
    layout: RuntimeLayout,
    name: str,
    address: tuple[str, int],
    backend_port: int,
    bundle: Bundle,
    extra: str = "",
) -> StunnelInstance:
    host, port = address
    config = instance_config(layout, name, host, port, backend_port, bundle, extra)
    return StunnelInstance(name=name, config=config, host=host, port=port)


def files(*bundles: Bundle) -> dict[str, bytes]:
    return {bundle.file_name: bundle.pem for bundle in bundles}


def ok(result: StunnelApplyResult) -> StunnelApplyResult:
    assert result.ok, result.error
    return result


def assert_refused(host: str, port: int) -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, port), timeout=1).close()


# ---------------------------------------------------------------------------------------------
# Input checks (no stunnel runs)


def test_invalid_names_are_rejected_before_anything_is_written(
    layout: RuntimeLayout, stunnel: StunnelControl, cert_a: Bundle
) -> None:
    for bad in ("ssl-0123456789AB", "ssl-0123456789a", "ssl-0123456789ab\n", "../ssl-x", ""):
        refusal = re.escape(f"invalid stunnel instance name: {bad!r}")
        with pytest.raises(ValueError, match=refusal):
            layout.stunnel_instance_config(bad)
        with pytest.raises(ValueError, match=refusal):
            layout.termination_socket(bad)
        with pytest.raises(ValueError, match=refusal):
            apply_stunnel(stunnel, [StunnelInstance(bad, "", "127.0.0.1", 443)], {})
    good = instance(layout, NAME_A, ("127.0.0.1", 4443), 1, cert_a)
    for bad_file in ("../etc/passwd", "0123.pem", "ABCDEF0123456789.pem", "x" * 16 + ".pem"):
        refusal = re.escape(f"invalid certificate file name: {bad_file!r}")
        with pytest.raises(ValueError, match=refusal):
            apply_stunnel(stunnel, [good], {bad_file: b"x", **files(cert_a)})
    # The config must carry the pid/output lines the engine relies on, one accept, and the
    # address it is applied with.
    no_pid = good.config.replace("pid", ";")
    with pytest.raises(ValueError, match="pid ="):
        apply_stunnel(stunnel, [StunnelInstance(NAME_A, no_pid, "127.0.0.1", 4443)], {})
    two_accepts = good.config + "accept = 1.2.3.4:1\n"
    with pytest.raises(ValueError, match="exactly one accept"):
        apply_stunnel(stunnel, [StunnelInstance(NAME_A, two_accepts, "127.0.0.1", 4443)], {})
    with pytest.raises(ValueError, match="host/port say"):
        apply_stunnel(stunnel, [StunnelInstance(NAME_A, good.config, "127.0.0.1", 4444)], {})
    assert list(layout.stunnel_cert_dir.iterdir()) == []
    assert list(layout.stunnel_dir.iterdir()) == []


def test_layout_paths_per_instance(layout: RuntimeLayout) -> None:
    assert layout.stunnel_instance_config(NAME_A) == layout.stunnel_dir / f"{NAME_A}.conf"
    assert layout.stunnel_instance_pid(NAME_A).parent == layout.run_dir
    assert layout.stunnel_instance_log(NAME_A).parent == layout.log_dir
    assert layout.termination_socket(NAME_A) == layout.run_dir / f"{NAME_A}.sock"
    assert layout.stunnel_cert_dir.stat().st_mode & 0o777 == 0o700
    # A run_dir short enough for HAProxy's sockets but not for "<instance>.sock" is refused.
    tight = RuntimeLayout(conf_dir=Path("/c"), run_dir=Path("/" + "r" * 86), log_dir=Path("/l"))
    assert len(os.fsencode(tight.haproxy_master_socket)) <= 107
    with pytest.raises(ValueError, match=r"ssl-0{12}\.sock"):
        tight.check_socket_paths()


def test_status_with_no_instances(layout: RuntimeLayout, stunnel: StunnelControl) -> None:
    assert not stunnel.status().running  # never started
    stunnel.start()  # nothing configured: starts no process at all
    status = stunnel.status()
    assert status.running and status.pid is None
    assert status.detail == "no SSL terminations configured"
    assert stunnel.pid() is None
    stunnel.reload()  # nothing to reload
    stunnel.stop()
    assert stunnel.status().detail == "not running"


# ---------------------------------------------------------------------------------------------
# Applies


def test_new_instance_serves_tls_with_its_certificate(
    layout: RuntimeLayout,
    stunnel: StunnelControl,
    backend_port: int,
    cert_a: Bundle,
    cert_b: Bundle,
) -> None:
    address = free_listen_address()
    # An unrelated file in the certificate directory is none of the pruning's business.
    (layout.stunnel_cert_dir / "README").write_text("not a bundle\n")
    wanted = [instance(layout, NAME_A, address, backend_port, cert_a)]
    result = ok(apply_stunnel(stunnel, wanted, files(cert_a, cert_b)))
    assert result.changed and result.started == (NAME_A,)
    assert not result.reloaded and not result.stopped
    assert set(result.timings) == {"lock", "write_files", "validate", "bind", "swap", "total"}
    assert https_get(*address) == BODY
    assert served_certificate(*address) == cert_a.der
    pid = stunnel.instance_pid(NAME_A)
    status = stunnel.status()
    assert status.running and status.pid == pid and NAME_A in status.detail
    assert stunnel.running_instances() == {NAME_A: pid}
    config = layout.stunnel_instance_config(NAME_A)
    assert config.read_text() == wanted[0].config
    assert config.stat().st_mode & 0o777 == 0o640

    # Certificates: 0600 in a 0700 directory; cert_b, referenced by nothing, is pruned.
    assert layout.stunnel_cert_dir.stat().st_mode & 0o777 == 0o700
    kept = layout.stunnel_cert_dir / cert_a.file_name
    assert kept.stat().st_mode & 0o777 == 0o600
    assert kept.read_bytes() == cert_a.pem
    assert not (layout.stunnel_cert_dir / cert_b.file_name).exists()
    assert (layout.stunnel_cert_dir / "README").exists()

    # The same again: nothing to do, nothing touched.
    again = ok(apply_stunnel(stunnel, wanted, files(cert_a)))
    assert not again.changed and again.started == again.reloaded == again.stopped == ()
    assert stunnel.instance_pid(NAME_A) == pid


def test_ipv6_instance(
    layout: RuntimeLayout, stunnel: StunnelControl, backend_port: int, cert_a: Bundle
) -> None:
    # stunnel splits accept at the last colon: "::1:port", no brackets.
    address = ("::1", free_port("::1"))
    wanted = [instance(layout, NAME_A, address, backend_port, cert_a)]
    assert f"accept = ::1:{address[1]}\n" in wanted[0].config
    ok(apply_stunnel(stunnel, wanted, files(cert_a)))
    assert https_get(*address) == BODY


def test_certificate_change_under_load_is_a_hup_that_loses_nothing(
    layout: RuntimeLayout,
    stunnel: StunnelControl,
    backend_port: int,
    cert_a: Bundle,
    cert_b: Bundle,
) -> None:
    address = free_listen_address()
    first = instance(layout, NAME_A, address, backend_port, cert_a)
    ok(apply_stunnel(stunnel, [first], files(cert_a)))
    pid = stunnel.instance_pid(NAME_A)
    served, failures = [0], []
    stop = threading.Event()

    def client_loop() -> None:
        while not stop.is_set():
            try:
                assert https_get(*address) == BODY  # a new TLS connection each time
                served[0] += 1
            except Exception as exc:
                failures.append(repr(exc))

    client = threading.Thread(target=client_loop)
    client.start()
    try:
        wait_until(lambda: served[0] >= 5, 5, "the client loop to get going")
        bundles = [cert_b, cert_a] * 3
        for bundle in bundles:  # six certificate replacements while connections keep coming
            wanted = [instance(layout, NAME_A, address, backend_port, bundle)]
            result = ok(apply_stunnel(stunnel, wanted, files(bundle)))
            assert result.reloaded == (NAME_A,) and not result.started and not result.stopped
            assert served_certificate(*address) == bundle.der
            time.sleep(0.02)
    finally:
        stop.set()
        client.join(timeout=10)
    assert failures == [], f"{len(failures)} of {served[0] + len(failures)}: {failures[:3]}"
    assert served[0] >= 20
    assert stunnel.instance_pid(NAME_A) == pid  # SIGHUP, not a restart
    # The last apply used cert_a: cert_b's file is gone.
    assert sorted(p.name for p in layout.stunnel_cert_dir.iterdir()) == [cert_a.file_name]


def test_bad_configs_change_nothing_and_quote_stunnel(
    layout: RuntimeLayout,
    stunnel: StunnelControl,
    backend_port: int,
    cert_a: Bundle,
    mismatched: Bundle,
) -> None:
    address = free_listen_address()
    good = instance(layout, NAME_A, address, backend_port, cert_a)
    ok(apply_stunnel(stunnel, [good], files(cert_a)))
    pid = stunnel.instance_pid(NAME_A)
    cases = [
        ("ciphers = NO-SUCH-CIPHER\n", cert_a, "no cipher match"),
        ("", mismatched, "key values mismatch"),
        ("frobnicate = yes\n", cert_a, "Specified option name is not valid here"),
        # Valid for stunnel, but no client can negotiate: only the handshake shows it.
        ("sslVersionMax = TLSv1.2\nciphers = NULL-SHA\n", cert_a, "no TLS handshake possible"),
    ]
    for extra, bundle, quote in cases:
        bad = instance(layout, NAME_A, address, backend_port, bundle, extra)
        result = apply_stunnel(stunnel, [bad], files(cert_a, bundle))
        assert not result.ok and not result.changed
        assert NAME_A in result.error and "[svc-a]" in result.error
        assert quote in result.error, result.error
        assert "Nothing was changed" in result.error
        assert result.started == result.reloaded == result.stopped == ()
        assert layout.stunnel_instance_config(NAME_A).read_text() == good.config
        assert stunnel.instance_pid(NAME_A) == pid
        assert served_certificate(*address) == cert_a.der
        assert https_get(*address) == BODY
    # No throw-away check left anything behind.
    assert not [p for p in layout.run_dir.iterdir() if p.name.startswith("stc-")]


def test_bind_failures_change_nothing(
    layout: RuntimeLayout,
    stunnel: StunnelControl,
    backend_port: int,
    cert_a: Bundle,
    cert_b: Bundle,
) -> None:
    address_a = free_listen_address()
    running = instance(layout, NAME_A, address_a, backend_port, cert_a)
    ok(apply_stunnel(stunnel, [running], files(cert_a)))
    pid = stunnel.instance_pid(NAME_A)
    changed_a = instance(layout, NAME_A, address_a, backend_port, cert_b)
    with socket.socket() as taken:
        taken.bind(free_listen_address())
        taken.listen()
        held = taken.getsockname()
        result = apply_stunnel(
            stunnel,
            [changed_a, instance(layout, NAME_B, held, backend_port, cert_a)],
            files(cert_a, cert_b),
        )
    assert f"{NAME_B}: cannot listen on {held[0]}:{held[1]}: address already in use" in result.error
    # 192.0.2.0/24 (TEST-NET-1) is on no interface here.
    other = apply_stunnel(
        stunnel,
        [changed_a, instance(layout, NAME_B, ("192.0.2.10", 4443), backend_port, cert_a)],
        files(cert_a, cert_b),
    )
    assert "this host has no address 192.0.2.10" in other.error
    for failed in (result, other):
        assert not failed.ok and not failed.changed
        assert "Nothing was changed" in failed.error
        assert failed.started == failed.reloaded == failed.stopped == ()
    assert stunnel.configured_instances() == (NAME_A,)
    assert layout.stunnel_instance_config(NAME_A).read_text() == running.config
    assert stunnel.instance_pid(NAME_A) == pid
    assert served_certificate(*address_a) == cert_a.der


def test_remove_move_and_hand_over_addresses(
    layout: RuntimeLayout, stunnel: StunnelControl, backend_port: int, cert_a: Bundle
) -> None:
    address_a, address_b = free_listen_address(), free_listen_address()
    a = instance(layout, NAME_A, address_a, backend_port, cert_a)
    b = instance(layout, NAME_B, address_b, backend_port, cert_a)
    ok(apply_stunnel(stunnel, [a, b], files(cert_a)))
    pid_a, pid_b = stunnel.instance_pid(NAME_A), stunnel.instance_pid(NAME_B)
    assert pid_a and pid_b and pid_a != pid_b

    # Removing B stops it, frees its port and removes its files; A is not touched.
    result = ok(apply_stunnel(stunnel, [a], files(cert_a)))
    assert result.stopped == (NAME_B,) and not result.started and not result.reloaded
    assert_refused(*address_b)
    with socket.socket() as probe:
        probe.bind(address_b)  # free again
    assert not layout.stunnel_instance_config(NAME_B).exists()
    assert not layout.stunnel_instance_pid(NAME_B).exists()
    assert stunnel.instance_pid(NAME_A) == pid_a

    # Moving A to another port is a restart on the new socket.
    address_moved = (address_a[0], free_port(address_a[0]))
    moved = instance(layout, NAME_A, address_moved, backend_port, cert_a)
    result = ok(apply_stunnel(stunnel, [moved], files(cert_a)))
    assert result.stopped == (NAME_A,) and result.started == (NAME_A,)
    assert_refused(*address_a)
    assert https_get(*address_moved) == BODY

    # C takes over A's address in the same apply that removes A.
    c = instance(layout, NAME_C, address_moved, backend_port, cert_a)
    result = ok(apply_stunnel(stunnel, [c], files(cert_a)))
    assert result.stopped == (NAME_A,) and result.started == (NAME_C,)
    assert https_get(*address_moved) == BODY
    assert stunnel.configured_instances() == (NAME_C,)


def test_an_unfinished_swap_is_completed_by_the_next_apply(
    layout: RuntimeLayout,
    stunnel: StunnelControl,
    backend_port: int,
    cert_a: Bundle,
    cert_b: Bundle,
) -> None:
    address = free_listen_address()
    first = instance(layout, NAME_A, address, backend_port, cert_a)
    ok(apply_stunnel(stunnel, [first], files(cert_a)))
    pid = stunnel.instance_pid(NAME_A)
    # As if an applier died between writing the new file and its SIGHUP.
    new = instance(layout, NAME_A, address, backend_port, cert_b)
    (layout.stunnel_cert_dir / cert_b.file_name).write_bytes(cert_b.pem)
    layout.stunnel_instance_config(NAME_A).write_text(new.config)
    pending = layout.run_dir / "stunnel-apply.pending"
    pending.touch()
    assert served_certificate(*address) == cert_a.der
    result = ok(apply_stunnel(stunnel, [new], files(cert_b)))
    assert result.changed and result.reloaded == (NAME_A,)
    assert stunnel.instance_pid(NAME_A) == pid
    assert served_certificate(*address) == cert_b.der
    assert not pending.exists()
    assert not ok(apply_stunnel(stunnel, [new], files(cert_b))).changed


class FailingReload(StunnelControl):
    """Fails the first SIGHUP of NAME_B, as if stunnel refused its file after validation
    (its old config keeps running, so the roll-back's HUP of the old file succeeds)."""

    failed = False

    def reload_instance(self, name: str, timeout: float = 5.0) -> None:
        if name == NAME_B and not self.failed:
            self.failed = True
            raise DaemonError("injected: stunnel rejected the new config")
        super().reload_instance(name, timeout)


def test_failure_during_the_swap_restores_every_instance(
    layout: RuntimeLayout,
    stunnel: StunnelControl,
    backend_port: int,
    cert_a: Bundle,
    cert_b: Bundle,
) -> None:
    address_a, address_b, address_c = (free_listen_address() for _ in range(3))
    before = [
        instance(layout, NAME_A, address_a, backend_port, cert_a),
        instance(layout, NAME_B, address_b, backend_port, cert_a),
    ]
    ok(apply_stunnel(stunnel, before, files(cert_a)))
    pids = stunnel.running_instances()
    after = [
        instance(layout, NAME_A, address_a, backend_port, cert_b),  # reloaded, then undone
        instance(layout, NAME_B, address_b, backend_port, cert_b),  # its reload fails
        instance(layout, NAME_C, address_c, backend_port, cert_b),  # started, then stopped
    ]
    result = apply_stunnel(FailingReload(layout), after, files(cert_b))
    assert not result.ok and not result.changed, result
    assert f"{NAME_B}: injected" in result.error
    assert "previous configuration was restored" in result.error
    assert stunnel.running_instances() == pids
    assert stunnel.configured_instances() == (NAME_A, NAME_B)
    for old in before:
        assert layout.stunnel_instance_config(old.name).read_text() == old.config
    assert served_certificate(*address_a) == cert_a.der  # A was re-HUPed with its old file
    assert served_certificate(*address_b) == cert_a.der
    assert_refused(*address_c)


def test_sigkilled_instance_comes_back(
    layout: RuntimeLayout, stunnel: StunnelControl, backend_port: int, cert_a: Bundle
) -> None:
    address = free_listen_address()
    wanted = [instance(layout, NAME_A, address, backend_port, cert_a)]
    ok(apply_stunnel(stunnel, wanted, files(cert_a)))
    for revive in ("apply", "restart"):
        pid = stunnel.instance_pid(NAME_A)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: stunnel.instance_pid(NAME_A) is None, 3, "the killed stunnel")
        status = stunnel.status()
        assert not status.running and f"1 of 1 instances down: {NAME_A}" in status.detail
        if revive == "apply":  # same file, dead process: started again
            assert ok(apply_stunnel(stunnel, wanted, files(cert_a))).started == (NAME_A,)
        else:
            stunnel.restart()
        assert stunnel.instance_pid(NAME_A) not in (None, pid)
        assert stunnel.status().running
        assert https_get(*address) == BODY
