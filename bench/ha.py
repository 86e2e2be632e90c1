"""The HA pair's one-master figures (issue 17), on two real appliances in network namespaces
(tests/ha_support.py's harness: `manage.py serve` on each node, VRRPv3 with 100 ms adverts).

Prints, each against a floor measured in the same run:
- takeover: from SIGKILL of the master (keepalived and the whole node, its link down) to the
  slave holding the VIP, over the floor 3 x advert (VRRP's master-down interval);
- applies that add or remove a service address under client load: samples (every 50 ms) with
  two holders, and failed requests;
- a SIGKILL of keepalived alone on the master: seconds until one holder;
- the master's apply time with its slave's WebUI black-holed, over its usual apply time.

Run as root (`make bench` or `.venv/bin/python bench/ha.py [--runs N]`). Every loop is bounded
in count and time; leaving (also on an error or Ctrl-C) stops both nodes and removes the
namespaces. Traffic stays inside the namespaces the harness makes (192.0.2.0/24).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "appliance.settings")

from lbadmin.engines import netinfo
from tests.ha_support import CLIENT_IP, CLIENT_NS, HaCluster, wait_for
from tests.test_ha_pair import (
    BACKEND_PORT,
    VIP,
    add_web_service,
    apply,
    black_hole,
    holders,
    labels,
    node_state,
    pair,
    timed_apply,
    watch_apply,
)

ADVERT_S = 0.1


def takeover(cluster: HaCluster) -> float:
    """Kill the node holding the VIP; seconds until the other holds it. Restores the pair."""
    a, b, _ = cluster
    wait_for(lambda: len(holders(a, b, VIP)) == 1, 30, "one holder before the kill")
    holder, other = (a, b) if holders(a, b, VIP) == ["a"] else (b, a)
    killed = time.monotonic()
    holder.kill()
    # Only the survivor is polled, every 5 ms (faster polling takes the CPU keepalived needs
    # on two cores); the dead node's interface keeps the VIP until it starts again.
    wait_for(
        lambda: netinfo.holds_address(VIP, netns=f"lbha-{other.name}"), 10, "the takeover",
        interval=0.005,
    )  # fmt: skip
    took = time.monotonic() - killed
    holder.link_up()
    cluster.start()
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="takeovers and applies (max 10)")
    runs = max(1, min(parser.parse_args().runs, 10))
    with HaCluster() as cluster:
        cluster.start()
        a, b, client = cluster
        backend = subprocess.Popen(
            ["ip", "netns", "exec", CLIENT_NS, sys.executable, "-m", "http.server",
             str(BACKEND_PORT), "--bind", CLIENT_IP],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            pair(client, a, b, b.admin_password)
            add_web_service(client, a, "Web")
            apply(a)
            wait_for(lambda: "Web" in labels(b), 90, "the slave to run the configuration")
            wait_for(lambda: holders(a, b, VIP) == ["a"], 30, "the master to hold the VIP")

            # Applies that change the address set, under load.
            doubled = failed = answered = samples = 0
            for run in range(runs):
                label, address = f"Extra{run}", f"192.0.2.{20 + run}"
                add_web_service(client, a, label, ip=address)
                for step in ("add", "remove"):
                    if step == "remove":
                        pk = a.shell(
                            "from lbadmin.models import VirtualService; "
                            f"print(VirtualService.objects.get(label={label!r}).pk)"
                        ).split()[-1]
                        client.post(a, f"/lbadmin/cluster/l7/services/{pk}/delete/")
                    seen, ok, bad = watch_apply(a, b, (VIP, address), seconds=6.0)
                    samples += len(seen)
                    doubled += sum(1 for s in seen if any(len(h) > 1 for h in s.values()))
                    answered, failed = answered + ok, failed + bad
            print(
                f"applies changing the address set: {2 * runs}; samples with two holders "
                f"{doubled} of {samples}; failed requests {failed} of {answered + failed}"
            )

            # keepalived SIGKILLed on the master: time to one holder.
            wait_for(lambda: node_state(a)["role"] == "master", 10, "the master")
            pid = int(
                a.shell(
                    "from lbadmin.services.daemons import daemon_controllers; "
                    "print(daemon_controllers()['keepalived'].pid())"
                ).split()[-1]
            )
            killed = time.monotonic()
            os.killpg(pid, signal.SIGKILL)
            time.sleep(0.2)
            wait_for(lambda: len(holders(a, b, VIP)) == 1, 10, "one holder", interval=0.01)
            alone = time.monotonic() - killed
            print(f"keepalived SIGKILL on the master: one holder after {alone:.2f} s")
            client.post(a, "/lbadmin/cluster/ha/take-over/")
            wait_for(lambda: holders(a, b, VIP) == ["a"], 30, "the master to take the VIP back")

            # The master's apply time with the slave's WebUI black-holed.
            usual = []
            for run in range(runs):
                add_web_service(client, a, f"Usual{run}", ip=f"192.0.2.{40 + run}")
                usual.append(timed_apply(a))
            black_hole(a, b, True)
            try:
                held = []
                for run in range(runs):
                    add_web_service(client, a, f"Held{run}", ip=f"192.0.2.{60 + run}")
                    held.append(timed_apply(a))
            finally:
                black_hole(a, b, False)
            floor = statistics.median(usual)
            print(
                f"apply with the slave black-holed: median {statistics.median(held):.2f} s, "
                f"usual {floor:.2f} s: ratio {statistics.median(held) / floor:.2f}"
            )

            # Takeover after the master dies.
            times = [takeover(cluster) for _ in range(runs)]
            median = statistics.median(times)
            print(
                f"takeover (SIGKILL, link down): median {median:.3f} s over {runs} runs "
                f"(min {min(times):.3f}, max {max(times):.3f}); floor 3 x advert "
                f"{3 * ADVERT_S:.3f} s: ratio {median / (3 * ADVERT_S):.2f}"
            )
        finally:
            backend.kill()
            backend.wait(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
