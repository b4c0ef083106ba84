"""The dashboard's Starlette app: one page per concern, rendered on the server.

Every figure comes from ``cloudq.ops`` (``StatusReader``, ``list_dead_letters``,
``replay_dead_letters``) or the app itself (a task's record by id, the periodic tasks): the
same code as ``cloudq status`` and ``cloudq dlq``. Handlers are plain functions; Starlette runs
them in its thread pool (the transports are thread-safe).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from cloudq.core.clock import SYSTEM_CLOCK, Clock
from cloudq.core.errors import CloudQError
from cloudq.dashboard.samples import HEIGHT, WIDTH, Samples
from cloudq.dashboard.security import Guard, GuardMiddleware
from cloudq.ops.cost import read_cost
from cloudq.ops.dead_letters import list_dead_letters, replay_dead_letters
from cloudq.ops.status import StatusReader
from cloudq.ops.status_text import age_text, dollars, ms_text

if TYPE_CHECKING:
    from cloudq.app.base import CloudQ

HERE = Path(__file__).parent
#: CloudWatch is read at most once a minute (SQS publishes once a minute; reads are billed).
METRICS_INTERVAL_SECONDS = 60.0
DEAD_LETTER_LIMIT = 50
FORM_LIMIT_BYTES = 16_384


@dataclass
class Dashboard:
    """What the pages share: the app, its status reader, the samples, the guard."""

    app: CloudQ
    reader: StatusReader
    guard: Guard
    samples: Samples
    refresh_seconds: float
    clock: Clock
    metrics: str
    cloudwatch: Any


def create_app(
    app: CloudQ,
    guard: Guard,
    *,
    metrics: str = "auto",
    refresh_seconds: float = 2.0,
    clock: Clock = SYSTEM_CLOCK,
    cloudwatch: Any = None,
) -> Starlette:
    reader = StatusReader(
        app,
        metrics=metrics,
        cloudwatch=cloudwatch,
        metrics_interval_seconds=METRICS_INTERVAL_SECONDS,
        clock=clock,
    )
    board = Dashboard(app, reader, guard, Samples(clock), refresh_seconds, clock, metrics, cloudwatch)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals.update(age=age_text, ms=ms_text, dollars=dollars, WIDTH=WIDTH, HEIGHT=HEIGHT)
    pages = Pages(board, templates)
    routes = [
        Route("/", pages.queues),
        Route("/partials/queues", pages.queues_panel),
        Route("/dead-letters", pages.dead_letter_queues),
        Route("/dead-letters/{queue}", pages.dead_letters),
        Route("/dead-letters/{queue}/confirm", pages.confirm),
        Route("/dead-letters/{queue}/replay", pages.replay, methods=["POST"]),
        Route("/tasks", pages.task),
        Route("/periodic", pages.periodic),
        Route("/outcomes", pages.outcomes),
        Route("/cost", pages.cost),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(GuardMiddleware, guard=guard)],
        exception_handlers={CloudQError: _cloudq_error},
    )


async def _cloudq_error(request: Request, exc: Exception) -> Response:
    """A queue missing, a broker down: the page says it in one line, as the CLI would."""
    return PlainTextResponse(f"503: {exc}", status_code=503)


class Pages:
    def __init__(self, board: Dashboard, templates: Jinja2Templates) -> None:
        self.board = board
        self.templates = templates

    def _page(self, request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        board = self.board
        context.update(app=board.app.name, broker=board.app.transport.describe(), csrf=board.guard.csrf)
        return self.templates.TemplateResponse(request, name, context, status_code=status_code)

    def _status(self) -> Any:
        status = self.board.reader.read()
        for queue in status.queues:
            self.board.samples.add(queue.queue, queue.visible + queue.not_visible + queue.delayed)
        return status

    def queues(self, request: Request) -> Response:
        return self._page(request, "queues.html", **self._panel_context())

    def queues_panel(self, request: Request) -> Response:
        return self._page(request, "queues_panel.html", **self._panel_context())

    def _panel_context(self) -> dict[str, Any]:
        status = self._status()
        sparklines = {queue.queue: self.board.samples.points(queue.queue) for queue in status.queues}
        stamp = dt.datetime.fromtimestamp(self.board.clock.time(), dt.timezone.utc).strftime("%H:%M:%S")
        return {
            "status": status,
            "sparklines": sparklines,
            "refresh": self.board.refresh_seconds,
            "at": stamp,
        }

    def dead_letter_queues(self, request: Request) -> Response:
        return self._page(request, "dead_letter_queues.html", status=self.board.reader.read())

    def _queue(self, request: Request) -> str | None:
        queue = str(request.path_params["queue"])
        return queue if queue in self.board.app.queue_names() else None

    def dead_letters(self, request: Request) -> Response:
        queue = self._queue(request)
        if queue is None:
            return _not_found(request)
        letters = list_dead_letters(self.board.app, queue, DEAD_LETTER_LIMIT)
        return self._page(
            request,
            "dead_letters.html",
            queue=queue,
            letters=letters,
            allow_replay=self.board.guard.allow_replay,
        )

    def confirm(self, request: Request) -> Response:
        queue = self._queue(request)
        if queue is None:
            return _not_found(request)
        message_id = request.query_params.get("id", "")
        return self._page(
            request,
            "confirm.html",
            queue=queue,
            message_id=message_id,
            allow_replay=self.board.guard.allow_replay,
        )

    async def replay(self, request: Request) -> Response:
        queue = self._queue(request)
        if queue is None:
            return _not_found(request)
        form = await _form(request)
        if not self.board.guard.csrf_ok(form.get("csrf")):
            return PlainTextResponse("403: the form's CSRF token is missing or wrong; reload the page", 403)
        if not self.board.guard.allow_replay:
            return PlainTextResponse("403: replay is off; start the dashboard with --allow-replay", 403)
        wanted = [] if form.get("all") == "1" else [form.get("id", "")]
        if wanted == [""]:
            return PlainTextResponse("400: say which dead letter (id) or all=1", 400)
        from starlette.concurrency import run_in_threadpool

        replayed = await run_in_threadpool(replay_dead_letters, self.board.app, queue, wanted)
        return self._page(request, "replayed.html", queue=queue, replayed=replayed, wanted=wanted)

    def task(self, request: Request) -> Response:
        task_id = request.query_params.get("id", "").strip()
        record = self.board.app.AsyncResult(task_id).record() if task_id else None
        return self._page(request, "task.html", task_id=task_id, record=record, when=_when)

    def periodic(self, request: Request) -> Response:
        now = self.board.clock.time()
        rows = [
            (periodic, _when(periodic.schedule.next_after(now)))
            for periodic in sorted(self.board.app.periodic_tasks.values(), key=lambda p: p.name)
        ]
        return self._page(request, "periodic.html", rows=rows)

    def outcomes(self, request: Request) -> Response:
        outcomes, source = self.board.reader.outcomes()
        return self._page(request, "outcomes.html", outcomes=outcomes, source=source)

    def cost(self, request: Request) -> Response:
        """As ``cloudq status --cost`` (one GetMetricData per view; the page never refreshes)."""
        minutes = request.query_params.get("window", "60")
        window = int(minutes) * 60 if minutes.isdigit() and 0 < int(minutes) <= 1440 else 3600
        if self.board.metrics == "none":
            report: Any = "n/a: --metrics none (the cost is read from CloudWatch)"
        else:
            report = read_cost(self.board.app, window, cloudwatch=self.board.cloudwatch)
        return self._page(request, "cost.html", report=report, window=window // 60)


async def _form(request: Request) -> dict[str, str]:
    """A URL-encoded form (the only kind the pages send), without python-multipart."""
    body = await request.body()
    return dict(parse_qsl(body[:FORM_LIMIT_BYTES].decode("utf-8", "replace")))


def _not_found(request: Request) -> Response:
    return PlainTextResponse(f"404: no such queue in this app: {request.path_params['queue']}", 404)


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "n/a"
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
