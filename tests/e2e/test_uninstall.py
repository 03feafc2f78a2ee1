"""Each connector can be uninstalled (``uv pip uninstall journeyhub-<vendor>``) and the rest
keeps working.

Nothing is uninstalled from the shared ``.venv`` (other tests run beside this one). Each case
sees the venv's site-packages *as the uninstaller leaves it*: a temporary directory of symlinks
to every entry of site-packages except the files the distribution's ``RECORD`` lists, which is
exactly what ``uv pip uninstall`` (and pip) delete: its ``.dist-info`` and its editable ``.pth``
(or its package, for a wheel install). The interpreter starts with ``-I -S`` (no site-packages,
no ``PYTHONPATH``, no user site, not the current directory) and adds the view with
``site.addsitedir``, which reads the remaining ``.pth`` files as ``site`` does for a venv. So
``importlib.metadata`` no longer finds the distribution's entry point and its code cannot be
imported: what an uninstalled plugin is to journeyhub. A control case on the untouched view
proves the mechanism lists every connector.

For speed, one interpreter imports the kernel and its libraries once (files every view shares:
no plugin is imported, which it checks) and forks one child per case; each child swaps in its
case's view before anything reads entry points or imports a plugin. (A real ``uv venv`` +
``uv pip install --offline`` per case was the first choice: the uv cache here lacks some of the
locked wheels, and one venv per plugin is far over the time budget.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import sysconfig
import textwrap
from importlib.metadata import Distribution, distributions
from pathlib import Path

import pytest
from journeyhub.plugins import ENTRY_POINT_GROUP, get_plugin_manager
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

SITE = Path(sysconfig.get_paths()["purelib"]).resolve()
# One child per case, in its view: `journeyhub plugins list` (the CLI's own command), whether
# the removed package still imports, and a hub (embedded nats-server, SQLite, every worker) that
# routes a journey event to a remaining connector while the tenant still has a connection of the
# removed vendor; then one JSON line.
PROBE = textwrap.dedent(
    """
    import asyncio, importlib, json, pathlib, sys, tempfile, time
    from journeyhub.cli import app
    app(["plugins", "list"], standalone_mode=False)
    if sys.argv[1] == "-":
        raise SystemExit(0)
    from journeyhub.hub import Hub
    from journeyhub.logs import configure_logging
    from journeyhub.settings import load_settings
    from journeyhub.workers.runner import run_workers

    removed, target = sys.argv[1], sys.argv[2]
    out = {}
    try:
        importlib.import_module("journeyhub_" + removed)
        out["import"] = "ok"
    except ImportError as exc:
        out["import"] = type(exc).__name__

    async def main():
        configure_logging("json", "warning")
        settings = load_settings({}, data_dir=pathlib.Path(tempfile.mkdtemp()), log_format="json")
        hub = await Hub.start(settings)
        out["loaded"] = sorted(hub.registry.connectors)
        out["errors"] = {e.name: e.reason for e in hub.registry.errors}
        if target == "lightblue":
            from journeyhub_lightblue.sandbox import LightBlueSandbox as Sandbox
            config = lambda sb: {"api_url": sb.api_url}
            effects = lambda sb: len(sb.enquiries)
        else:
            from journeyhub_tave.sandbox import TaveSandbox as Sandbox
            config = lambda sb: {"api_base": sb.api_base}
            effects = lambda sb: len(sb.contacts)
        stop = asyncio.Event()
        workers = asyncio.create_task(run_workers(hub, stop))
        try:
            with Sandbox() as sandbox:
                tenant = await hub.store.tenants.add("uninstalled " + removed)
                common = dict(tenant_id=tenant, direction="outbound", enabled=True,
                              event_types=[], field_mappings=[], actor="test")
                await hub.store.connections.create(vendor=removed, name="configured before",
                                                   config={}, credentials={}, **common)
                await hub.store.connections.create(vendor=target, name="still here",
                                                   config=config(sandbox),
                                                   credentials={"api_key": sandbox.api_key},
                                                   **common)
                event = {"id": "ev_uninstall", "type": "journey_started",
                         "occurred_at": "2026-03-01T12:00:00Z", "journey_instance_id": "ji_1",
                         "client": {"id": "cl_1", "name": "Ada Lovelace",
                                    "email": "ada@example.com"}}
                await hub.bus.publish(hub.bus.subjects.events(tenant), json.dumps(event).encode(),
                                      msg_id=tenant + ":ev_uninstall")
                deadline = time.monotonic() + 30
                rows = []
                while not rows and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                    rows = await hub.store.deliveries.list(tenant, status="delivered")
                await asyncio.sleep(0.2)  # room for a wrong second delivery to show
                out["effects"] = effects(sandbox)
                rows = await hub.store.deliveries.list(tenant, limit=100)
                out["deliveries"] = sorted(r.vendor + ":" + r.status for r in rows)
        finally:
            stop.set()
            await asyncio.wait_for(workers, 15)
            await hub.close()

    asyncio.run(main())
    print(json.dumps(out))
    """
)

# The fork server: argv[1] is the untouched view, stdin one JSON case a line; it prints the
# children's exit codes. Each child writes its stdout and stderr to the case's files.
FORK_SERVER = textwrap.dedent(
    """
    import importlib, json, os, site, sys, traceback
    base = list(sys.path)
    site.addsitedir(sys.argv[1])
    import journeyhub.cli, journeyhub.hub, journeyhub.settings, journeyhub.store.db
    import journeyhub.workers.runner
    early = [m for m in sys.modules if m.startswith("journeyhub_")]
    assert not early, f"plugins imported before the fork: {early}"
    children = {}
    for line in sys.stdin:
        case = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid:
            children[pid] = case["name"]
            continue
        sys.path[:] = base
        site.addsitedir(case["view"])
        importlib.invalidate_caches()
        for stream, path in ((1, case["out"]), (2, case["err"])):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), stream)
        sys.argv = ["-c", case["removed"], case["target"]]
        code = 0
        try:
            exec(case["probe"])
        except SystemExit as exc:
            code = exc.code or 0
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    codes = {}
    for pid, name in children.items():
        codes[name] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    print(json.dumps(codes))
    """
)


def connector_distributions() -> dict[str, tuple[Distribution, list[str]]]:
    """The venv's distributions that declare connectors (the kernel aside): name → (dist,
    the vendor names of its entry points)."""
    found: dict[str, tuple[Distribution, list[str]]] = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        vendors = sorted(ep.name for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP)
        if vendors and name != "journeyhub" and Path(dist.locate_file("")).resolve() == SITE:
            found[name] = (dist, vendors)
    return dict(sorted(found.items()))


CONNECTORS = connector_distributions()


def view_of_site(dest: Path, removed: set[Path]) -> Path:
    """``dest`` mirrors site-packages (symlinks) without the ``removed`` files; directories
    left empty are gone too, as the uninstaller removes them."""

    def mirror(source: Path, target: Path) -> None:
        target.mkdir()
        for entry in source.iterdir():
            if entry in removed:
                continue
            if not any(entry in path.parents for path in removed):
                (target / entry.name).symlink_to(entry)
            elif entry.is_dir():
                mirror(entry, target / entry.name)
        if not any(target.iterdir()):
            target.rmdir()

    dest.parent.mkdir(parents=True, exist_ok=True)
    mirror(SITE, dest)
    return dest


def recorded_files(dist: Distribution) -> set[Path]:
    """What uninstalling ``dist`` deletes from site-packages: the paths its RECORD lists."""
    files = {Path(os.path.normpath(SITE / str(f))) for f in dist.files or []}
    return {path for path in files if SITE in path.parents}


def run_cases(tmp: Path, cases: dict[str, tuple[Path, str, str]]) -> dict[str, tuple[str, str]]:
    """Run PROBE for each case (name → view, removed vendor or "-", target) in the fork
    server; (stdout, stderr) by name."""
    lines = []
    for name, (view, removed, target) in cases.items():
        files = {"out": str(tmp / f"{name}.out"), "err": str(tmp / f"{name}.err")}
        case = {"name": name, "view": str(view), "removed": removed, "target": target}
        lines.append(json.dumps({**case, **files, "probe": PROBE}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYHUB_")}
    env |= {"COLUMNS": "200", "JOURNEYHUB_LOG_FORMAT": "json"}
    full = view_of_site(tmp / "full-site", set())
    server = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", FORK_SERVER, str(full)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
        start_new_session=True,  # the server and its children: one group to end on a timeout
    )
    try:
        stdout, stderr = server.communicate("\n".join(lines) + "\n", timeout=55)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.communicate()
        raise
    assert server.returncode == 0, stderr[-3000:]
    codes = json.loads(stdout.strip().splitlines()[-1])
    outputs = {}
    for name in cases:
        out, err = ((tmp / f"{name}.{kind}").read_text() for kind in ("out", "err"))
        assert codes[name] == 0, f"{name}: {err[-3000:]}"
        outputs[name] = (out, err)
    return outputs


def listed(output: str, vendor: str) -> bool:
    """Whether ``plugins list`` shows ``vendor`` as a loaded connector (first column)."""
    rows = (line.strip("│ ").split("│") for line in output.splitlines() if "│" in line)
    return any(cells[0].strip() == vendor for cells in rows)


def dependents(name: str) -> set[str]:
    """Connector distributions that require ``name``: they go down with it."""
    return {
        other
        for other, (dist, _) in CONNECTORS.items()
        if any(
            canonicalize_name(Requirement(r).name) == canonicalize_name(name)
            for r in dist.requires or []
        )
    }


@pytest.mark.plugins
@pytest.mark.timeout(60)
def test_each_connector_can_be_uninstalled_and_the_rest_keeps_working(tmp_path: Path) -> None:
    assert {"journeyhub-stripe", "journeyhub-tave", "journeyhub-lightblue"} <= set(CONNECTORS)
    registry = get_plugin_manager()  # everything installed: what loads, what fails to load
    loaded, failing = set(registry.connectors), {e.name for e in registry.errors}
    cases = {"control": (view_of_site(tmp_path / "control", set()), "-", "-")}
    down: dict[str, set[str]] = {}  # vendors whose distributions need the removed one
    for name, (dist, vendors) in CONNECTORS.items():
        down[name] = {v for d in dependents(name) for v in CONNECTORS[d][1]}
        target = "tave" if "lightblue" in {*vendors, *down[name]} else "lightblue"
        cases[name] = (view_of_site(tmp_path / name, recorded_files(dist)), vendors[0], target)

    outputs = run_cases(tmp_path, cases)

    # the control: nothing removed, the same mechanism lists every connector
    assert all(listed(outputs["control"][0], vendor) for vendor in loaded), outputs["control"]
    for name, (_, vendors) in CONNECTORS.items():
        table, _, last = outputs[name][0].strip().rpartition("\n")
        seen, target = json.loads(last), cases[name][2]
        # `journeyhub plugins list` no longer lists it, and its code is gone
        assert not any(listed(table, v) for v in vendors), table
        assert seen["import"] == "ModuleNotFoundError", (name, seen)
        # every other connector that loaded still loads (one that needs it is reported), and
        # a hub routes an event to one of them, though the tenant still has a connection of
        # the removed vendor: one delivery, one effect at the vendor's sandbox
        assert set(seen["loaded"]) == loaded - set(vendors) - down[name], (name, seen)
        assert set(seen["errors"]) <= failing | down[name], (name, seen["errors"])
        assert seen["effects"] == 1, (name, seen)
        assert seen["deliveries"] == [f"{target}:delivered"], (name, seen)
