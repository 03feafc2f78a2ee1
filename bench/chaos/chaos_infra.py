"""Real infrastructure for the chaos and scale-out runs, on loopback only, each part ended by
its own pid (also on failure):

- ``NatsCluster``: 1 or 3 nats-server processes from the wheel's binary
  (``journeyhub.bus.embedded.nats_server_binary``), JetStream on disk, routes between them on
  free loopback ports; a node can be SIGKILLed and started again on the same ports and store.
- ``ScratchPostgres``: a throw-away PostgreSQL cluster (``initdb`` / ``pg_ctl`` from
  /usr/lib/postgresql/*/bin) on a free loopback port with trust auth, run as the ``postgres``
  system user when we are root (initdb refuses root); can be restarted.
- ``scratch_database``: a fresh database on an existing server (created, then dropped).
- ``JhProcess``: a ``journeyhub gateway`` or ``journeyhub worker`` child process.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
from journeyhub.bus.embedded import free_port, nats_server_binary

REPO = Path(__file__).resolve().parents[2]

# Everything started here, so that an interrupted run still ends it at exit (by its pid).
_STARTED: list[object] = []


def _end_leftovers() -> None:
    for part in reversed(_STARTED):
        with contextlib.suppress(Exception):
            part.stop()  # type: ignore[attr-defined]


atexit.register(_end_leftovers)


def wait_port(port: int, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process {process.pid} exited before listening on {port}")
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.2),
        ):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listened on 127.0.0.1:{port} within {timeout}s")


def end_process(process: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL, by pid."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


# --- NATS --------------------------------------------------------------------------------------


class NatsNode:
    def __init__(self, name: str, root: Path, cluster_name: str) -> None:
        self.name = name
        self.store_dir = root / name
        self.port = free_port()
        self.cluster_port = free_port()
        self.cluster_name = cluster_name
        self.routes: list[str] = []
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        _STARTED.append(self)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def route(self) -> str:
        return f"nats://127.0.0.1:{self.cluster_port}"

    def start(self, timeout: float = 20.0) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        args = [
            nats_server_binary(),
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-js",
            "-sd",
            str(self.store_dir),
            "-n",
            self.name,
            "-l",
            str(self.store_dir / f"server-{self.starts}.log"),
        ]
        if self.routes:
            args += [
                "--cluster_name",
                self.cluster_name,
                "-cluster",
                self.route,
                "-routes",
                ",".join(self.routes),
            ]
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.starts += 1
        wait_port(self.port, timeout, self.process)

    def kill(self) -> None:
        """SIGKILL: no goodbye to the cluster, as a crash or a pulled cable."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        end_process(self.process)
        self.process = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class NatsCluster:
    """``size`` nats-server nodes (1: a single server; 3: a JetStream cluster)."""

    def __init__(self, root: Path, size: int = 3, name: str = "jhchaos") -> None:
        self.root = Path(root)
        self.nodes = [NatsNode(f"n{i + 1}", self.root, name) for i in range(size)]
        if size > 1:
            for node in self.nodes:
                node.routes = [n.route for n in self.nodes if n is not node]

    @property
    def url(self) -> str:
        """Every node's client URL, comma-separated: JOURNEYHUB_NATS_URL for a cluster."""
        return ",".join(n.url for n in self.nodes)

    @property
    def replicas(self) -> int:
        return 3 if len(self.nodes) >= 3 else 1

    def start(self, timeout: float = 60.0) -> NatsCluster:
        try:
            for node in self.nodes:
                node.start()
            self.wait_jetstream(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_jetstream(self, timeout: float = 60.0) -> None:
        """Until JetStream answers through the cluster (a meta leader is elected)."""
        import asyncio

        import nats

        async def probe() -> bool:
            nc = await nats.connect(
                self.url.split(","),
                connect_timeout=2,
                max_reconnect_attempts=1,
                allow_reconnect=False,
            )
            try:
                await nc.jetstream(timeout=2).account_info()
                return True
            finally:
                await nc.close()

        deadline = time.monotonic() + timeout
        last: BaseException | None = None
        while time.monotonic() < deadline:
            try:
                if asyncio.run(probe()):
                    return
            except Exception as exc:
                last = exc
            time.sleep(0.5)
        raise RuntimeError(f"JetStream not ready within {timeout}s: {last!r}")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


# --- PostgreSQL -------------------------------------------------------------------------------


def postgres_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin that has initdb and pg_ctl."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    for initdb in reversed(found):
        bin_dir = Path(initdb).parent
        if (bin_dir / "pg_ctl").exists():
            return bin_dir
    return None


class ScratchPostgres:
    """A PostgreSQL cluster of our own on 127.0.0.1:<free port>, trust auth, deleted at stop."""

    def __init__(self, max_connections: int = 400) -> None:
        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            raise RuntimeError("no initdb/pg_ctl under /usr/lib/postgresql/*/bin")
        self.bin = bin_dir
        self.port = free_port()
        self.max_connections = max_connections
        self.root = Path(tempfile.mkdtemp(prefix="jh-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.as_root = os.geteuid() == 0
        self.restarts = 0
        _STARTED.append(self)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/journeyhub"

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if self.as_root:  # initdb and postgres refuse to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        # Output to a file, never a pipe: the server that pg_ctl starts would inherit the pipe
        # and keep it open, and we would wait for its end forever.
        with tempfile.TemporaryFile("w+") as out:
            done = subprocess.run(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                timeout=timeout,
                cwd=self.root,
            )
            if done.returncode != 0:
                out.seek(0)
                raise RuntimeError(f"{Path(args[0]).name} failed: {out.read()[-1000:]}")
        return done

    def start(self) -> ScratchPostgres:
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        try:
            self._run(
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            )
            options = (
                f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
                f"-c max_connections={self.max_connections} -c fsync=off "
                "-c shared_buffers=128MB"
            )
            self._run(
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            )
            self._run(
                str(self.bin / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-c",
                "CREATE DATABASE journeyhub",
            )
        except BaseException:
            self.stop()
            raise
        return self

    def restart(self) -> float:
        """``pg_ctl restart -m fast``: every connection is cut; returns the seconds it took."""
        started = time.monotonic()
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-m",
            "fast",
            "-l",
            str(self.log),
            "-w",
            "-t",
            "60",
            "restart",
        )
        self.restarts += 1
        return time.monotonic() - started

    def _postmaster_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.data / "postmaster.pid").read_text().splitlines()[0])
        return None

    def stop(self) -> None:
        if self.data.exists():
            try:
                self._run(
                    str(self.bin / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-m",
                    "immediate",
                    "-w",
                    "-t",
                    "30",
                    "stop",
                    timeout=60,
                )
            except (subprocess.SubprocessError, OSError, RuntimeError):
                pid = self._postmaster_pid()  # the server we started: end it by its pid
                if pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


def postgres_reachable(url: str, timeout: float = 3.0) -> str | None:
    """None when ``url`` (a postgresql+psycopg URL) answers, else the reason."""
    import psycopg

    plain = url.replace("postgresql+psycopg://", "postgresql://")
    try:
        psycopg.connect(plain, connect_timeout=timeout).close()
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).strip()[:200]}"
    return None


