"""The keepalived apply pipeline (lbadmin.engines.keepalived_apply) against this machine's real
keepalived 2.2.7.

This kernel has no IPVS (no /proc/net/ip_vs), so keepalived runs with ``--vrrp``
(``KeepalivedControl(vrrp_only=True)``, the ``keepalived`` fixture): a config's
``virtual_server`` blocks pass ``keepalived -t`` and are re-read on every reload, but no checker
process runs them. Configs are hand-written here, not rendered (the renderer is
lbadmin/render/keepalived.py).

What keepalived made of a file is read two ways: from its log (how the engine confirms; see
KeepalivedControl), and, independently, from the copy of the configuration keepalived's
parent keeps in a memfd ("/memfd:/keepalived/consolidated_configuration", rewritten on each
reload), readable as root through /proc/<pid>/fd.

Tests that need a VRRP child (an interface keepalived may use: it refuses lo) create a network
namespace with a veth pair and have keepalived enter it itself (``net_namespace``), so its VRRP
adverts never leave the namespace; they need root and ``ip``. Every keepalived started here is
stopped by a fixture, the namespace is deleted after it, and the layout fixture
(tests/engines/conftest.py) SIGKILLs and reports anything left.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from lbadmin.engines.daemons import (
    KeepalivedControl,
    RuntimeLayout,
    find_binary,
    keepalived_log_lines,
    keepalived_messages,
)
from lbadmin.engines.files import file_lock
from lbadmin.engines.keepalived_apply import (
    GOOD_SUFFIX,
    LOCK_FILE_NAME,
    PENDING_FILE_NAME,
    PHASES,
    apply_keepalived_config,
)
from tests.daemon_support import wait_until

pytestmark = pytest.mark.daemons

VIRTUAL_SERVER = """\
virtual_server 127.0.50.10 5061 {
    delay_loop 6
    lb_algo wlc
    lb_kind NAT
    protocol TCP
    real_server 127.0.50.11 5061 {
        weight 100
        TCP_CHECK {
            connect_timeout 3
        }
    }
}
"""
GARBAGE = "this is { not keepalived\n"


# ---------------------------------------------------------------------------------------------
# Helpers


def config(router_id: str, *, namespace: str | None = None, extra: str = "") -> str:
    head = f"net_namespace {namespace}\n" if namespace else ""
    return (
        head
        + textwrap.dedent(f"""\
            # written by test_keepalived_apply
            global_defs {{
                router_id {router_id}
                enable_script_security
                script_user root
            }}
            """)
        + extra
    )


def vrrp_instance(vip: str, interface: str = "lbv0") -> str:
    return textwrap.dedent(f"""\
        vrrp_instance VI_1 {{
            version 3  # VRRPv3: sub-second adverts, so MASTER within ~0.3 s
            state MASTER
            interface {interface}
            virtual_router_id 51
            priority 150
            advert_int 0.1
            virtual_ipaddress {{
                {vip}/24
            }}
        }}
        """)


def consolidated_config(pid: int) -> str:
    """The configuration keepalived's parent last read, from its memfd."""
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if "keepalived/consolidated_configuration" in target:
            return fd.read_text()
    raise AssertionError(f"keepalived pid {pid} holds no consolidated configuration")


def log_size(control: KeepalivedControl) -> int:
    return control.log_path.stat().st_size if control.log_path.exists() else 0


def log_since(control: KeepalivedControl, offset: int) -> list[str]:
    with open(control.log_path, "rb") as log:
        log.seek(offset)
        return keepalived_log_lines(log.read().decode())


def leftovers(layout: RuntimeLayout) -> list[str]:
    """Temp files an apply or a check left in conf_dir."""
    return sorted(p.name for p in layout.conf_dir.iterdir() if p.name.startswith("."))


def good_file(control: KeepalivedControl) -> Path:
    return control.config_path.with_name(control.config_path.name + GOOD_SUFFIX)


def applied(control: KeepalivedControl, text: str) -> int:
    """Apply ``text``, which must succeed; keepalived's pid."""
    result = apply_keepalived_config(control, text)
    assert result.ok, result.error
    pid = control.pid()
    assert pid is not None
    return pid


def ip_command() -> str:
    ip = find_binary("ip")
    if os.geteuid() != 0 or ip is None:
        pytest.skip("needs root and iproute2 (network namespaces)")
    return ip


