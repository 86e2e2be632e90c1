"""Fixtures for tests that run real daemons; the helpers behind them are tests/daemon_support.py.

- ``layout``: a RuntimeLayout with sockets in a short /tmp/lb* directory; its finalizer
  SIGKILLs and reports anything of the test's left running.
- ``haproxy``: a HaproxyControl on that layout, stopped afterwards, pass or fail.
- ``stunnel``: a StunnelControl on that layout; all its instances stopped afterwards.
- ``keepalived``: a KeepalivedControl (``--vrrp``) on that layout, stopped afterwards.
- ``backends``: a Backends to start name-answering servers in threads; all stopped afterwards.

A test module may override one of these with a fixture of the same name that takes the
original as its argument (pytest's fixture overriding), to hand its tests something handier.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from lbadmin.engines.daemons import (
    HaproxyControl,
    KeepalivedControl,
    RuntimeLayout,
    StunnelControl,
)
from tests.daemon_support import (
    Backends,
    haproxy_control,
    keepalived_control,
    running_backends,
    short_layout,
    stunnel_control,
)


@pytest.fixture
def layout(tmp_path: Path) -> Iterator[RuntimeLayout]:
    with short_layout(tmp_path) as layout:
        yield layout


@pytest.fixture
def haproxy(layout: RuntimeLayout) -> Iterator[HaproxyControl]:
    with haproxy_control(layout) as control:
        yield control


@pytest.fixture
def stunnel(layout: RuntimeLayout) -> Iterator[StunnelControl]:
    with stunnel_control(layout) as control:
        yield control


@pytest.fixture
def keepalived(layout: RuntimeLayout) -> Iterator[KeepalivedControl]:
    with keepalived_control(layout) as control:
        yield control


@pytest.fixture
def backends() -> Iterator[Backends]:
    with running_backends() as backends:
        yield backends