@contextlib.contextmanager
def scratch_database(server_url: str, prefix: str = "jh_scratch") -> Iterator[str]:
    """A new database on the server of ``server_url`` (any database on it), dropped after."""
    import psycopg

    base, _, _ = server_url.rpartition("/")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = base.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute("SET statement_timeout = '60s'")
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- journeyhub processes -------------------------------------------------------------------------


class JhProcess:
    """``journeyhub gateway`` (kind="gateway") or ``journeyhub worker`` in a child process."""

    def __init__(self, kind: str, env: dict[str, str], log_dir: Path, index: int = 0) -> None:
        self.kind = kind
        self.env = dict(env)
        self.log_dir = log_dir
        self.index = index
        self.port = free_port() if kind == "gateway" else None
        if self.port is not None:
            self.env["JOURNEYHUB_PORT"] = str(self.port)
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log_path: Path | None = None
        _STARTED.append(self)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self, timeout: float = 60.0) -> JhProcess:
        self.log_path = self.log_dir / f"{self.kind}-{self.index}-{self.starts}.log"
        log = open(self.log_path, "wb")  # noqa: SIM115 - the child writes it
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "journeyhub", self.kind],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO,
                start_new_session=True,
            )
        finally:
            log.close()
        self.starts += 1
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        assert self.process is not None and self.log_path is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{self.kind} exited at start:\n{tail}")
            if self.kind == "worker":
                if "workers_started" in self.log_path.read_text(errors="replace"):
                    return
            else:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                        return
            time.sleep(0.1)
        raise RuntimeError(f"{self.kind} not ready within {timeout}s")

    def kill(self) -> None:
        """SIGKILL, by pid: no shutdown at all."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        end_process(self.process, timeout=20)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        texts = []
        for path in sorted(self.log_dir.glob(f"{self.kind}-{self.index}-*.log")):
            texts.append(path.read_text(errors="replace"))
        return "\n".join(texts)
