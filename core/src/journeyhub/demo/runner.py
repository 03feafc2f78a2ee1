"""``journeyhub demo``: start the hub and the sandboxes, play the story, report, clean up.

Everything runs in this one process, on the embedded defaults, under a data directory of its
own (a fresh temporary one unless ``--data-dir`` says otherwise), so the demo never touches a
``.journeyhub`` that ``serve`` uses. The hub's and the sandboxes' logs go to ``demo.log`` in
that directory: the terminal shows the story.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import time
from pathlib import Path
from typing import Any, TextIO

import httpx
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.spinner import Spinner
from rich.table import Column, Table
from rich.text import Text

from journeyhub.demo import DemoOptions
from journeyhub.demo import sandboxes as sandbox_set
from journeyhub.demo.report import report
from journeyhub.demo.sandboxes import Sandboxes
from journeyhub.demo.scenario import CHOICES, STORY, STUDIO, Scenario, StepFailed
from journeyhub.hub import Hub
from journeyhub.plugins import PluginRegistry, get_plugin_manager
from journeyhub.settings import Settings, load_settings

DEFAULT_PORT = 8000


# --- the terminal ---------------------------------------------------------------------------------


class _Status(ProgressColumn):
    """· waiting, a spinner while running, then ✓, ✗ or - (skipped)."""

    MARKS = {"ok": ("✓", "bold green"), "failed": ("✗", "bold red"), "skipped": ("-", "dim")}

    def __init__(self) -> None:
        super().__init__(table_column=Column(width=1, no_wrap=True))
        self.spinner = Spinner("dots", style="cyan")

    def render(self, task: Task) -> Any:
        state = task.fields.get("state", "waiting")
        if state == "running":
            return self.spinner.render(task.get_time())
        mark, style = self.MARKS.get(state, ("·", "dim"))
        return Text(mark, style=style)


class _Elapsed(ProgressColumn):
    def __init__(self) -> None:
        super().__init__(table_column=Column(width=6, justify="right", no_wrap=True))

    def render(self, task: Task) -> Text:
        if task.start_time is None or task.fields.get("state") == "skipped":
            return Text("")
        return Text(f"{task.elapsed or 0:.1f}s", style="dim")


class Display:
    """One line per part of the story: a live Rich progress display on a terminal, plain
    lines (printed as each part ends) anywhere else, such as CI logs."""

    TITLE_WIDTH = 24

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal and not console.is_dumb_terminal
        self.progress = Progress(
            _Status(),
            TextColumn("{task.description}", table_column=Column(width=self.TITLE_WIDTH)),
            TextColumn("{task.fields[result]}", table_column=Column(ratio=1, overflow="fold")),
            _Elapsed(),
            console=console,
            expand=True,
            auto_refresh=self.live,
            refresh_per_second=12,
        )
        self.titles: dict[TaskID, str] = {}

    def __enter__(self) -> Display:
        if self.live:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.progress.refresh()
            self.progress.stop()

    def add(self, title: str) -> TaskID:
        task = self.progress.add_task(title, start=False, total=1, result="", state="waiting")
        self.titles[task] = title
        return task

    def start(self, task: TaskID) -> None:
        self.progress.start_task(task)
        self.progress.update(task, state="running")

    def waiting_for(self, task: TaskID, what: str) -> None:
        self.progress.update(task, result=f"[dim]waiting for {escape(what)}…[/dim]")

    def finish(self, task: TaskID, state: str, result: str) -> None:
        self.progress.stop_task(task)
        style = {"failed": "red", "skipped": "dim"}.get(state)
        text = escape(result)
        self.progress.update(
            task, state=state, completed=1, result=f"[{style}]{text}[/{style}]" if style else text
        )
        if not self.live:
            self._print_line(task)

    def note(self, text: str) -> None:
        """A remark under the result column."""
        grid = self._grid()
        grid.add_row("", "", Text(text, style="dim"), "")
        self.console.print(grid)

    def _grid(self) -> Table:
        grid = Table.grid(padding=(0, 1), expand=True)
        grid.add_column(width=1)
        grid.add_column(width=self.TITLE_WIDTH)
        grid.add_column(ratio=1, overflow="fold")
        grid.add_column(width=6, justify="right")
        return grid

    def _print_line(self, task_id: TaskID) -> None:
        task = next(t for t in self.progress.tasks if t.id == task_id)
        mark, style = _Status.MARKS.get(task.fields["state"], ("·", "dim"))
        grid = self._grid()
        elapsed = "" if task.fields["state"] == "skipped" else f"{task.elapsed or 0:.1f}s"
        grid.add_row(
            Text(mark, style=style),
            task.description,
            Text.from_markup(task.fields["result"]),
            Text(elapsed, style="dim"),
        )
        self.console.print(grid)


# --- the hub, in this process -------------------------------------------------------------------


class HubRuntime:
    """The hub, its workers and its gateway as asyncio tasks on this loop."""

    def __init__(self) -> None:
        self.hub: Hub | None = None
        self.stop_workers = asyncio.Event()
        self.tasks: list[asyncio.Task[Any]] = []
        self.server: Any = None

    async def start(self, settings: Settings, registry: PluginRegistry) -> Hub:
        import uvicorn

        from journeyhub.embedded_server import embedded_server
        from journeyhub.gateway.app import create_app
        from journeyhub.workers.runner import run_workers

        self.hub = hub = await Hub.start(settings, registry=registry)
        self.tasks.append(asyncio.create_task(run_workers(hub, self.stop_workers), name="workers"))
        config = uvicorn.Config(
            create_app(hub),
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            log_config=None,
            timeout_graceful_shutdown=5,
        )
        # Ctrl-C belongs to the demo (it stops everything in order), not to uvicorn.
        self.server = server = embedded_server(config)

        async def serve() -> None:
            try:
                await server.serve()
            except SystemExit:  # uvicorn exits when it cannot listen
                raise RuntimeError(
                    f"the gateway could not listen on {settings.host}:{settings.port}"
                ) from None

        task = asyncio.create_task(serve(), name="gateway")
        self.tasks.append(task)
        deadline = asyncio.get_running_loop().time() + 15
        while not server.started:
            if task.done():
                task.result()  # raises why it stopped
                raise RuntimeError("the gateway stopped at start")
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError("the gateway did not start within 15 s")
            await asyncio.sleep(0.02)
        return hub

    async def stop(self) -> None:
        self.stop_workers.set()
        if self.server is not None:
            self.server.should_exit = True
        pending = {t for t in self.tasks if not t.done()}
        if pending:
            _, pending = await asyncio.wait(pending, timeout=4)
        if pending and self.server is not None:
            self.server.force_exit = True  # a client still holds a connection open
            _, pending = await asyncio.wait(pending, timeout=2)
        for task in pending:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(BaseException):
                await task
        if self.hub is not None:
            await self.hub.close()


# --- helpers --------------------------------------------------------------------------------------


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def choose_port(requested: int | None) -> int:
    from journeyhub.bus.embedded import free_port

    if requested is not None:
        return requested
    return DEFAULT_PORT if port_is_free(DEFAULT_PORT) else free_port()


def selected_plugins() -> tuple[str, ...] | None:
    """``JOURNEYHUB_PLUGINS`` narrows the demo too (the journey engine's ``webhook`` stays)."""
    raw = os.environ.get("JOURNEYHUB_PLUGINS", "")
    names = tuple(n.strip() for n in raw.split(",") if n.strip())
    return (*names, "webhook") if names else None


class LogFile:
    """Send the hub's structlog lines and the ASGI servers' logging to a file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stream: TextIO = path.open("a", encoding="utf-8")
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(
            logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s")
        )

    def configure(self) -> None:
        import structlog

        from journeyhub.logs import redact_secrets

        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,
                redact_secrets,
                structlog.processors.JSONRenderer(),
            ],
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
            logger_factory=structlog.PrintLoggerFactory(file=self.stream),
            cache_logger_on_first_use=False,
        )
        self.route_stdlib()

    def route_stdlib(self) -> None:
        """Call again after servers are made: uvicorn's Config resets its loggers."""
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "litestar", "httpx"):
            logger = logging.getLogger(name)
            logger.handlers = [self.handler]
            logger.propagate = False

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stream.close()