def namespace_addresses(ip: str, namespace: str) -> str:
    return subprocess.run(
        [ip, "-n", namespace, "-br", "addr", "show", "lbv0"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.fixture
def netns() -> Iterator[str]:
    """A network namespace with a veth pair, lbv0 (192.0.2.1/24) and lbv1, both up."""
    ip = ip_command()
    name = f"lbka-{secrets.token_hex(4)}"
    subprocess.run([ip, "netns", "add", name], check=True, capture_output=True)
    try:
        for args in (
            ["link", "add", "lbv0", "type", "veth", "peer", "name", "lbv1"],
            ["link", "set", "lbv0", "up"],
            ["link", "set", "lbv1", "up"],
            ["addr", "add", "192.0.2.1/24", "dev", "lbv0"],
        ):
            done = subprocess.run([ip, "-n", name, *args], capture_output=True, text=True)
            if done.returncode != 0:
                pytest.skip(f"cannot set up a veth pair here: {done.stderr.strip()}")
        yield name
    finally:
        subprocess.run([ip, "netns", "delete", name], capture_output=True)


@pytest.fixture
def ns_keepalived(netns: str, layout: RuntimeLayout) -> Iterator[KeepalivedControl]:
    """A vrrp-only KeepalivedControl, stopped before ``netns`` is deleted."""
    control = KeepalivedControl(layout, vrrp_only=True)
    try:
        yield control
    finally:
        control.stop(timeout=2.0)


# ---------------------------------------------------------------------------------------------
# Measured facts the engine relies on (keepalived 2.2.7)


def test_keepalived_t_exit_codes_as_measured(tmp_path: Path) -> None:
    """-t exits 0 for a missing file, a directory and an empty file, which is why
    check_config checks the file, passes -e and proves the parse."""
    binary = find_binary("keepalived")
    assert binary is not None

    def t(*args: str) -> tuple[int, str]:
        done = subprocess.run([binary, *args], capture_output=True, text=True, check=False)
        return done.returncode, done.stdout + done.stderr

    good, bad, empty = tmp_path / "good.conf", tmp_path / "bad.conf", tmp_path / "empty.conf"
    good.write_text(config("lbgood"))
    bad.write_text(GARBAGE)
    empty.write_text("")
    missing = tmp_path / "missing.conf"
    assert t("-t", "-f", str(good)) == (0, "")
    assert t("-t", "-f", str(empty)) == (0, "")
    rc, out = t("-t", "-f", str(missing))
    assert rc == 0 and "Config files missing" in out
    assert t("-e", "-t", "-f", str(missing))[0] == 4
    rc, out = t("-t", "-f", str(tmp_path))
    assert rc == 0 and "is a directory" in out
    rc, out = t("-t", "-f", str(bad))
    assert rc == 5 and "Unknown keyword 'this'" in out


def test_keepalived_messages_says_each_thing_once() -> None:
    """-t's output for GARBAGE as 2.2.7 prints it: once per process type, the parent's copy
    without the file name; shown once, with the staged name replaced by the live one."""
    staged, live = Path("/etc/lb/.keepalived.conf.apply-x.tmp"), Path("/etc/lb/keepalived.conf")
    block = (
        "({f}Line 1) Unknown keyword 'this'\n({f}Line 1) Unexpected '{{' - ignoring\n"
        "({f}Line 1) Unknown keyword 'not'\nThere are 1 missing '}}'s or extra '{{'s\n"
    )
    output = block.format(f="") + 3 * block.format(f=f"{staged}: ")
    assert keepalived_messages(output, staged=staged, live=live).splitlines() == [
        f"({live}: Line 1) Unknown keyword 'this'",
        f"({live}: Line 1) Unexpected '{{' - ignoring",
        f"({live}: Line 1) Unknown keyword 'not'",
        "There are 1 missing '}'s or extra '{'s",
    ]
    log = "Fri Nov 27 04:15:48 2026: Reloading ...\nFri Nov 27 04:15:48 2026: Reload complete\n"
    assert keepalived_log_lines(log) == ["Reloading ...", "Reload complete"]


# ---------------------------------------------------------------------------------------------
# Applies


def test_first_apply_starts_keepalived_with_the_new_file(
    layout: RuntimeLayout, keepalived: KeepalivedControl
) -> None:
    text = config("lbfirst", extra=VIRTUAL_SERVER)
    result = apply_keepalived_config(keepalived, text)
    assert result.ok, result.error
    assert result.changed and result.error == ""
    assert set(result.timings) == {*PHASES, "total"}
    assert all(value >= 0 for value in result.timings.values())

    pid = keepalived.pid()
    assert pid is not None
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    assert "--vrrp" in cmdline and "--dont-fork" in cmdline
    assert keepalived.config_path.read_text() == text
    loaded = consolidated_config(pid)
    assert "router_id lbfirst" in loaded and "virtual_server 127.0.50.10 5061" in loaded
    assert f"Configuration file {keepalived.config_path}" in log_since(keepalived, 0)
    # --vrrp: no checker process, even with virtual_server blocks.
    assert not layout.keepalived_checkers_pid_file.exists()
    assert not good_file(keepalived).exists()  # nothing was served before
    assert not (layout.run_dir / PENDING_FILE_NAME).exists()
    assert leftovers(layout) == []


def test_same_text_again_changes_nothing(keepalived: KeepalivedControl) -> None:
    text = config("lbsame")
    pid = applied(keepalived, text)
    offset = log_size(keepalived)
    result = apply_keepalived_config(keepalived, text)
    assert result.ok and not result.changed, result
    assert result.timings["reload"] == 0.0
    assert keepalived.pid() == pid
    assert log_since(keepalived, offset) == []  # no SIGHUP


def test_changed_config_is_reloaded_and_confirmed(
    layout: RuntimeLayout, keepalived: KeepalivedControl
) -> None:
    first = config("lbone")
    pid = applied(keepalived, first)
    offset = log_size(keepalived)

    second = config("lbtwo", extra=VIRTUAL_SERVER)
    result = apply_keepalived_config(keepalived, second)
    assert result.ok and result.changed, result.error
    assert keepalived.pid() == pid  # a reload, not a restart
    lines = log_since(keepalived, offset)
    assert "Reloading ..." in lines
    assert f"Configuration file {keepalived.config_path}" in lines
    loaded = consolidated_config(pid)
    assert "router_id lbtwo" in loaded and "virtual_server 127.0.50.10 5061" in loaded
    assert keepalived.config_path.read_text() == second
    assert good_file(keepalived).read_text() == first

    third = config("lbthree", extra=VIRTUAL_SERVER.replace("weight 100", "weight 50"))
    assert applied(keepalived, third) == pid
    assert "weight 50" in consolidated_config(pid)
    assert good_file(keepalived).read_text() == second
    assert leftovers(layout) == []


def test_virtual_server_configs_apply_and_reload_without_ipvs(
    layout: RuntimeLayout, keepalived: KeepalivedControl
) -> None:
    """IPVS blocks on a kernel without IPVS: -t passes and, with --vrrp, no checker runs."""
    two_servers = VIRTUAL_SERVER.replace(
        "    real_server 127.0.50.11 5061 {",
        "    real_server 127.0.50.12 5061 {\n        weight 100\n    }\n"
        "    real_server 127.0.50.11 5061 {",
    )
    pid = applied(keepalived, config("lbvs", extra=VIRTUAL_SERVER))
    assert applied(keepalived, config("lbvs", extra=two_servers)) == pid
    assert "real_server 127.0.50.12 5061" in consolidated_config(pid)
    assert not layout.keepalived_checkers_pid_file.exists()
    status = keepalived.status()
    assert status.running and "VRRP only" in status.detail


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (GARBAGE, "Unknown keyword 'this'"),
        (config("lbbad", extra=vrrp_instance("192.0.2.100", "nosuch0")), "nosuch0"),
    ],
    ids=["syntax", "missing-interface"],
)
def test_refused_config_changes_nothing(
    layout: RuntimeLayout, keepalived: KeepalivedControl, text: str, reason: str
) -> None:
    good = config("lbgood")
    pid = applied(keepalived, good)
    offset = log_size(keepalived)

    result = apply_keepalived_config(keepalived, text)
    assert not result.ok and not result.changed
    assert reason in result.error
    assert str(keepalived.config_path) in result.error or "(Line" in result.error
    assert ".apply-" not in result.error  # the staged name is shown as the live one
    if reason.startswith("Unknown"):
        assert result.error.count(reason) == 1  # -t says it once per process type
    assert keepalived.config_path.read_text() == good
    assert keepalived.pid() == pid
    assert "Reloading ..." not in log_since(keepalived, offset)
    assert not (layout.run_dir / PENDING_FILE_NAME).exists()
    assert leftovers(layout) == []


