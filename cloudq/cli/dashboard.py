"""``cloudq dashboard``: the web dashboard (the ``dashboard`` extra)."""

from __future__ import annotations

import click

from cloudq.cli.root import APP_OPTION, METRICS_OPTION, friendly_errors, main
from cloudq.core.distribution import DISTRIBUTION
from cloudq.core.errors import ConfigurationError

DASHBOARD_MISSING = f"the dashboard needs its extra: pip install '{DISTRIBUTION}[dashboard]'"


@main.command()
@APP_OPTION
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (others need --token).")
@click.option(
    "--port", default=5555, show_default=True, type=click.IntRange(0, 65535), help="0: any free port."
)
@click.option(
    "--token",
    envvar="CLOUDQ_DASHBOARD_TOKEN",
    default=None,
    help="Every request must carry it (or CLOUDQ_DASHBOARD_TOKEN); needed to bind beyond loopback.",
)
@click.option("--allow-replay", is_flag=True, help="Show the replay buttons of the dead-letter page.")
@METRICS_OPTION
@click.option(
    "--refresh",
    default=2.0,
    show_default=True,
    type=click.FloatRange(min=0.5),
    help="Queue panel refresh, s.",
)
@friendly_errors
def dashboard(
    app_reference: str,
    host: str,
    port: int,
    token: str | None,
    allow_replay: bool,
    metrics_source: str,
    refresh: float,
) -> None:
    """A web page of the app's queues, dead letters, tasks, periodic tasks and costs."""
    import socket

    try:
        import uvicorn

        from cloudq.dashboard.security import Guard, refusal
        from cloudq.dashboard.server import create_app
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("starlette", "uvicorn", "jinja2"):
            raise ConfigurationError(DASHBOARD_MISSING) from None
        raise
    from cloudq.app.loading import load_app

    reason = refusal(host, token or None)
    if reason:
        raise ConfigurationError(reason)
    app = load_app(app_reference)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot bind {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)  # connections wait in the backlog until the server accepts them
    bound = sock.getsockname()[1]
    guard = Guard(host, bound, token or None, allow_replay)
    web = create_app(app, guard, metrics=metrics_source, refresh_seconds=refresh)
    where = f"[{host}]" if ":" in host else host
    click.echo(f"cloudq dashboard of {app.name} on http://{where}:{bound}/ (Ctrl-C stops)", err=True)
    server = uvicorn.Server(uvicorn.Config(web, log_level="warning", access_log=False))
    server.run(sockets=[sock])