# --- the run --------------------------------------------------------------------------------------


class Demo:
    def __init__(self, options: DemoOptions, console: Console) -> None:
        self.options = options
        self.console = console
        assert options.data_dir is not None, "journeyhub.demo.run chooses the data directory"
        self.owned_dir = options.temporary
        self.data_dir = options.data_dir
        self.runtime = HubRuntime()
        self.boxes: Sandboxes | None = None
        self.scenario: Scenario | None = None
        self.api: httpx.AsyncClient | None = None
        self.port = 0
        self.failed: str | None = None
        self.succeeded = False

    async def run(self) -> int:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        logs = LogFile(self.data_dir / "demo.log")
        logs.configure()
        started = time.monotonic()
        code = 0
        try:
            with Display(self.console) as display:
                ok = await self.play(display, logs)
            if not ok:
                code = 1
            else:
                assert self.scenario is not None
                self.console.print()
                self.console.print(await report(self.scenario))
                self.succeeded = True
                self.footer(time.monotonic() - started)
                if self.options.keep_running:
                    await self.keep_running()
        finally:
            await self.shutdown()
            logs.close()
            self.cleanup(code)
        return code

    async def play(self, display: Display, logs: LogFile) -> bool:
        """Every part of the run as a line of the display; False at the first failure."""
        port = choose_port(self.options.port)
        self.port = port
        plugins = selected_plugins()
        settings = load_settings(
            {},
            data_dir=self.data_dir,
            host="127.0.0.1",
            port=port,
            sync_tick_seconds=1,
            log_format="json",
            plugins=plugins,
        )
        registry = get_plugin_manager(only=plugins)

        async def start_hub() -> str:
            if self.options.port is not None and not port_is_free(port):
                raise StepFailed(f"port {port} is taken: choose another with --port")
            await self.runtime.start(settings, registry)
            logs.route_stdlib()
            return f"http://127.0.0.1:{port} · embedded NATS · SQLite"

        async def start_sandboxes() -> str:
            self.boxes = await sandbox_set.start(registry, plugins, first=CHOICES)
            logs.route_stdlib()
            names = list(self.boxes.vendors)
            return f"{len(names)} vendors + the journey engine"

        async def connect() -> str:
            assert self.boxes is not None and self.runtime.hub is not None
            self.api = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30)
            self.scenario = Scenario(
                self.runtime.hub,
                self.api,
                self.boxes,
                step_timeout=self.options.step_timeout,
                fail_step=self.options.fail_step,
            )
            await self.scenario.create_tenant()
            connected = await self.scenario.connect()
            return f"{len(connected)} connections for {STUDIO}"

        setup = [
            ("Start the hub", start_hub),
            ("Start the sandboxes", start_sandboxes),
            ("Connect the tools", connect),
        ]
        setup_ids = [display.add(title) for title, _ in setup]
        story = [(display.add(f"{n}  {step.title}"), step) for n, step in enumerate(STORY, 1)]

        for task, (title, action) in zip(setup_ids, setup, strict=True):
            if not await self.attempt(display, task, title, action):
                self.skip_rest(display, [t for t, _ in story])
                return False
            if title == "Start the sandboxes" and self.boxes is not None:
                by_reason: dict[str, list[str]] = {}
                for vendor, reason in self.boxes.skipped.items():
                    by_reason.setdefault(reason, []).append(self.boxes.label(vendor))
                for reason, labels in by_reason.items():
                    display.note(f"left out: {', '.join(labels)} ({reason})")
            if title == "Connect the tools" and self.scenario is not None:
                for note in self.scenario.notes:
                    display.note(note)

        scenario = self.scenario
        assert scenario is not None
        for index, (task, step) in enumerate(story):
            if missing := scenario.missing(step):
                display.start(task)
                names = ", ".join(scenario.label(v) for v in missing)
                display.finish(task, "skipped", f"skipped: no {names} connection")
                continue
            scenario.on_wait = lambda what, task=task: display.waiting_for(task, what)
            title = f"step {index + 1} ({step.key})"
            if not await self.attempt(display, task, title, lambda s=step: scenario.run_step(s)):
                self.skip_rest(display, [t for t, _ in story[index + 1 :]])
                return False
        return True

    async def attempt(self, display: Display, task: TaskID, title: str, action: Any) -> bool:
        display.start(task)
        try:
            result = await action()
        except asyncio.CancelledError:  # Ctrl-C
            display.finish(task, "failed", "interrupted")
            raise
        except Exception as exc:
            reason = str(exc) if isinstance(exc, StepFailed) else f"{type(exc).__name__}: {exc}"
            display.finish(task, "failed", reason)
            self.failed = f"{title}: {reason}"
            return False
        display.finish(task, "ok", result)
        return True

    @staticmethod
    def skip_rest(display: Display, tasks: list[TaskID]) -> None:
        for task in tasks:
            display.progress.update(task, state="skipped")

    def footer(self, seconds: float) -> None:
        c = self.console
        c.print()
        c.print(f"[bold green]✓ The journey ran end to end in {seconds:.1f}s.[/bold green]")
        url = f"http://127.0.0.1:{self.port}/"
        if self.options.keep_running:
            return
        c.print(
            f"Dashboard: {url} (add [bold]--keep-running[/bold] to keep it all up)",
            soft_wrap=True,
        )

    async def keep_running(self) -> None:
        assert self.scenario is not None and self.scenario.tenant is not None
        base = f"http://127.0.0.1:{self.port}"
        rows = [("dashboard", f"{base}/"), ("API", f"{base}/schema")]
        rows += self.boxes.urls() if self.boxes else []
        width = max(len(name) for name, _ in rows)
        c = self.console
        c.print()
        c.print("[bold]Still running[/bold] (Ctrl-C stops everything):")
        # Keys and URLs each whole on a line (soft_wrap: never wrapped, folded or cropped to
        # the terminal's width), the key alone on its own: a key split over two lines is
        # pasted half, and refused.
        for name, url in rows:
            c.print(f"  {escape(name):<{width}}  {escape(url)}", soft_wrap=True, highlight=False)
        c.print("API key (admin), to sign in to the dashboard and call the API:")
        c.print(escape(self.scenario.tenant.admin_key), soft_wrap=True, highlight=False)
        gateway = next((t for t in self.runtime.tasks if t.get_name() == "gateway"), None)
        waits: list[asyncio.Future[Any]] = [asyncio.get_running_loop().create_future()]
        if gateway is not None:
            waits.append(gateway)
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)

    async def shutdown(self) -> None:
        with self.console.status("stopping the hub and the sandboxes…"):
            if self.api is not None:
                await self.api.aclose()
            await self.runtime.stop()
            if self.boxes is not None:
                await self.boxes.stop()

    def cleanup(self, code: int) -> None:
        if code == 0 and self.owned_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        elif code != 0:
            self.console.print(
                f"[dim]logs: {escape(str(self.data_dir / 'demo.log'))}[/dim]", highlight=False
            )


def main(options: DemoOptions, console: Console, err: Console) -> int:
    """Run the demo; the exit code (0 success, 1 a step failed, 130 interrupted)."""
    demo = Demo(options, console)

    async def main() -> int:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        if task is not None:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signal.SIGTERM, task.cancel)
        return await demo.run()

    try:
        code = asyncio.run(main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        if demo.succeeded:  # --keep-running ends with Ctrl-C
            console.print("stopped: the hub and the sandboxes are down")
            return 0
        err.print("[yellow]interrupted: the hub and the sandboxes were stopped[/yellow]")
        return 130
    if code != 0 and demo.failed:
        err.print(f"[bold red]✗ the demo failed at {escape(demo.failed)}[/bold red]")
    return code
