"""Helpers for the zonegate end-to-end tests (read this first).

Everything here runs on loopback with ports chosen at run time, and every wait is bounded.

- `Proc`: a child process (the zonegate binary) whose combined stdout/stderr is pumped into a
  list of lines by a thread, so we can wait for a line without ever blocking on a pipe.
- `PyDevice`: a pymodbus TCP server (a Modbus device nobody here wrote) running in a thread with its
  own event loop; `requests` records every request PDU it received, so a test can prove that
  something was NOT forwarded.
- `SilentDevice`: accepts connections, reads, never answers (the gateway must answer 0x0B).
- `Raw`: a raw Modbus/TCP socket client bound to a chosen 127.0.0.x source address, for malformed
  frames, pipelining and exact exception codes.
- `model()` / `to_yaml()`: the zone/conduit model file the gateway runs with (docs/DESIGN.md format).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[2]
LOOP = "127.0.0.1"

# Client source addresses (Linux routes all of 127.0.0.0/8 to lo, so a client can bind to any).
HIST = "127.0.0.2"  # historian: may read (asset HIST-01)
EWS = "127.0.0.3"  # engineering workstation: may write setpoints 100-109 within 180..240 (EWS-01)
RATE = "127.0.0.4"  # a poller limited to 2 reads/s
ROGUE = "127.0.0.9"  # no rule at all
LOCAL = "127.0.0.1"  # mbpoll cannot bind a source address: rule "local-tools"

CONDUIT = "C1-OPS-CTRL"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

# Exception codes.
ILLEGAL_FUNCTION = 0x01
ILLEGAL_ADDRESS = 0x02
ILLEGAL_VALUE = 0x03
BUSY = 0x06
PATH_UNAVAILABLE = 0x0A
TARGET_FAILED = 0x0B


def zonegate_bin() -> Path:
    """The zonegate binary under test: $ZONEGATE_BIN or target/debug/zonegate."""
    return Path(os.environ.get("ZONEGATE_BIN", str(REPO / "target" / "debug" / "zonegate")))


def free_port(host: str = LOOP) -> int:
    """A port that was free a moment ago (bind port 0, read it, close). Callers retry on collision."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until(pred: Callable[[], Any], timeout: float, what: str, step: float = 0.05) -> Any:
    """Polls `pred` until it returns something truthy; raises TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class Proc:
    """A child process with its output collected line by line (bounded waits, always killable)."""

    def __init__(self, args: list[str], name: str, logdir: Path, env: dict[str, str] | None = None):
        self.args = args
        self.name = name
        self.log_path = logdir / f"{name}.log"
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        full_env = dict(os.environ)
        full_env.setdefault("NO_COLOR", "1")
        full_env.setdefault("RUST_BACKTRACE", "1")
        if env:
            full_env.update(env)
        self.popen = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            bufsize=1,
            env=full_env,
            start_new_session=True,
        )
        self._thread = threading.Thread(target=self._pump, name=f"pump-{name}", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self.popen.stdout is not None
        with open(self.log_path, "w", encoding="utf-8") as log:
            for line in self.popen.stdout:
                log.write(line)
                log.flush()
                with self._cond:
                    self.lines.append(ANSI.sub("", line.rstrip("\n")))
                    self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def output(self, last: int = 200) -> str:
        with self._cond:
            return "\n".join(self.lines[-last:])

    def wait_line(self, regex: str, timeout: float, start: int = 0) -> re.Match[str]:
        """Waits for an output line (from index `start`) matching `regex`."""
        pattern = re.compile(regex)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[start:]:
                    m = pattern.search(line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    raise TimeoutError(
                        f"{self.name}: no line matching {regex!r} within {timeout}s "
                        f"(exit={self.popen.poll()}); output:\n{self.output()}"
                    )
                self._cond.wait(min(left, 0.2))

    def line_count(self) -> int:
        with self._cond:
            return len(self.lines)

    def running(self) -> bool:
        return self.popen.poll() is None

    def send_signal(self, sig: int) -> None:
        if self.running():
            self.popen.send_signal(sig)

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit status."""
        if self.running():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                try:
                    self.popen.wait(5)
                except subprocess.TimeoutExpired:
                    pass
        self._thread.join(2)
        return self.popen.poll()


# ---------------------------------------------------------------------------------------------
# Devices


