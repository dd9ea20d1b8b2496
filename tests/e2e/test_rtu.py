"""Modbus RTU (issue 11) with real peers and no hardware.

- The line: a socat pty pair (`socat pty,raw,echo=0,link=A pty,raw,echo=0,link=B`); the gateway
  opens A (`upstream: rtu://A?baud=19200&parity=none`), the device B. A pty refuses even parity
  (EINVAL from tcsetattr in pyserial), so every test uses parity=none.
- The device: pymodbus's serial server (RTU framer) with two slaves (units 1 and 2, different
  values), or `zonegate sim --rtu B --units 1,2`; for `rtu+tcp://`, pymodbus's TCP server with
  the RTU framer.
- The masters: pymodbus TCP clients (historian, engineering workstation) through the gateway;
  `mbpoll -m rtu` straight on a pty to check the simulator's RTU framing against a tool we did
  not write.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

import zg

UNIT_BASE = {1: 1000, 2: 3000}  # holding[i] = base + i on each slave


def rtu_rules() -> list[dict[str, Any]]:
    return [
        {
            "id": "historian-read",
            "from": ["HIST-01"],
            "unit_ids": [1, 2],
            "functions": ["read_holding_registers"],
            "holding": "0-199",
        },
        {
            "id": "ews-setpoints",
            "from": ["EWS-01"],
            "unit_ids": [1],
            "functions": ["write_single_register"],
            "holding": "100-109",
            "values": {"min": 180, "max": 240},
            "justification": "setpoint changes by the HVAC engineer",
        },
        {
            "id": "ews-read",
            "from": ["EWS-01"],
            "unit_ids": [1, 2],
            "functions": ["read_holding_registers"],
            "holding": "0-199",
        },
        {
            "id": "local-tools",
            "from": ["127.0.0.1/32"],
            "unit_ids": [1, 2],
            "functions": [3],
            "holding": "0-199",
        },
    ]


class PtyPair:
    """Two linked ptys made by socat; `a` for the gateway, `b` for the device."""

    def __init__(self, tmp: Path, name: str = "tty"):
        self.a = tmp / f"{name}-a"
        self.b = tmp / f"{name}-b"
        self.proc = subprocess.Popen(
            ["socat", f"pty,raw,echo=0,link={self.a}", f"pty,raw,echo=0,link={self.b}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        zg.wait_until(lambda: self.a.exists() and self.b.exists(), 5, "socat's ptys")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


class PyRtuDevice:
    """pymodbus 3.16 with the RTU framer: on a serial port, or on TCP (`rtu+tcp://`)."""

    def __init__(
        self, *, serial_port: Path | None = None, tcp_port: int | None = None,
        identity: dict[str, str] | None = None,
    ):
        """`identity`: what it answers to FC 43/14 (pymodbus ModbusDeviceIdentification keys)."""
        from pymodbus import FramerType, ModbusDeviceIdentification
        from pymodbus.server import ModbusSerialServer, ModbusTcpServer
        from pymodbus.simulator import DataType, SimData
        from pymodbus.simulator import SimDevice as PySimDevice

        def slave(unit: int) -> Any:
            base = UNIT_BASE[unit]
            co = [SimData(0, count=200, values=False, datatype=DataType.BITS)]
            di = [SimData(0, count=200, values=False, datatype=DataType.BITS)]
            hr = [SimData(0, values=[base + i for i in range(200)], datatype=DataType.REGISTERS)]
            ir = [SimData(0, values=[0] * 200, datatype=DataType.REGISTERS)]
            return PySimDevice(unit, simdata=(co, di, hr, ir))

        self.loop = asyncio.new_event_loop()
        self.server: Any = None
        self.error: Exception | None = None
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)

            async def main() -> None:
                devices = [slave(1), slave(2)]
                if serial_port is not None:
                    self.server = ModbusSerialServer(
                        devices, framer=FramerType.RTU, port=str(serial_port),
                        baudrate=19200, parity="N",
                    )
                else:
                    ident = None if identity is None else ModbusDeviceIdentification(info_name=identity)
                    self.server = ModbusTcpServer(
                        devices, framer=FramerType.RTU, address=(zg.LOOP, tcp_port), identity=ident,
                    )
                started.set()
                await self.server.serve_forever()

            try:
                self.loop.run_until_complete(main())
            except Exception as e:  # noqa: BLE001 - reported to the test
                self.error = e
                started.set()

        self.thread = threading.Thread(target=run, name="pymodbus-rtu", daemon=True)
        self.thread.start()
        started.wait(10)
        if tcp_port is not None:
            zg.wait_until(lambda: self.error or zg.port_open(zg.LOOP, tcp_port), 10, "pymodbus RTU/TCP")
        if self.error:
            raise RuntimeError(f"pymodbus did not start: {self.error}")

    def stop(self) -> None:
        if self.server is not None and self.loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(self.server.shutdown(), self.loop).result(5)
            except Exception:  # noqa: BLE001 - teardown is best effort
                pass
        self.thread.join(5)


@pytest.fixture
def line(tmp_path: Path) -> Iterator[PtyPair]:
    pair = PtyPair(tmp_path)
    try:
        yield pair
    finally:
        pair.stop()


def rtu_url(path: Path) -> str:
    return f"rtu://{path}?baud=19200&parity=none"


def check_reads_and_writes(gw: zg.Gateway) -> None:
    """Allowed and denied reads and writes on units 1 and 2, answers from the right slave."""
    hist = zg.pymodbus_client(gw.port, src=zg.HIST)
    ews = zg.pymodbus_client(gw.port, src=zg.EWS)
    try:
        for unit, base in UNIT_BASE.items():
            rr = hist.read_holding_registers(100, count=3, device_id=unit)
            assert not rr.isError(), rr
            assert rr.registers == [base + 100, base + 101, base + 102], unit
        # The historian may not write anything: 0x01 from the gateway, never on the bus.
        rr = hist.write_register(100, 200, device_id=1)
        assert rr.isError() and rr.exception_code == zg.ILLEGAL_FUNCTION
        # EWS: unit 1 in range -> written; unit 2 -> denied; out of range -> denied.
        rr = ews.write_register(101, 222, device_id=1)
        assert not rr.isError(), rr
        assert ews.read_holding_registers(101, count=1, device_id=1).registers == [222]
        rr = ews.write_register(101, 222, device_id=2)
        assert rr.isError() and rr.exception_code == zg.ILLEGAL_FUNCTION
        assert ews.read_holding_registers(101, count=1, device_id=2).registers == [3101]
        rr = ews.write_register(101, 999, device_id=1)
        assert rr.isError() and rr.exception_code == zg.ILLEGAL_VALUE
    finally:
        hist.close()
        ews.close()


def test_serial_upstream_with_pymodbus_serial_slaves(
    gateway_factory: Callable[..., zg.Gateway], line: PtyPair
) -> None:
    device = PyRtuDevice(serial_port=line.b)
    try:
        gw = gateway_factory(rtu_url(line.a), rules=rtu_rules(), request_timeout="1s")
        check_reads_and_writes(gw)
        # Every request is recorded with the bus as its destination.
        events = gw.wait_request_events(8)
        assert all(e.get("dst", "").startswith("rtu://") for e in events), events[:2]
    finally:
        device.stop()


def test_rtu_over_tcp_with_pymodbus_rtu_framer(gateway_factory: Callable[..., zg.Gateway]) -> None:
    port = zg.free_port()
    device = PyRtuDevice(tcp_port=port)
    try:
        gw = gateway_factory(f"rtu+tcp://{zg.LOOP}:{port}", rules=rtu_rules(), request_timeout="1s")
        check_reads_and_writes(gw)
    finally:
        device.stop()


def test_sixteen_tcp_clients_on_one_bus_every_answer_right(
    gateway_factory: Callable[..., zg.Gateway], line: PtyPair
) -> None:
    device = PyRtuDevice(serial_port=line.b)
    try:
        gw = gateway_factory(rtu_url(line.a), rules=rtu_rules(), request_timeout="1s")
        results: dict[int, int] = {}
        errors: list[str] = []

        def client(n: int) -> None:
            c = zg.pymodbus_client(gw.port, src=zg.HIST, timeout=10)
            right = 0
            try:
                for i in range(10):
                    unit = 1 + (n + i) % 2
                    rr = c.read_holding_registers(n, count=1, device_id=unit)
                    if rr.isError():
                        errors.append(f"client {n}: {rr}")
                    elif rr.registers == [UNIT_BASE[unit] + n]:
                        right += 1
            finally:
                c.close()
            results[n] = right

        threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        assert not errors, errors[:3]
        assert results == {n: 10 for n in range(16)}, results
    finally:
        device.stop()


def test_zonegate_sim_rtu_answers_mbpoll_and_serves_the_gateway(
    gateway_factory: Callable[..., zg.Gateway], tmp_path: Path, line: PtyPair
) -> None:
    # mbpoll (a master we did not write) straight on the pty: the simulator's RTU framing.
    direct = PtyPair(tmp_path, "direct")
    sim = zg.Proc(
        [str(zg.zonegate_bin()), "sim", "--rtu", str(direct.b), "--units", "1,2", "--baud", "19200"],
        "sim-rtu-direct", tmp_path,
    )
    try:
        sim.wait_line(r"^serving rtu on ", timeout=10)
        out = subprocess.run(
            ["mbpoll", "-m", "rtu", "-b", "19200", "-P", "none", "-a", "2", "-r", "101",
             "-c", "4", "-t", "4", "-1", "-o", "2", str(direct.a)],
            capture_output=True, text=True, timeout=20,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        # The HVAC setpoints 200, 180, 220, 210 at holding 100-103 (mbpoll counts from 1).
        for ref, value in zip(range(101, 105), ("200", "180", "220", "210")):
            assert re.search(rf"^\[{ref}\]:\s+{value}$", out.stdout, re.M), out.stdout
        out = subprocess.run(
            ["mbpoll", "-m", "rtu", "-b", "19200", "-P", "none", "-a", "3", "-r", "1",
             "-c", "1", "-t", "4", "-1", "-o", "0.5", str(direct.a)],
            capture_output=True, text=True, timeout=20,
        )
        assert out.returncode != 0, "unit 3 is no slave of the sim: no answer"
    finally:
        sim.stop()
        direct.stop()

    # The same simulator behind the gateway, read with mbpoll over TCP (rule local-tools).
    sim = zg.Proc(
        [str(zg.zonegate_bin()), "sim", "--rtu", str(line.b), "--units", "1,2"],
        "sim-rtu", tmp_path,
    )
    try:
        sim.wait_line(r"^serving rtu on ", timeout=10)
        gw = gateway_factory(rtu_url(line.a), rules=rtu_rules(), request_timeout="1s")
        out = subprocess.run(
            ["mbpoll", "-m", "tcp", "-p", str(gw.port), "-a", "1", "-r", "101", "-c", "2",
             "-t", "4", "-1", "-o", "2", zg.LOOP],
            capture_output=True, text=True, timeout=20,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert re.search(r"^\[101\]:\s+200$", out.stdout, re.M), out.stdout
        assert re.search(r"^\[102\]:\s+180$", out.stdout, re.M), out.stdout
        # Unit 3: no rule names it; the gateway answers 0x01 and the bus never sees it.
        hist = zg.pymodbus_client(gw.port, src=zg.HIST)
        try:
            rr = hist.read_holding_registers(0, count=1, device_id=3)
            assert rr.isError() and rr.exception_code == zg.ILLEGAL_FUNCTION
        finally:
            hist.close()
    finally:
        sim.stop()


def test_model_with_a_bus_passes_check(tmp_path: Path, line: PtyPair) -> None:
    gw_model = zg.model(
        f"{zg.LOOP}:{zg.free_port()}", rtu_url(line.a), tmp_path / "events.jsonl",
        rules=rtu_rules(),
        extra_gateway={"serial": {"retries": 1, "turnaround": "100ms", "queue_timeout": "3s"}},
    )
    path = tmp_path / "model.yaml"
    path.write_text(zg.to_yaml(gw_model) + "\n", encoding="utf-8")
    out = subprocess.run(
        [str(zg.zonegate_bin()), "check", str(path)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ZG-C031" not in out.stdout


# ---------------------------------------------------------------------------------------------
# The serial listener: zonegate as a slave on a bus segment (issue 11, point 5)


def serial_listener_model(tmp: Path, line: Path, upstream: str) -> Path:
    """Z2-OPS lists the master's line under `serial:`; its rules name Z2-OPS in `from:`."""
    m = zg.model("127.0.0.1:0", upstream, tmp / "events.jsonl", request_timeout="1s", rules=[
        {"id": "line-read", "from": ["Z2-OPS"], "unit_ids": [1, 2],
         "functions": ["read_holding_registers"], "holding": "0-199"},
        {"id": "line-setpoints", "from": ["Z2-OPS"], "unit_ids": [1, 0],
         "functions": ["write_single_register"], "holding": "100-109",
         "values": {"min": 180, "max": 240}, "justification": "setpoints from the panel"},
    ])
    m["conduits"][0]["gateway"]["listen"] = f"rtu://{line}?baud=19200&parity=none"
    m["zones"][1]["serial"] = [str(line)]
    path = tmp / "model.yaml"
    path.write_text(zg.to_yaml(m) + "\n", encoding="utf-8")
    return path