def test_empty_or_unparsed_text_is_never_valid(
    tmp_path: Path, layout: RuntimeLayout, keepalived: KeepalivedControl
) -> None:
    for text in ("", "\n   \n", "# only a comment\n! and another\n"):
        result = apply_keepalived_config(keepalived, text)
        assert not result.ok and not result.changed, result
        assert result.error.startswith("the keepalived configuration is empty (no line other"), (
            result
        )
    assert keepalived.pid() is None and not keepalived.config_path.exists()

    # check_config itself: a missing file, a directory, an empty file.
    not_a_file = "does not exist or is not a regular file"
    check = keepalived.check_config(tmp_path / "missing.conf")
    assert not check.ok and check.output == f"config file {tmp_path / 'missing.conf'} {not_a_file}"
    check = keepalived.check_config(tmp_path)
    assert not check.ok and check.output == f"config file {tmp_path} {not_a_file}"
    empty = tmp_path / "empty.conf"
    empty.write_text("")
    check = keepalived.check_config(empty)
    assert not check.ok
    assert check.output.startswith(f"config file {empty} holds no configuration (empty or only")

    # A "keepalived -t" that exits 0 without parsing (as 2.2.7 does for a missing file) does
    # not pass: the probe line appended to a copy must be reported.
    fake = tmp_path / "fake-keepalived"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    blind = KeepalivedControl(layout, vrrp_only=True, binary=fake)
    good = tmp_path / "good.conf"
    good.write_text(config("lbgood"))
    assert keepalived.check_config(good).ok
    check = blind.check_config(good)
    assert not check.ok and "did not parse" in check.output
    result = apply_keepalived_config(blind, config("lbgood"))
    assert not result.ok and "did not parse" in result.error
    assert not keepalived.config_path.exists()
    assert leftovers(layout) == []


