"""Commands that run the service's processes: API, worker, beat, or all three."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import click

from cli.services import ensure_services
from shared.platform import migrations
from shared.platform.settings import get_settings
from shared.platform.tasks import QUEUES

PYTHON = sys.executable


WORKER_CLASSES = ("gevent", "sync", "gthread")


def gunicorn_argv(
    host: str, port: int, workers: int, threads: int = 1, worker_class: str = "gevent"
) -> list[str]:
    """The gunicorn command line serving the Flask app.

    gevent workers by default: each process serves many requests at once, so the ones
    waiting on a commit share it (``shared.platform.group_commit``; docs/decisions.md). ``threads``
    above 1 means gthread workers, as before. Its own log lines are JSON
    (``cli.gunicorn_logging``); the app writes the access log. Its hooks are in
    ``cli.gunicorn_hooks``.
    """
    return [
        PYTHON, "-m", "gunicorn",
        "--workers", str(workers),
        "--worker-class", "gthread" if threads > 1 else worker_class,
        "--threads", str(threads),
        "--bind", f"{host}:{port}",
        "--timeout", "30",
        "--graceful-timeout", "20",
        "--keep-alive", "5",
        "--no-control-socket",
        "--logger-class", "cli.gunicorn_logging.JsonLogger",
        "--config", "python:cli.gunicorn_hooks",
        "--log-level", get_settings().log_level.lower(),
        "api.app:create_app()",
    ]  # fmt: skip


def worker_argv(queues: str, concurrency: int) -> list[str]:
    """The Celery worker command line."""
    return [
        PYTHON, "-m", "celery", "--app", "worker.celery_app:celery_app", "worker",
        "--queues", queues,
        "--concurrency", str(concurrency),
        "--loglevel", "INFO",
        "--without-gossip", "--without-mingle",
    ]  # fmt: skip


def beat_argv() -> list[str]:
    """The Celery beat command line."""
    return [
        PYTHON, "-m", "celery", "--app", "worker.celery_app:celery_app", "beat",
        "--loglevel", "INFO",
    ]  # fmt: skip


@click.command()
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")  # noqa: S104
@click.option("--port", default=8000, show_default=True, help="Port to listen on.")
@click.option("--workers", default=2, show_default=True, help="Gunicorn worker processes.")
@click.option(
    "--worker-class",
    type=click.Choice(WORKER_CLASSES),
    default="gevent",
    show_default=True,
    help="Gunicorn worker type.",
)
@click.option(
    "--threads", default=1, show_default=True, help="Request threads per worker (>1: gthread)."
)
def serve(host: str, port: int, workers: int, worker_class: str, threads: int) -> None:
    """Run the HTTP API (webhooks and triage) under gunicorn."""
    argv = gunicorn_argv(host, port, workers, threads, worker_class)
    os.execv(argv[0], argv)


@click.command()
@click.option(
    "--queues",
    default=",".join(QUEUES),
    show_default=True,
    help="Comma-separated queues to consume.",
)
@click.option("--concurrency", default=2, show_default=True, help="Worker processes.")
def worker(queues: str, concurrency: int) -> None:
    """Run a Celery worker that processes webhooks, matching, runs and maintenance."""
    argv = worker_argv(queues, concurrency)
    os.execv(argv[0], argv)


@click.command()
def beat() -> None:
    """Run Celery beat: daily runs per organisation and the maintenance sweeps."""
    argv = beat_argv()
    os.execv(argv[0], argv)


class Stack:
    """API, worker and beat as child processes, stopped together."""

    def __init__(self, environment: dict[str, str], port: int) -> None:
        self.children = [
            subprocess.Popen(gunicorn_argv("127.0.0.1", port, 2), env=environment),
            subprocess.Popen(worker_argv(",".join(QUEUES), 2), env=environment),
            subprocess.Popen(beat_argv(), env=environment),
        ]

    def poll(self) -> int | None:
        """The exit code of the first child that stopped, or None while all run."""
        for child in self.children:
            if child.poll() is not None:
                return child.returncode
        return None

    def stop(self) -> None:
        """Ask every child to stop, then wait (a worker finishes its current task)."""
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in self.children:
            try:
                child.wait(timeout=40)
            except subprocess.TimeoutExpired:
                child.kill()

    def wait(self) -> None:
        """Return when the first child stops."""
        while self.poll() is None:
            time.sleep(0.5)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def stop_on_interrupt_or_term() -> None:
    """Make Ctrl-C (SIGINT) and SIGTERM stop the stack: a shell starts a background job
    with SIGINT ignored, and SIGTERM would otherwise end this process alone and leave its
    children running."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)


@contextmanager
def foreground(stack: Stack) -> Iterator[Stack]:
    """Stop every child of ``stack`` on leaving; Ctrl-C or SIGTERM inside ends quietly
    ("stopping...")."""
    stop_on_interrupt_or_term()
    try:
        yield stack
    except KeyboardInterrupt:
        click.echo("stopping...")
    finally:
        stack.stop()


@click.command()
@click.option("--port", default=8000, show_default=True, help="Port of the API.")
def up(port: int) -> None:
    """Run API, worker and beat together in the foreground (development); Ctrl-C stops all.

    Uses DATABASE_URL/REDIS_URL, else the machine's local servers, else embedded ones
    under ./.recon/. Migrates the database first.
    """
    services = ensure_services()
    click.echo(f"database: {services.database_url}\nredis:    {services.redis_url}")
    migrations.upgrade()
    with foreground(Stack(services.environment(), port)) as stack:
        click.echo(f"API on http://127.0.0.1:{port} (Ctrl-C to stop)")
        stack.wait()