class Device:
    """A Modbus TCP device reachable at host:port, read directly (not through the gateway)."""

    kind = "device"

    def __init__(self, host: str, port: int):
        self.host = host
        self.port = port

    @property
    def upstream(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    def read_holding(self, address: int, count: int, unit: int = 1) -> list[int]:
        with Raw(self.port, host=self.host) as raw:
            pdu = raw.request(unit, struct.pack(">BHH", 3, address, count))
        assert pdu[0] == 3, f"direct read of the device failed: {pdu.hex()}"
        return list(struct.unpack(f">{count}H", pdu[2 : 2 + 2 * count]))

    def write_holding(self, address: int, values: list[int], unit: int = 1) -> None:
        with Raw(self.port, host=self.host) as raw:
            pdu = raw.request(unit, write_multiple_pdu(address, values))
        assert pdu[0] == 16, f"direct write to the device failed: {pdu.hex()}"

    def read_coils(self, address: int, count: int, unit: int = 1) -> list[bool]:
        with Raw(self.port, host=self.host) as raw:
            pdu = raw.request(unit, struct.pack(">BHH", 1, address, count))
        assert pdu[0] == 1, f"direct coil read of the device failed: {pdu.hex()}"
        bits = int.from_bytes(pdu[2 : 2 + pdu[1]], "little")
        return [bool(bits >> i & 1) for i in range(count)]

    def stop(self) -> None:
        pass


class SimDevice(Device):
    """`zonegate sim --listen 127.0.0.1:0`: prints `listening on ADDR`."""

    kind = "sim"

    def __init__(self, logdir: Path):
        self.proc = Proc([str(zonegate_bin()), "sim", "--listen", f"{LOOP}:0"], "sim", logdir)
        try:
            m = self.proc.wait_line(r"listening on \[?([0-9.]+)\]?:([1-9][0-9]*)", timeout=15)
        except TimeoutError:
            self.proc.stop()
            raise
        super().__init__(m.group(1), int(m.group(2)))

    def stop(self) -> None:
        self.proc.stop()


class PyDevice(Device):
    """A pymodbus 3.x TCP server: holding[i] = 1000 + i, input[i] = 2000 + i, coils false."""

    kind = "pymodbus"

    def __init__(
        self,
        size: int = 400,
        port: int | None = None,
        trace_packet: Callable[[bool, bytes], bytes] | None = None,
        identity: dict[str, str] | None = None,
    ):
        """`trace_packet(sending, adu)` may edit every ADU the server sends or receives;
        `identity` (pymodbus ModbusDeviceIdentification keys: VendorName, ProductCode,
        MajorMinorRevision, ...) is what the server answers to FC 43/14."""
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator import DataType
        from pymodbus.simulator import SimData
        from pymodbus.simulator import SimDevice as PySimDevice

        self.requests: list[tuple[int, str]] = []
        self._lock = threading.Lock()
        last_error: Exception | None = None
        fixed = port
        for _attempt in range(1 if fixed else 5):
            port = fixed or free_port()
            self._loop = asyncio.new_event_loop()
            self._server: Any = None
            self._error: Exception | None = None
            started = threading.Event()

            def make_device() -> Any:
                co = [SimData(0, count=size, values=False, datatype=DataType.BITS)]
                di = [SimData(0, count=size, values=True, datatype=DataType.BITS)]
                hr = [SimData(0, values=[1000 + i for i in range(size)], datatype=DataType.REGISTERS)]
                ir = [SimData(0, values=[2000 + i for i in range(size)], datatype=DataType.REGISTERS)]
                return PySimDevice(0, simdata=(co, di, hr, ir))  # id 0: answers every unit id

            def run(port: int = port, started: threading.Event = started) -> None:
                asyncio.set_event_loop(self._loop)

                async def main() -> None:
                    ident = None
                    if identity is not None:
                        from pymodbus import ModbusDeviceIdentification

                        ident = ModbusDeviceIdentification(info_name=identity)
                    self._server = ModbusTcpServer(
                        make_device(),
                        identity=ident,
                        address=(LOOP, port),
                        trace_pdu=self._trace,
                        trace_packet=trace_packet,
                    )
                    started.set()
                    await self._server.serve_forever()

                try:
                    self._loop.run_until_complete(main())
                except Exception as e:  # noqa: BLE001 - reported to the starter
                    self._error = e
                    started.set()

            self._thread = threading.Thread(target=run, name="pymodbus-device", daemon=True)
            self._thread.start()
            started.wait(10)
            try:
                wait_until(
                    lambda port=port: self._error is not None or port_open(LOOP, port),
                    10,
                    "the pymodbus server to listen",
                )
            except TimeoutError as e:
                last_error = e
                continue
            if self._error is None:
                super().__init__(LOOP, port)
                self.clear()
                return
            last_error = self._error
        raise RuntimeError(f"could not start the pymodbus server: {last_error}")

    def _trace(self, sending: bool, pdu: Any) -> Any:
        if not sending:
            with self._lock:
                desc = f"fc={pdu.function_code} address={getattr(pdu, 'address', '?')} " \
                    f"count={getattr(pdu, 'count', '?')} registers={getattr(pdu, 'registers', '?')}"
                self.requests.append((int(pdu.function_code), desc))
        return pdu

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def seen(self) -> list[tuple[int, str]]:
        with self._lock:
            return list(self.requests)

    def stop(self) -> None:
        if self._server is not None and self._loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop).result(5)
            except Exception:  # noqa: BLE001 - teardown is best effort
                pass
        self._thread.join(5)


