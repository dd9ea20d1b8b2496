"""Issue 14, the session side: a host no rule names cannot hold connections open with denied
requests, and many clients share a bounded pool of device connections."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import pytest

import zg


class CountingRelay:
    """A TCP relay in front of a device that counts the connections open through it at once."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.lock = threading.Lock()
        self.open = 0
        self.most = 0
        self.accepted = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((zg.LOOP, 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()
        self.port = self._sock.getsockname()[1]

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (socket.timeout, OSError):
                continue
            with self.lock:
                self.accepted += 1
                self.open += 1
                self.most = max(self.most, self.open)
            t = threading.Thread(target=self._relay, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                data = a.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            try:
                b.sendall(data)
            except OSError:
                break
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _relay(self, inbound: socket.socket) -> None:
        try:
            outbound = socket.create_connection(self.target, timeout=2)
        except OSError:
            inbound.close()
            return
        inbound.settimeout(0.2)
        outbound.settimeout(0.2)
        back = threading.Thread(target=self._pump, args=(outbound, inbound), daemon=True)
        back.start()
        self._pump(inbound, outbound)
        back.join(2)
        inbound.close()
        outbound.close()
        with self.lock:
            self.open -= 1

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(2)
        self._sock.close()


def _32_clients_through_a_relay(
    gateway_factory: Callable[..., zg.Gateway],
    dev: zg.Device,
    extra_gateway: dict,
    calls: int,
    dropped_ok: bool = False,
) -> tuple[int, int]:
    """32 clients from one address, each reading its own register `calls` times through a
    gateway whose upstream is a counting relay in front of `dev`. Every answer must be the
    client's own value; with `dropped_ok` a 0x0B answer is counted instead. Returns the most
    device connections open at once and the 0x0B answers."""
    relay = CountingRelay((dev.host, dev.port))
    try:
        gw = gateway_factory(
            f"tcp://{zg.LOOP}:{relay.port}",
            # 32 clients from one address: above the default max_connections_per_source (16)
            extra_gateway={**extra_gateway, "max_connections_per_source": 32},
        )
        direct = dev.read_holding(0, 40)

        # The gateway's start probe (one connect-and-close, outside the pool) must be through
        # the relay and gone before the count that matters starts.
        def probe_done() -> bool:
            with relay.lock:
                return relay.accepted >= 1 and relay.open == 0

        zg.wait_until(probe_done, 5, "the gateway's start probe through the relay to end")
        with relay.lock:
            relay.most = 0
        errors: list[str] = []
        dropped: list[int] = []
        lock = threading.Lock()

        def client(i: int) -> int:
            try:
                with zg.Raw(gw.port, src=zg.HIST, timeout=30) as raw:
                    for _ in range(calls):
                        pdu = raw.request(1, zg.read_pdu(3, i, 1), timeout=30)
                        if dropped_ok and pdu == bytes([0x83, 0x0B]):
                            with lock:
                                dropped.append(i)
                        elif zg.registers_of(pdu) != [direct[i]]:
                            errors.append(f"client {i}: {pdu.hex()}")
                return calls
            except Exception as e:  # noqa: BLE001 - collected and asserted below
                errors.append(f"client {i}: {type(e).__name__}: {e}")
                return 0

        with ThreadPoolExecutor(max_workers=32) as pool:
            done = sum(pool.map(client, range(32), timeout=120))
        assert errors == [], errors[:5]
        assert done == 32 * calls
        with relay.lock:
            return relay.most, len(dropped)
    finally:
        relay.stop()


def test_32_clients_share_a_pool_of_2(
    gateway_factory: Callable[..., zg.Gateway], sim_device: zg.SimDevice
) -> None:
    most, _ = _32_clients_through_a_relay(
        gateway_factory, sim_device, {"max_upstream_connections": 2}, 5
    )
    assert 1 <= most <= 2, f"the device saw {most} connections at once"


@pytest.mark.parametrize("device", ["sim", "pymodbus"])
def test_32_clients_share_one_device_connection_with_requests_in_flight_together(
    gateway_factory: Callable[..., zg.Gateway],
    sim_device: zg.SimDevice,
    py_device: zg.PyDevice,
    device: str,
) -> None:
    """max_upstream_in_flight 8 and one device connection: 32 clients, each reading its own
    register, and the device only ever sees one connection. zonegate sim answers every ADU of
    a segment: every client gets its own value back (a mixed-up transaction id would show).
    pymodbus 3.x answers only the first ADU of a segment (why sharing is opt-in): the requests
    it drops are answered 0x0B after request_timeout, and still no client ever gets another
    client's value."""
    dev: zg.Device = sim_device if device == "sim" else py_device
    most, dropped = _32_clients_through_a_relay(
        gateway_factory,
        dev,
        {"max_upstream_connections": 1, "max_upstream_in_flight": 8},
        10,
        dropped_ok=device == "pymodbus",
    )
    assert most == 1, f"the device saw {most} connections at once"
    print(f"{device}: {dropped} of {32 * 10} requests dropped by the device (0x0B)")


def test_denied_reads_do_not_hold_a_connection(
    gateway_factory: Callable[..., zg.Gateway], sim_device: zg.SimDevice
) -> None:
    """A named source that sends only denied requests (one every 100 ms) is closed after
    unauthenticated_idle_timeout (1 s here), although idle_timeout is 30 s: denied requests never
    refresh the idle timer. A source no rule names does not even get that far: it is closed at
    accept."""
    gw = gateway_factory(sim_device.upstream, extra_gateway={"unauthenticated_idle_timeout": "1s"})
    with zg.Raw(gw.port, src=zg.ROGUE) as raw:
        try:
            raw.send(zg.adu(raw.next_tid(), 1, zg.read_pdu(3, 0, 1)))
            outcome = raw.outcome(0.5)
        except OSError:
            outcome = "closed"
        assert outcome == "closed", f"a source no rule names was not closed at accept: {outcome}"
    with zg.Raw(gw.port, src=zg.HIST) as raw:
        t0 = time.monotonic()
        closed_after = None
        answers = 0
        while time.monotonic() - t0 < 5:
            try:
                # the historian may not write: 0x01 each time
                raw.send(zg.adu(raw.next_tid(), 1, zg.write_single_pdu(100, 200)))
                outcome = raw.outcome(0.1)
            except OSError:
                outcome = "closed"
            if outcome == "closed":
                closed_after = time.monotonic() - t0
                break
            if outcome == "data":
                answers += 1
                assert zg.exception_of(raw.buf[7:]) == zg.ILLEGAL_FUNCTION, raw.buf.hex()
            raw.buf = b""
        assert closed_after is not None, "the denied client's connection stayed open for 5 s"
        assert 0.8 <= closed_after < 3, f"closed after {closed_after:.2f} s"
        assert answers >= 3, f"only {answers} denials answered before the close"
    # An operator who made an allowed request keeps the connection past the short timeout.
    with zg.Raw(gw.port, src=zg.HIST) as raw:
        assert zg.exception_of(raw.request(1, zg.read_pdu(3, 0, 1))) is None
        time.sleep(1.5)
        assert zg.exception_of(raw.request(1, zg.read_pdu(3, 0, 1))) is None