def test_reload_keepalived_refuses_at_runtime_restores_the_good_file(
    layout: RuntimeLayout, keepalived: KeepalivedControl, tmp_path: Path
) -> None:
    """``instance`` passes -t, but keepalived will not change it at a reload."""
    good = config("lbkeep")
    pid = applied(keepalived, good)
    refused = config("lbkeep") + "instance lbother\n"
    staged = tmp_path / "refused.conf"
    staged.write_text(refused)
    assert keepalived.check_config(staged).ok  # -t has no objection
    offset = log_size(keepalived)

    result = apply_keepalived_config(keepalived, refused)
    assert not result.ok and not result.changed
    assert "Cannot change instance name at a reload - please restart keepalived" in result.error
    assert "restored from keepalived.conf.good" in result.error
    assert f"keepalived (pid {pid}) reloaded the restored file" in result.error
    assert keepalived.config_path.read_text() == good
    assert keepalived.pid() == pid
    # The refused reload, then the reload of the restored file.
    assert log_since(keepalived, offset).count("Reloading ...") == 2
    assert not (layout.run_dir / PENDING_FILE_NAME).exists()

    # Nothing is wedged: the next apply goes through.
    assert applied(keepalived, config("lbnext")) == pid
    assert "router_id lbnext" in consolidated_config(pid)


def test_an_unconfirmed_swap_is_reloaded_even_if_the_text_is_the_same(
    layout: RuntimeLayout, keepalived: KeepalivedControl
) -> None:
    """An applier killed between the swap and the reload leaves the pending flag: the next
    apply of the same text must not trust the live file."""
    text = config("lbpending")
    pid = applied(keepalived, text)
    (layout.run_dir / PENDING_FILE_NAME).touch()
    offset = log_size(keepalived)
    result = apply_keepalived_config(keepalived, text)
    assert result.ok and result.changed
    assert "Reloading ..." in log_since(keepalived, offset)
    assert keepalived.pid() == pid
    assert not (layout.run_dir / PENDING_FILE_NAME).exists()


def test_lock_timeout_is_prompt(layout: RuntimeLayout, keepalived: KeepalivedControl) -> None:
    with file_lock(layout.run_dir / LOCK_FILE_NAME, 1.0):
        result = apply_keepalived_config(keepalived, config("lblock"), lock_timeout=0.2)
    assert not result.ok and "still running" in result.error
    assert 0.2 <= result.timings["lock"] < 1.0
    assert keepalived.pid() is None and not keepalived.config_path.exists()


