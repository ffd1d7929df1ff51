"""Deployment files: docker-compose.yml and the CI workflow run what the code provides.

No database is needed: the files are parsed, their commands are resolved against the
real ``recon`` click group, and their environment is read by the real settings.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import yaml

from cli.main import cli
from shared.platform.settings import ConfigError, Settings, load_settings
from shared.platform.tasks import QUEUES

WORKER_ROLE_MIGRATION = "migrations/versions/0004_worker_role.py"

REPO_ROOT = Path(__file__).resolve().parents[2]
STACK = {"postgres", "redis", "migrate", "api", "worker", "beat"}
APP_SERVICES = ("migrate", "api", "worker", "beat")
LONG_RUNNING_APP_SERVICES = ("api", "worker", "beat")
# Connect as the role that may read payments but never write them (migration 0004).
WORKER_ROLE_SERVICES = ("worker", "beat")
OWNER_SERVICES = ("migrate", "api")
INITDB = "/docker-entrypoint-initdb.d"
# ${NAME}, ${NAME-default}, ${NAME:-default}, ${NAME?error}, ${NAME:?error}
INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?:(?P<operator>:?[-?])(?P<argument>[^}]*))?\}")


def load_yaml(relative_path: str) -> dict[str, Any]:
    """The YAML file at ``relative_path`` in the repository, parsed safely."""
    return yaml.safe_load((REPO_ROOT / relative_path).read_text())


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    """The services of docker-compose.yml (anchors and merge keys resolved)."""
    return load_yaml("docker-compose.yml")["services"]


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    """The CI workflow."""
    return load_yaml(".github/workflows/ci.yml")


def recon_context(argv: list[str]) -> click.Context:
    """Parse ``argv`` as the ``recon`` CLI would and return the leaf command's context.

    Fails the test when a word is not a command or an option does not parse, so a
    renamed command or option in the CLI breaks the deployment files' tests.
    """
    assert argv, "empty command"
    assert argv[0] == "recon", f"{argv} does not run the recon CLI"
    command: click.Command = cli
    context = click.Context(cli, info_name="recon")
    words = list(argv[1:])
    while isinstance(command, click.Group):
        if not words:
            pytest.fail(f"{argv} stops at the group {context.command_path!r}")
        name = words.pop(0)
        subcommand = command.get_command(context, name)
        if subcommand is None:
            pytest.fail(f"{argv}: {context.command_path!r} has no command {name!r}")
        command = subcommand
        if isinstance(command, click.Group):
            context = click.Context(command, info_name=name, parent=context)
    try:
        return command.make_context(name, words, parent=context, resilient_parsing=False)
    except click.UsageError as error:
        message = error.format_message()
    pytest.fail(f"{argv}: {message}")


def container_environment(environment: dict[str, str | None]) -> dict[str, str]:
    """The environment Compose gives a container when the host sets none of the variables.

    A key without a value is passed through from the host, so it is unset; ``${NAME}``
    is empty and ``${NAME:-default}`` is its default.
    """

    def interpolate(match: re.Match[str]) -> str:
        operator = match["operator"] or ""
        if "?" in operator:
            pytest.fail(f"compose refuses to start without {match['name']} on the host")
        return match["argument"] if operator else ""

    resolved = {}
    for name, value in environment.items():
        if value is None:
            continue
        text = INTERPOLATION.sub(interpolate, str(value))
        assert "$" not in text.replace("$$", ""), f"{name}: unresolved interpolation {value!r}"
        resolved[name] = text.replace("$$", "$")
    return resolved


def test_compose_declares_the_whole_stack(services):
    assert set(services) >= STACK


def test_every_long_running_compose_service_has_a_healthcheck(services):
    without = sorted(
        name
        for name, service in services.items()
        if name != "migrate" and not service.get("healthcheck", {}).get("test")
    )
    assert without == []


@pytest.mark.parametrize("service", APP_SERVICES)
def test_every_compose_command_is_a_recon_cli_command(services, service):
    command = services[service]["command"]
    assert isinstance(command, list), f"{service}: command must be a list"
    recon_context(command)


def test_migrate_runs_once_and_applies_every_migration(services):
    migrate = services["migrate"]
    context = recon_context(migrate["command"])
    assert context.command_path == "recon db upgrade"
    assert context.params["revision"] == "head"
    assert migrate["restart"] == "no"


def test_compose_worker_consumes_every_queue(services):
    context = recon_context(services["worker"]["command"])
    assert context.command_path == "recon worker"
    consumed = {queue.strip() for queue in context.params["queues"].split(",")}
    assert set(QUEUES) <= consumed


def test_api_healthcheck_probes_readiness_on_the_served_port(services):
    api = services["api"]
    context = recon_context(api["command"])
    assert context.command_path == "recon serve"
    port = context.params["port"]
    probe = " ".join(api["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/readyz" in probe
    assert "urllib.request" in probe, "slim images have no curl"
    published = {str(mapping).rsplit(":", 1)[-1] for mapping in api["ports"]}
    assert str(port) in published


@pytest.mark.parametrize("service", LONG_RUNNING_APP_SERVICES)
def test_app_services_start_after_migrations_succeed_and_redis_is_healthy(services, service):
    depends_on = services[service]["depends_on"]
    assert depends_on["migrate"]["condition"] == "service_completed_successfully"
    assert depends_on["redis"]["condition"] == "service_healthy"


def test_migrate_waits_for_a_healthy_postgres(services):
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_api_uses_the_compose_postgres_and_redis(services):
    environment = services["api"]["environment"]
    database = urlsplit(environment["DATABASE_URL"])
    postgres = services["postgres"]["environment"]
    assert database.scheme == "postgresql"
    assert (database.hostname, database.port) == ("postgres", 5432)
    assert database.username == postgres["POSTGRES_USER"]
    assert database.password == postgres["POSTGRES_PASSWORD"]
    assert database.path == f"/{postgres['POSTGRES_DB']}"
    broker = urlsplit(environment["REDIS_URL"])
    assert (broker.scheme, broker.hostname, broker.port) == ("redis", "redis", 6379)


@pytest.mark.parametrize("service", APP_SERVICES)
def test_compose_environment_is_accepted_by_the_settings(services, service, monkeypatch):
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in container_environment(services[service]["environment"]).items():
        monkeypatch.setenv(name, value)
    try:
        settings = load_settings()
    except ConfigError as error:
        pytest.fail(f"{service} would refuse to start: {error}")
    role = WORKER_ROLE if service in WORKER_ROLE_SERVICES else "recon"
    assert settings.database_url.startswith(f"postgresql+psycopg://{role}:")
    assert settings.database_url.endswith("@postgres:5432/recon")
    # Nothing set on the host leaves the token unset, never an empty string that an
    # empty header could match.
    assert settings.reconciliation_daily_token is None


def test_ci_runs_make_test_on_push_and_pull_request(workflow):
    # YAML 1.1 reads the bare key `on` as the boolean True.
    triggers = workflow.get("on", workflow.get(True))
    assert {"push", "pull_request"} <= set(triggers)
    runs = [
        line.split()
        for job in workflow["jobs"].values()
        for step in job["steps"]
        for line in step.get("run", "").splitlines()
    ]
    assert ["make", "test"] in runs
    assert all("timeout-minutes" in job for job in workflow["jobs"].values())


def test_ci_gives_the_tests_postgres_and_redis_service_containers(workflow):
    (job,) = (job for job in workflow["jobs"].values() if "services" in job)
    images = {name: service["image"].split(":")[0] for name, service in job["services"].items()}
    assert images == {"postgres": "postgres", "redis": "redis"}
    (test_step,) = (step for step in job["steps"] if "make test" in step.get("run", ""))
    published = {
        str(mapping).split(":")[0]
        for service in job["services"].values()
        for mapping in service["ports"]
    }
    for variable in ("TEST_DATABASE_URL", "TEST_REDIS_URL"):
        url = urlsplit(test_step["env"][variable])
        assert url.hostname == "127.0.0.1"
        assert str(url.port) in published, f"{variable} points at an unpublished port"


def worker_role() -> str:
    """The role migration 0004 creates and grants (read from the migration itself)."""
    source = (REPO_ROOT / WORKER_ROLE_MIGRATION).read_text()
    match = re.search(r'^WORKER_ROLE = "(\w+)"$', source, re.MULTILINE)
    assert match, f"{WORKER_ROLE_MIGRATION} names no WORKER_ROLE"
    return match[1]


WORKER_ROLE = worker_role()


def database_url_of(services, service: str):
    return urlsplit(container_environment(services[service]["environment"])["DATABASE_URL"])


@pytest.mark.parametrize("service", WORKER_ROLE_SERVICES)
def test_the_worker_and_beat_connect_as_the_role_that_cannot_write_payments(services, service):
    database = database_url_of(services, service)
    postgres = container_environment(services["postgres"]["environment"])
    assert database.username == WORKER_ROLE
    assert database.password == postgres["RECON_WORKER_PASSWORD"]
    assert database.password, "the worker role needs a password for PostgreSQL's TCP auth"
    assert (database.hostname, database.port) == ("postgres", 5432)
    assert database.path == f"/{postgres['POSTGRES_DB']}"


@pytest.mark.parametrize("service", OWNER_SERVICES)
def test_the_api_and_the_migration_keep_the_owner_role(services, service):
    postgres = services["postgres"]["environment"]
    assert database_url_of(services, service).username == postgres["POSTGRES_USER"]


def test_postgres_creates_the_worker_role_with_its_password_on_first_start(services):
    (mount,) = (volume for volume in services["postgres"]["volumes"] if f":{INITDB}" in str(volume))
    source = REPO_ROOT / mount.split(":")[0]
    scripts = sorted(source.iterdir())
    assert scripts, f"{source} holds no init script"
    for script in scripts:
        assert script.suffix == ".sh"
        assert script.stat().st_mode & 0o111, f"{script.name} must be executable"
    text = "\n".join(script.read_text() for script in scripts)
    assert f"CREATE ROLE {WORKER_ROLE} LOGIN PASSWORD :'password'" in text
    assert '--set=password="$RECON_WORKER_PASSWORD"' in text
    assert "RECON_WORKER_PASSWORD" in services["postgres"]["environment"]
