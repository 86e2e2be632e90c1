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
        assert env["CELERY_BROKER_URL"].startswith("redis+socket://")
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
    assert set(data["volumes"]) == {
        "lbadmin-var", "postgres-data", "postgres-socket", "redis-data", "redis-socket",
    }  # fmt: skip
    assert "postgres-data:/var/lib/postgresql/data" in data["services"]["postgres"]["volumes"]


def test_database_and_broker_open_no_port_and_need_a_password() -> None:
    """No TCP port (published or not): unix sockets on volumes only the appliance mounts; and
    every secret must be set in .env, with no default to fall back to."""
    data = compose()
    services = data["services"]
    for name in ("postgres", "redis"):
        assert "ports" not in services[name] and "network_mode" not in services[name], name
    assert "listen_addresses=" in services["postgres"]["command"]
    redis_command = " ".join(services["redis"]["command"])
    assert "--port 0" in redis_command and "requirepass" in redis_command
    assert "$$REDIS_PASSWORD" in redis_command  # from the environment, not on argv
    text = (ROOT / "docker-compose.yml").read_text()
    assert ":-" not in text  # no default for any variable, least of all a password
    for secret in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "DJANGO_SECRET_KEY"):
        assert f"${{{secret}:?" in text, secret
    env = data["x-appliance"]["environment"]
    assert "@%2Frun%2Fpostgresql/" in env["DATABASE_URL"]
    assert env["CELERY_BROKER_URL"].startswith("redis+socket://:${REDIS_PASSWORD:?")
    for name in ("web", "worker"):
        volumes = services[name]["volumes"]
        assert {"postgres-socket:/run/postgresql", "redis-socket:/run/redis"} <= set(volumes)


def test_image_installs_the_daemons_from_debian() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM debian:12" in dockerfile
    for package in ("haproxy", "stunnel4", "keepalived"):
        assert package in dockerfile
    assert "requirements.lock" in dockerfile