def test_reload_of_a_keepalived_started_elsewhere_restarts_it(
    layout: RuntimeLayout, keepalived: KeepalivedControl
) -> None:
    """A keepalived started daemonized (syslog only, as before this engine) writes nothing
    a reload could be confirmed from: reload() restarts it under the engine's own flags."""
    keepalived.config_path.write_text(config("lbold"))
    binary = find_binary("keepalived")
    assert binary is not None
    subprocess.run(
        [
            binary,
            "-e",
            "-f",
            str(keepalived.config_path),
            "-p",
            str(layout.keepalived_pid_file),
            "-r",
            str(layout.keepalived_vrrp_pid_file),
            "-c",
            str(layout.keepalived_checkers_pid_file),
            "-b",
            str(layout.keepalived_bfd_pid_file),
            "--vrrp",
        ],
        check=True,
        timeout=10,
    )
    wait_until(keepalived.pid, 5, "the daemonized keepalived")
    old = keepalived.pid()
    assert old is not None
    keepalived.config_path.write_text(config("lbnew"))
    keepalived.reload()
    new = keepalived.pid()
    assert new is not None and new != old
    assert "--log-console" in Path(f"/proc/{new}/cmdline").read_bytes().decode()
    assert "router_id lbnew" in consolidated_config(new)


# ---------------------------------------------------------------------------------------------
# With a VRRP child (network namespace)


def test_vrrp_reload_is_confirmed_by_the_child_and_moves_the_vip(
    netns: str, ns_keepalived: KeepalivedControl
) -> None:
    ip = ip_command()
    pid = applied(
        ns_keepalived, config("lbvrrp", namespace=netns, extra=vrrp_instance("192.0.2.100"))
    )
    wait_until(lambda: "192.0.2.100/24" in namespace_addresses(ip, netns), 10, "the MASTER's VIP")
    child = int(ns_keepalived.layout.keepalived_vrrp_pid_file.read_text())
    offset = log_size(ns_keepalived)

    result = apply_keepalived_config(
        ns_keepalived, config("lbvrrp", namespace=netns, extra=vrrp_instance("192.0.2.101"))
    )
    assert result.ok and result.changed, result.error
    lines = log_since(ns_keepalived, offset)
    # "Reloading": the VRRP child got the HUP; "Reload complete": the parent, once the child
    # told it that it had read the new file.
    assert "Reloading" in lines and "Reload complete" in lines
    assert ns_keepalived.pid() == pid
    assert int(ns_keepalived.layout.keepalived_vrrp_pid_file.read_text()) == child
    wait_until(
        lambda: (
            "192.0.2.101/24" in (addrs := namespace_addresses(ip, netns))
            and "192.0.2.100/24" not in addrs
        ),
        5,
        "the new VIP to replace the old one",
    )


class _InterfaceVanishesBeforeTheReload(KeepalivedControl):
    """The reload's own check of the live file passes; then, before the SIGHUP, the
    interface the new config needs disappears (as a hot-unplugged NIC would)."""

    def __init__(self, layout: RuntimeLayout, ip: str, namespace: str) -> None:
        super().__init__(layout, vrrp_only=True)
        self.ip, self.namespace, self.armed = ip, namespace, False

    def check_config(self, path: Path | None = None):  # type: ignore[no-untyped-def]
        result = super().check_config(path)
        if self.armed and path is None and result.ok:
            self.armed = False
            subprocess.run([self.ip, "-n", self.namespace, "link", "del", "lbv0"], check=True)
        return result


def test_keepalived_going_down_on_reload_is_started_again_with_the_good_file(
    netns: str, layout: RuntimeLayout
) -> None:
    """A VRRP child started by a reload on a missing interface ends keepalived ("exited with
    permanent error CONFIG. Terminating"); -t cannot see it coming, as the interface existed
    when it ran. The apply puts the good file back and starts keepalived on it."""
    ip = ip_command()
    control = _InterfaceVanishesBeforeTheReload(layout, ip, netns)
    try:
        good = config("lbalive", namespace=netns)
        pid = applied(control, good)
        control.armed = True
        result = apply_keepalived_config(
            control, config("lbalive", namespace=netns, extra=vrrp_instance("192.0.2.100"))
        )
        assert not result.ok and not result.changed
        assert "Non-existent interface" in result.error or "permanent error" in result.error
        assert "went down and was started again" in result.error, result.error
        new = control.pid()
        assert new is not None and new != pid
        assert control.config_path.read_text() == good
        assert "router_id lbalive" in consolidated_config(new)
        assert not (layout.run_dir / PENDING_FILE_NAME).exists()
    finally:
        control.stop(timeout=2.0)


def test_stop_leaves_no_process(layout: RuntimeLayout, keepalived: KeepalivedControl) -> None:
    pid = applied(keepalived, config("lbstop"))
    keepalived.stop()
    assert keepalived.pid() is None
    assert not Path(f"/proc/{pid}").exists()  # exited and reaped (it is our child)
    assert not layout.keepalived_pid_file.exists()
