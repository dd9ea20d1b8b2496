"""Fixtures of the zonegate end-to-end tests: devices, the gateway, always torn down.

Devices: `sim_device` (`zonegate sim`), `py_device` (a pymodbus server), `device` (both, the
test runs twice), `silent_device` (never answers), `dead_upstream` (nothing listening).
`gateway_factory(upstream, **model_options)` starts `zonegate run -c model.yaml` on a run-time
port (see zg.model for the options) and stops it at teardown.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Commands the tests run through a shell (the demo's printed `python3 -c ...` lines) must find
# this interpreter, the e2e virtual environment's (`make venv`), where pymodbus is installed.
os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")

import zg  # noqa: E402


@pytest.fixture(scope="session")
def zonegate_bin() -> Path:
    path = zg.zonegate_bin()
    if not path.exists():
        pytest.fail(f"zonegate binary not found at {path}: run `cargo build -p zonegate` or set ZONEGATE_BIN")
    return path


@pytest.fixture
def sim_device(zonegate_bin: Path, tmp_path: Path) -> Iterator[zg.SimDevice]:
    dev = zg.SimDevice(tmp_path)
    try:
        yield dev
    finally:
        dev.stop()
        print(f"--- sim output:\n{dev.proc.output()}")


@pytest.fixture
def py_device() -> Iterator[zg.PyDevice]:
    dev = zg.PyDevice()
    try:
        yield dev
    finally:
        dev.stop()


@pytest.fixture(params=["sim", "pymodbus"])
def device(request: pytest.FixtureRequest) -> zg.Device:
    """The test runs once against `zonegate sim` and once against a pymodbus server."""
    if request.param == "sim":
        return request.getfixturevalue("sim_device")
    return request.getfixturevalue("py_device")


@pytest.fixture
def silent_device() -> Iterator[zg.SilentDevice]:
    dev = zg.SilentDevice()
    try:
        yield dev
    finally:
        dev.stop()


@pytest.fixture
def dead_upstream() -> str:
    """An upstream address where nothing listens."""
    return f"tcp://{zg.LOOP}:{zg.free_port()}"


@pytest.fixture
def gateway_factory(zonegate_bin: Path, tmp_path: Path) -> Iterator[Callable[..., zg.Gateway]]:
    started: list[zg.Gateway] = []

    def start(upstream: str, **opts: Any) -> zg.Gateway:
        d = tmp_path / f"gw{len(started)}"
        d.mkdir()
        gw = zg.Gateway(d, upstream, **opts)
        started.append(gw)
        return gw

    try:
        yield start
    finally:
        for gw in started:
            status = gw.stop()
            # Captured; pytest shows it only when the test fails.
            print(f"--- {gw.proc.name} (exit {status}) output:\n{gw.proc.output()}")


@pytest.fixture
def gateway(gateway_factory: Callable[..., zg.Gateway], device: zg.Device) -> zg.Gateway:
    """The standard conduit (enforce, deny: exception) in front of `device` (sim and pymodbus)."""
    return gateway_factory(device.upstream)


@pytest.fixture
def sim_gateway(gateway_factory: Callable[..., zg.Gateway], sim_device: zg.SimDevice) -> zg.Gateway:
    """The standard conduit in front of `zonegate sim` only."""
    return gateway_factory(sim_device.upstream)