def test_serial_listener_forwards_what_the_rules_allow(
    tmp_path: Path, line: PtyPair, sim_device: zg.SimDevice
) -> None:
    from pymodbus.client import ModbusSerialClient

    path = serial_listener_model(tmp_path, line.b, sim_device.upstream)
    out = subprocess.run([str(zg.zonegate_bin()), "check", str(path)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    gw = zg.Proc([str(zg.zonegate_bin()), "run", "-c", str(path)], "gateway-serial", tmp_path)
    try:
        gw.wait_line(rf"^listening on rtu://{re.escape(str(line.b))}", timeout=15)
        # pymodbus's serial client as the master on the other end of the line.
        client = ModbusSerialClient(str(line.a), baudrate=19200, parity="N", timeout=2, retries=0)
        assert client.connect()
        try:
            rr = client.read_holding_registers(100, count=2, device_id=1)
            assert not rr.isError(), rr
            assert rr.registers == [200, 180]
            rr = client.write_register(101, 190, device_id=1)
            assert not rr.isError(), rr
            assert sim_device.read_holding(101, 1) == [190]
            # Denied: out of bounds (0x03), a function no rule allows (0x01): RTU exception
            # responses with a valid CRC (pymodbus checks it).
            rr = client.write_register(101, 999, device_id=1)
            assert rr.isError() and rr.exception_code == zg.ILLEGAL_VALUE
            rr = client.read_input_registers(0, count=1, device_id=1)
            assert rr.isError() and rr.exception_code == zg.ILLEGAL_FUNCTION
            assert sim_device.read_holding(101, 1) == [190], "a denied write went through"
        finally:
            client.close()
        # mbpoll as the master: a read allowed, a write denied (0x01: unit 2 may not be written).
        out = subprocess.run(
            ["mbpoll", "-m", "rtu", "-b", "19200", "-P", "none", "-a", "2", "-r", "101", "-c", "2",
             "-t", "4", "-1", "-o", "2", str(line.a)],
            capture_output=True, text=True, timeout=20,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert re.search(r"^\[101\]:\s+200$", out.stdout, re.M), out.stdout
        out = subprocess.run(
            ["mbpoll", "-m", "rtu", "-b", "19200", "-P", "none", "-a", "2", "-r", "101",
             "-t", "4", "-1", "-o", "2", str(line.a), "200"],
            capture_output=True, text=True, timeout=20,
        )
        assert out.returncode != 0, out.stdout
        assert "Illegal function" in out.stdout + out.stderr, out.stdout + out.stderr
        # A malformed frame (bad CRC) gets no answer, and the line works after it.
        import serial

        raw = serial.Serial(str(line.a), 19200, timeout=0.5)
        try:
            raw.write(bytes([1, 3, 0, 100, 0, 1, 0x00, 0x00]))
            assert raw.read(16) == b"", "a frame with a bad CRC was answered"
        finally:
            raw.close()
        client = ModbusSerialClient(str(line.a), baudrate=19200, parity="N", timeout=2, retries=0)
        assert client.connect()
        try:
            rr = client.read_holding_registers(100, count=1, device_id=1)
            assert not rr.isError() and rr.registers == [200], rr
        finally:
            client.close()
        events = [json.loads(l) for l in (tmp_path / "events.jsonl").read_text().splitlines() if l.strip()]
        reqs = [e for e in events if e.get("kind", "request") == "request"]
        assert reqs and all(e.get("src") == f"rtu://{line.b}" for e in reqs), reqs[:3]
    finally:
        gw.stop()


def crc_frame(body: bytes) -> bytes:
    crc = 0xFFFF
    for b in body:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return body + bytes([crc & 0xFF, crc >> 8])


def test_serial_listener_to_a_serial_bus_is_a_bump_in_the_wire(tmp_path: Path, line: PtyPair) -> None:
    """Master segment -> zonegate -> device segment, both RTU; a broadcast is forwarded, not answered."""
    from pymodbus.client import ModbusSerialClient
    import serial

    bus = PtyPair(tmp_path, "bus")
    sim = zg.Proc([str(zg.zonegate_bin()), "sim", "--rtu", str(bus.b), "--units", "1,2"], "sim-bus", tmp_path)
    gw = None
    try:
        sim.wait_line(r"^serving rtu on ", timeout=10)
        path = serial_listener_model(tmp_path, line.b, rtu_url(bus.a))
        gw = zg.Proc([str(zg.zonegate_bin()), "run", "-c", str(path)], "gateway-bump", tmp_path)
        gw.wait_line(r"^listening on rtu://", timeout=15)
        client = ModbusSerialClient(str(line.a), baudrate=19200, parity="N", timeout=2, retries=0)
        assert client.connect()
        try:
            rr = client.read_holding_registers(102, count=2, device_id=2)
            assert not rr.isError() and rr.registers == [220, 210], rr
        finally:
            client.close()
        raw = serial.Serial(str(line.a), 19200, timeout=0.5)
        try:
            # Broadcast FC 6 holding 103 := 230 (allowed for unit 0): no answer on the line.
            raw.write(crc_frame(bytes([0, 6, 0, 103, 0, 230])))
            assert raw.read(16) == b"", "a broadcast was answered"
            # A write no rule allows (unit 2): an exception frame with a valid CRC.
            raw.write(crc_frame(bytes([2, 6, 0, 103, 0, 200])))
            got = raw.read(5)
            assert got == crc_frame(bytes([2, 0x86, zg.ILLEGAL_FUNCTION])), got.hex()
        finally:
            raw.close()
        client = ModbusSerialClient(str(line.a), baudrate=19200, parity="N", timeout=2, retries=0)
        assert client.connect()
        try:
            got = None
            for _ in range(20):
                rr = client.read_holding_registers(103, count=1, device_id=1)
                got = None if rr.isError() else rr.registers
                if got == [230]:
                    break
                time.sleep(0.05)
            assert got == [230], f"the broadcast did not reach the bus: {got}"
        finally:
            client.close()
    finally:
        if gw is not None:
            gw.stop()
        sim.stop()
        bus.stop()