class SilentDevice(Device):
    """Accepts TCP connections and reads everything, never answers."""

    kind = "silent"

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((LOOP, 0))
        self._sock.listen(64)
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self.received = 0
        self._thread = threading.Thread(target=self._serve, name="silent-device", daemon=True)
        self._thread.start()
        super().__init__(LOOP, self._sock.getsockname()[1])

    def _serve(self) -> None:
        while not self._stop.is_set():
            socks = [self._sock, *self._conns]
            try:
                readable, _, _ = select.select(socks, [], [], 0.1)
            except (OSError, ValueError):
                return
            for s in readable:
                if s is self._sock:
                    conn, _ = self._sock.accept()
                    self._conns.append(conn)
                else:
                    try:
                        data = s.recv(4096)
                    except OSError:
                        data = b""
                    self.received += len(data)
                    if not data:
                        self._conns.remove(s)
                        s.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for c in self._conns:
            c.close()
        self._sock.close()


class BadDevice(Device):
    """A device that answers FC 3 reads (every register = 7777) wrongly on purpose.

    mode: "wrong_tid" (answer carries tid + 1), "wrong_function" (answers with FC 4),
    "unsolicited" (a correct answer, then an extra ADU nobody asked for, tid 0xBEEF, value 6666),
    "slow_first" (the first request of a connection is answered after 1.5 s, values = address),
    "close_after" (answers one request, values = address, then closes the connection).
    """

    kind = "bad"

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((LOOP, 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self.requests = 0
        self._threads: list[threading.Thread] = []
        t = threading.Thread(target=self._accept, name="bad-device", daemon=True)
        t.start()
        self._threads.append(t)
        super().__init__(LOOP, self._sock.getsockname()[1])

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (socket.timeout, OSError):
                continue
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        buf = b""
        served = 0
        with conn:
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(4096)
                except socket.timeout:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                while len(buf) >= 7:
                    tid, _, length, unit = struct.unpack(">HHHB", buf[:7])
                    if len(buf) < 6 + length:
                        break
                    pdu, buf = buf[7 : 6 + length], buf[6 + length :]
                    self.requests += 1
                    served += 1
                    address, count = struct.unpack(">HH", pdu[1:5]) if len(pdu) >= 5 else (0, 1)
                    fc = 4 if self.mode == "wrong_function" else pdu[0]
                    body = bytes([fc, 2 * count]) + struct.pack(">H", 7777) * count
                    if self.mode in ("slow_first", "close_after"):
                        body = bytes([fc, 2 * count]) + struct.pack(">H", address) * count
                    if self.mode == "slow_first" and served == 1:
                        time.sleep(1.5)
                    rtid = (tid + 1) & 0xFFFF if self.mode == "wrong_tid" else tid
                    out = adu(rtid, unit, body)
                    if self.mode == "unsolicited":
                        out += adu(0xBEEF, unit, bytes([pdu[0], 2 * count]) + struct.pack(">H", 6666) * count)
                    try:
                        conn.sendall(out)
                    except OSError:
                        return
                    if self.mode == "close_after":
                        return

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(2)
        self._sock.close()


# ---------------------------------------------------------------------------------------------
# Raw Modbus/TCP


def adu(tid: int, unit: int, pdu: bytes, protocol: int = 0, length: int | None = None) -> bytes:
    """An MBAP header + PDU; `protocol`/`length` can be set wrong on purpose."""
    if length is None:
        length = len(pdu) + 1
    return struct.pack(">HHHB", tid, protocol, length, unit) + pdu


def read_pdu(fc: int, address: int, count: int) -> bytes:
    return struct.pack(">BHH", fc, address, count)


def write_single_pdu(address: int, value: int) -> bytes:
    return struct.pack(">BHH", 6, address, value)


def write_coil_pdu(address: int, on: bool) -> bytes:
    return struct.pack(">BHH", 5, address, 0xFF00 if on else 0)


def write_multiple_pdu(address: int, values: list[int], byte_count: int | None = None) -> bytes:
    if byte_count is None:
        byte_count = 2 * len(values)
    return struct.pack(">BHHB", 16, address, len(values), byte_count) + b"".join(
        struct.pack(">H", v) for v in values
    )


def exception_of(pdu: bytes) -> int | None:
    """The exception code of a response PDU, None for a normal response."""
    if pdu and pdu[0] & 0x80:
        assert len(pdu) == 2, f"exception PDU must be 2 bytes, got {pdu.hex()}"
        return pdu[1]
    return None


def registers_of(pdu: bytes) -> list[int]:
    assert pdu[0] in (3, 4), f"not a register read response: {pdu.hex()}"
    n = pdu[1]
    assert len(pdu) == 2 + n, f"byte count {n} does not match PDU length {len(pdu)}"
    return list(struct.unpack(f">{n // 2}H", pdu[2:]))


class Closed(Exception):
    """The peer closed (or reset) the connection."""


class Raw:
    """A raw Modbus/TCP client socket bound to `src` (127.0.0.x)."""

    def __init__(self, port: int, src: str = LOOP, host: str = LOOP, timeout: float = 5.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.bind((src, 0))
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.buf = b""
        self._tid = 0

    def __enter__(self) -> "Raw":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def next_tid(self) -> int:
        self._tid = (self._tid + 1) & 0xFFFF
        return self._tid

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, need: int, deadline: float) -> None:
        while len(self.buf) < need:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout(f"timed out with {len(self.buf)} of {need} bytes")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(4096)
            except ConnectionResetError as e:
                raise Closed(f"connection reset: {e}") from e
            if not chunk:
                raise Closed(f"connection closed with {len(self.buf)} bytes buffered")
            self.buf += chunk

    def recv_adu(self, timeout: float = 5.0) -> tuple[int, int, bytes]:
        """One response ADU -> (transaction id, unit id, PDU). Raises socket.timeout or Closed."""
        deadline = time.monotonic() + timeout
        self._fill(7, deadline)
        tid, proto, length, unit = struct.unpack(">HHHB", self.buf[:7])
        assert proto == 0, f"response with protocol id {proto}"
        assert 2 <= length <= 254, f"response with MBAP length {length}"
        self._fill(6 + length, deadline)
        pdu = self.buf[7 : 6 + length]
        self.buf = self.buf[6 + length :]
        return tid, unit, pdu

    def request(self, unit: int, pdu: bytes, timeout: float = 5.0) -> bytes:
        """Sends one request and returns the response PDU (checks the transaction id and unit)."""
        tid = self.next_tid()
        self.send(adu(tid, unit, pdu))
        rtid, runit, rpdu = self.recv_adu(timeout)
        assert rtid == tid, f"response transaction id {rtid}, expected {tid}"
        assert runit == unit, f"response unit id {runit}, expected {unit}"
        assert rpdu[0] & 0x7F == pdu[0], f"response function {rpdu[0]:#x} to request {pdu[0]:#x}"
        return rpdu

    def outcome(self, timeout: float) -> str:
        """What happens next: 'closed', 'data' (something arrived) or 'silent' (nothing in time)."""
        if self.buf:
            return "data"
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return "silent"
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(4096)
            except socket.timeout:
                return "silent"
            except (ConnectionResetError, BrokenPipeError):
                return "closed"
            if not chunk:
                return "closed"
            self.buf += chunk
            return "data"


def pymodbus_client(port: int, src: str = LOOP, timeout: float = 3.0) -> Any:
    from pymodbus.client import ModbusTcpClient

    client = ModbusTcpClient(LOOP, port=port, source_address=(src, 0), timeout=timeout, retries=0)
    assert client.connect(), f"pymodbus client from {src} could not connect to port {port}"
    return client


# ---------------------------------------------------------------------------------------------
# The model file


def standard_rules() -> list[dict[str, Any]]:
    """The rules of the test conduit (see the source addresses at the top)."""
    return [
        {
            "id": "historian-read",
            "from": ["HIST-01"],
            "unit_ids": [1],
            "functions": ["read"],
            "holding": "0-199",
            "input": "0-99",
            "coils": "0-99",
            "discrete": "0-99",
        },
        {
            "id": "ews-read",
            "from": ["EWS-01"],
            "functions": ["read_holding_registers"],
            "holding": "0-199",
        },
        {
            "id": "ews-setpoints",
            "from": ["EWS-01"],
            "unit_ids": [1],
            "functions": ["write_single_register", "write_multiple_registers"],
            "holding": "100-109",
            "values": {"min": 180, "max": 240},
            "justification": "setpoint changes by the HVAC engineer",
        },
        {
            "id": "ews-coils",
            "from": ["EWS-01"],
            "functions": ["write_single_coil", "write_multiple_coils"],
            "coils": "0-9",
        },
        {
            "id": "ops-status",
            "from": ["Z2-OPS"],
            "unit_ids": [1],
            "functions": ["read_input_registers"],
            "input": "100-109",
        },
        {
            "id": "local-tools",
            "from": ["127.0.0.1/32"],
            "functions": [3, "write_single_register", "write_multiple_registers"],
            "holding": "0-199",
            "values": {"min": 0, "max": 1000},
        },
        {
            "id": "rate-read",
            "from": ["127.0.0.4/32"],
            "functions": ["read_holding_registers"],
            "holding": "0-199",
            "rate": "2/s",
        },
    ]


def model(
    listen: str,
    upstream: str,
    events: Path,
    *,
    mode: str = "enforce",
    deny: str = "exception",
    idle_timeout: str = "30s",
    request_timeout: str = "2s",
    max_connections: int = 256,
    rules: list[dict[str, Any]] | None = None,
    extra_gateway: dict[str, Any] | None = None,
    extra_audit: dict[str, Any] | None = None,
    admin: dict[str, Any] | None = None,
) -> dict[str, Any]:
    gateway: dict[str, Any] = {
        "listen": listen,
        "upstream": upstream,
        "mode": mode,
        "deny": deny,
        "idle_timeout": idle_timeout,
        "request_timeout": request_timeout,
        "max_connections": max_connections,
    }
    gateway.update(extra_gateway or {})
    return {
        "facility": "e2e test cleanroom HVAC",
        "assessment_date": "2026-11-22",
        "standard": "IEC 62443-3-2:2020",
        "zones": [
            {
                "zone_id": "Z1-CTRL",
                "name": "HVAC control",
                "purdue_level": 1,
                "security_level_target": "SL 2",
                # The device and the local test tools (mbpoll cannot pick a source address)
                # share the loopback addresses of the control zone, so every rule source lies
                # in a zone the conduit connects: `run` enforces only models `check` passes.
                "networks": [f"{LOCAL}/32", f"{RATE}/32"],
                "assets": ["AHU controller (the device under test)"],
                "allowed_conduits": [CONDUIT],
            },
            {
                "zone_id": "Z2-OPS",
                "name": "Operations",
                "purdue_level": 2,
                "security_level_target": "SL 2",
                "networks": ["127.0.0.2/31"],
                "assets": [
                    {"id": "HIST-01", "address": HIST, "kind": "historian"},
                    {"id": "EWS-01", "address": EWS, "kind": "ews"},
                ],
                "allowed_conduits": [CONDUIT],
            },
        ],
        "conduits": [
            {
                "conduit_id": CONDUIT,
                "name": "Operations to control",
                "connects": ["Z2-OPS", "Z1-CTRL"],
                "security_level": "SL 2",
                "gateway": gateway,
                "rules": standard_rules() if rules is None else rules,
            }
        ],
        "audit": {"path": str(events), **(extra_audit or {})},
        **({"admin": admin} if admin else {}),
    }


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(str(v))  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(obj: Any, indent: int = 0) -> str:
    """Block-style YAML for dicts/lists/scalars (no PyYAML needed)."""
    pad = "  " * indent
    out: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append(f"{pad}{k}:")
                out.append(to_yaml(v, indent + 1))
            elif isinstance(v, list):
                out.append(f"{pad}{k}: []")
            else:
                out.append(f"{pad}{k}: {_scalar(v)}")
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, dict) and item:
                body = to_yaml(item, indent + 1).splitlines()
                first = body[0].lstrip()
                out.append(f"{pad}- {first}")
                out.extend(body[1:])
            else:
                out.append(f"{pad}- {_scalar(item)}")
    else:
        out.append(f"{pad}{_scalar(obj)}")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# The gateway


class Gateway:
    """`zonegate run -c model.yaml` on a run-time port, with its events file."""

    def __init__(self, tmp: Path, upstream: str, **opts: Any):
        self.tmp = tmp
        self.upstream = upstream
        self.opts = opts
        self.model_path = tmp / "model.yaml"
        self.events_path = tmp / "events.jsonl"
        last = ""
        for attempt in range(3):
            self.port = free_port()
            self.write_model()
            self.proc = Proc(
                [str(zonegate_bin()), "run", "-c", str(self.model_path)],
                f"gateway-{attempt}",
                tmp,
            )
            try:
                wait_until(
                    lambda: (not self.proc.running()) or port_open(LOOP, self.port),
                    15,
                    f"the gateway to listen on {LOOP}:{self.port}",
                )
            except TimeoutError as e:
                self.proc.stop()
                raise RuntimeError(f"{e}; output:\n{self.proc.output()}") from e
            if self.proc.running():
                # `zonegate run` prints "listening on ADDR" once it is fully up (model file
                # watch armed). Soft wait: the port is already open, the line is a bonus.
                try:
                    self.proc.wait_line(rf"^listening on {LOOP}:{self.port}\b", timeout=3)
                except TimeoutError:
                    pass
                return
            last = self.proc.output()
            self.proc.stop()
            if "in use" not in last.lower():
                break
        raise RuntimeError(f"zonegate run exited before listening; output:\n{last}")

    def model_dict(self, **changes: Any) -> dict[str, Any]:
        opts = dict(self.opts)
        opts.update(changes)
        return model(f"{LOOP}:{self.port}", self.upstream, self.events_path, **opts)

    def write_model(self, text: str | None = None, **changes: Any) -> None:
        """Rewrites the model file in place (like `cat > model.yaml`)."""
        if text is None:
            text = to_yaml(self.model_dict(**changes)) + "\n"
        with open(self.model_path, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    def events(self) -> list[dict[str, Any]]:
        """Every complete JSON line of the events file."""
        try:
            text = self.events_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        out = []
        for line in text.split("\n")[:-1]:  # a last line without newline may be half-written
            line = line.strip()
            if line:
                out.append(json.loads(line))
        return out

    def request_events(self) -> list[dict[str, Any]]:
        """The per-request records (audit records of other kinds filtered out)."""
        return [e for e in self.events() if e.get("kind", "request") == "request"]

    def wait_request_events(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        wait_until(
            lambda: len(self.request_events()) >= n,
            timeout,
            f"{n} request events in {self.events_path} "
            f"(have {len(self.request_events())})",
        )
        return self.request_events()

    def stop(self) -> int | None:
        return self.proc.stop()


def exception_value(v: Any) -> int | None:
    """An event's `exception` as a number, whether written 2, "0x02", "02" or a name."""
    names = {
        "illegal_function": 1,
        "illegal_data_address": 2,
        "illegal_data_value": 3,
        "server_device_failure": 4,
        "server_device_busy": 6,
        "gateway_path_unavailable": 10,
        "gateway_target_device_failed_to_respond": 11,
        "gateway_target_failed_to_respond": 11,
    }
    if v is None:
        return None
    if isinstance(v, bool):
        raise AssertionError(f"exception field is a bool: {v!r}")
    if isinstance(v, int):
        return v
    if isinstance(v, dict):
        for key in ("code", "value"):
            if key in v:
                return exception_value(v[key])
    if isinstance(v, str):
        s = v.strip().lower()
        if s in names:
            return names[s]
        try:
            return int(s, 16) if s.startswith("0x") else int(s)
        except ValueError:
            pass
    raise AssertionError(f"cannot read exception field {v!r}")
