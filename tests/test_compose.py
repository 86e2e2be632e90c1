"""docker-compose.yml describes the production deployment. No Docker engine runs on the CI
machine, so this checks the file's shape: the services, where the worker sits, the volumes."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_of_the_deployment() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "redis", "web", "worker"}
    for name in ("web", "worker"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://")
        assert env["CELERY_BROKER_URL"].startswith("redis://")
        assert "lbadmin-var:/var/lib/lbadmin" in services[name]["volumes"]


def test_worker_controls_the_daemons_on_the_host_network() -> None:
    services = compose()["services"]
    worker = services["worker"]
    assert worker["network_mode"] == "host"
    assert "NET_ADMIN" in worker["cap_add"]
    assert worker["command"][-2:] == ["--components", "daemons,worker"]
    web = services["web"]
    assert web["network_mode"] == "service:worker"  # 9443 on the host, beside the daemons
    assert web["command"][-2:] == ["--components", "web"]


def test_state_is_on_persistent_volumes() -> None:
    data = compose()
    assert set(data["volumes"]) == {"lbadmin-var", "postgres-data", "redis-data"}
    assert "postgres-data:/var/lib/postgresql/data" in data["services"]["postgres"]["volumes"]
    for name in ("postgres", "redis"):
        assert all(p.startswith("127.0.0.1:") for p in data["services"][name]["ports"])


def test_image_installs_the_daemons_from_debian() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM debian:12" in dockerfile
    for package in ("haproxy", "stunnel4", "keepalived"):
        assert package in dockerfile
    assert "requirements.lock" in dockerfile
