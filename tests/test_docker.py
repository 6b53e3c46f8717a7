"""The Docker files, checked without a Docker engine: the compose file's structure (a schema
check of what `docker compose config` would reject) and that it runs a valid scenario. The
Dockerfile itself is linted with hadolint in .ci/run."""

from pathlib import Path

import yaml

from fedrule.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker" / "compose.yaml"


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_has_a_head_two_workers_and_a_run():
    services = _compose()["services"]
    assert set(services) == {"ray-head", "ray-worker-1", "ray-worker-2", "fedrule"}
    assert "--head" in services["ray-head"]["entrypoint"]
    for worker in ("ray-worker-1", "ray-worker-2"):
        assert "--address=ray-head:6379" in services[worker]["entrypoint"]


def test_compose_structure_is_valid():
    compose = _compose()
    allowed = {
        "build",
        "image",
        "shm_size",
        "environment",
        "volumes",
        "entrypoint",
        "command",
        "healthcheck",
        "depends_on",
    }
    volumes = set(compose["volumes"])
    for name, service in compose["services"].items():
        assert set(service) <= allowed, name
        assert service["shm_size"], f"{name}: Ray needs shared memory"
        assert (
            ROOT / "docker" / service["build"]["context"] / service["build"]["dockerfile"]
        ).is_file()
        for mount in service["volumes"]:
            source, target = mount.split(":")
            assert source in volumes and target.startswith("/home/fedrule/"), mount
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in compose["services"]
            assert rule["condition"] in ("service_started", "service_healthy")
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in compose["services"][dependency]


def test_the_compose_run_is_a_valid_scenario():
    command = _compose()["services"]["fedrule"]["command"]
    assert command[0] == "run"
    overrides = [command[i + 1] for i, arg in enumerate(command) if arg == "--set"]
    scenario = load_scenario(ROOT / command[1], overrides)
    assert scenario.engine.kind == "federated"
    assert scenario.engine.ray_address == "ray-head:6379"
    assert scenario.engine.store_dir == "/home/fedrule/store"


def test_dockerfile_copies_what_exists_and_runs_unprivileged():
    text = (ROOT / "docker" / "Dockerfile").read_text()
    for line in text.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
    assert "\nUSER 1000\n" in text and "torch==2.13.0" in text
    assert 'ENTRYPOINT ["fedrule"]' in text
