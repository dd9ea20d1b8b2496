"""Connections: pipelining, a device down or silent, idle timeout, 200 concurrent clients."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import pytest

import zg


def test_pipelined_requests_answered_in_order(sim_gateway: zg.Gateway, sim_device: zg.Device) -> None:
    direct = sim_device.read_holding(0, 20)
    with zg.Raw(sim_gateway.port, src=zg.HIST) as raw:
        batch = b"".join(zg.adu(100 + i, 1, zg.read_pdu(3, i, 10)) for i in range(10))
        raw.send(batch)  # 10 ADUs in one send
        for i in range(10):
            tid, unit, pdu = raw.recv_adu(timeout=10)
            assert (tid, unit) == (100 + i, 1), f"answer {i}: tid {tid} unit {unit}"
            assert zg.registers_of(pdu) == direct[i : i + 10]


def test_pipelined_mix_of_allowed_and_denied_keeps_order(sim_gateway: zg.Gateway) -> None:
    gateway = sim_gateway
    reqs = [
        (zg.read_pdu(3, 0, 1), None),
        (zg.write_single_pdu(100, 200), zg.ILLEGAL_FUNCTION),
        (zg.read_pdu(3, 150, 1), None),
        (zg.read_pdu(3, 500, 1), zg.ILLEGAL_ADDRESS),
        (zg.read_pdu(3, 100, 0), zg.ILLEGAL_VALUE),
        (zg.read_pdu(4, 0, 2), None),
    ]
    with zg.Raw(gateway.port, src=zg.HIST) as raw:
        raw.send(b"".join(zg.adu(7000 + i, 1, pdu) for i, (pdu, _) in enumerate(reqs)))
        for i, (pdu, code) in enumerate(reqs):
            tid, _, rpdu = raw.recv_adu(timeout=10)
            assert tid == 7000 + i, f"answer {i} has tid {tid}: out of order"
            assert rpdu[0] & 0x7F == pdu[0]
            assert zg.exception_of(rpdu) == code, f"request {i}: {rpdu.hex()}"


def test_pipelined_split_across_segments(sim_gateway: zg.Gateway) -> None:
    """Byte-by-byte sends: the gateway reassembles frames split anywhere."""
    gateway = sim_gateway
    with zg.Raw(gateway.port, src=zg.HIST) as raw:
        data = zg.adu(1, 1, zg.read_pdu(3, 0, 3)) + zg.adu(2, 1, zg.read_pdu(3, 3, 3))
        for b in data:
            raw.send(bytes([b]))
            time.sleep(0.002)
        assert [raw.recv_adu(5)[0] for _ in range(2)] == [1, 2]


def test_pipelined_client_in_front_of_one_at_a_time_device(
    gateway_factory: Callable[..., zg.Gateway], py_device: zg.PyDevice
) -> None:
    """pymodbus 3.16's server handles only the first ADU of a TCP segment (checked directly:
    a client pipelining straight to it gets one answer and then hangs). Behind the gateway the
    client is never left hanging even when the model pipelines to such a device
    (`max_in_flight: 16`): every request gets an answer, in order, a normal response or 0x0B."""
    gw = gateway_factory(
        py_device.upstream, request_timeout="1s", extra_gateway={"max_in_flight": 16}
    )
    with zg.Raw(gw.port, src=zg.HIST) as raw:
        raw.send(b"".join(zg.adu(300 + i, 1, zg.read_pdu(3, i, 10)) for i in range(10)))
        answers = [raw.recv_adu(timeout=15) for _ in range(10)]
    assert [a[0] for a in answers] == list(range(300, 310)), "answers out of order"
    codes = [zg.exception_of(a[2]) for a in answers]
    assert codes[0] is None, codes
    assert set(codes) <= {None, zg.TARGET_FAILED}, codes


def test_default_serialises_for_one_at_a_time_device(
    gateway_factory: Callable[..., zg.Gateway], py_device: zg.PyDevice
) -> None:
    """By default (`max_in_flight: 1`) the gateway sends one request at a time upstream, so a
    device that cannot take pipelined requests answers all of a pipelining client's requests."""
    gw = gateway_factory(py_device.upstream, request_timeout="1s")
    with zg.Raw(gw.port, src=zg.HIST) as raw:
        raw.send(b"".join(zg.adu(300 + i, 1, zg.read_pdu(3, i, 10)) for i in range(10)))
        answers = [raw.recv_adu(timeout=15) for _ in range(10)]
    assert [a[0] for a in answers] == list(range(300, 310)), "answers out of order"
    for i, (_, _, pdu) in enumerate(answers):
        assert zg.registers_of(pdu) == [1000 + i + k for k in range(10)], f"answer {i}: {pdu.hex()}"


def test_device_down_is_gateway_path_unavailable(
    gateway_factory: Callable[..., zg.Gateway], dead_upstream: str
) -> None:
    gw = gateway_factory(dead_upstream)
    with zg.Raw(gw.port, src=zg.HIST) as raw:
        t0 = time.monotonic()
        pdu = raw.request(1, zg.read_pdu(3, 0, 1), timeout=10)
        assert zg.exception_of(pdu) == zg.PATH_UNAVAILABLE, pdu.hex()
        assert time.monotonic() - t0 < 5
        # a denied request is still denied by policy, not by the dead device
        pdu = raw.request(1, zg.write_single_pdu(100, 200), timeout=10)
        assert zg.exception_of(pdu) in (zg.ILLEGAL_FUNCTION, zg.PATH_UNAVAILABLE), pdu.hex()


def test_device_comes_back_after_being_down(gateway_factory: Callable[..., zg.Gateway]) -> None:
    """The gateway reconnects upstream by itself once the device is back."""
    dev_port = zg.free_port()
    gw = gateway_factory(f"tcp://{zg.LOOP}:{dev_port}")
    with zg.Raw(gw.port, src=zg.HIST) as raw:
        assert zg.exception_of(raw.request(1, zg.read_pdu(3, 0, 1))) == zg.PATH_UNAVAILABLE
    dev = zg.PyDevice(port=dev_port)
    try:

        def ok() -> bool:
            with zg.Raw(gw.port, src=zg.HIST) as raw:
                return zg.exception_of(raw.request(1, zg.read_pdu(3, 0, 1))) is None

        zg.wait_until(ok, 10, "reads to pass once the device is up", step=0.3)
    finally:
        dev.stop()


def test_silent_device_is_target_failed_to_respond(
    gateway_factory: Callable[..., zg.Gateway], silent_device: zg.SilentDevice
) -> None:
    gw = gateway_factory(silent_device.upstream, request_timeout="1s")
    with zg.Raw(gw.port, src=zg.HIST) as raw:
        t0 = time.monotonic()
        pdu = raw.request(1, zg.read_pdu(3, 0, 1), timeout=10)
        took = time.monotonic() - t0
        assert zg.exception_of(pdu) == zg.TARGET_FAILED, pdu.hex()
        assert 0.8 <= took < 4, f"0x0B after {took:.2f}s with request_timeout 1s"
    assert silent_device.received >= 12, "the request was not forwarded to the silent device"


def test_idle_timeout_closes_connection(
    gateway_factory: Callable[..., zg.Gateway], sim_device: zg.SimDevice
) -> None:
    gw = gateway_factory(sim_device.upstream, idle_timeout="1s")
    with zg.Raw(gw.port, src=zg.HIST) as active, zg.Raw(gw.port, src=zg.HIST) as idle:
        assert zg.exception_of(idle.request(1, zg.read_pdu(3, 0, 1))) is None
        t0 = time.monotonic()
        # the active connection keeps polling every 0.4 s for 2.4 s and stays open
        for _ in range(6):
            assert zg.exception_of(active.request(1, zg.read_pdu(3, 0, 1))) is None
            time.sleep(0.4)
        assert idle.outcome(3) == "closed", "idle connection not closed"
        took = time.monotonic() - t0
        assert took < 5.5, f"idle connection closed after {took:.1f}s with idle_timeout 1s"
        assert zg.exception_of(active.request(1, zg.read_pdu(3, 0, 1))) is None


def test_200_concurrent_clients(
    gateway_factory: Callable[..., zg.Gateway], sim_device: zg.SimDevice
) -> None:
    # 100 clients from each of two addresses: above the default max_connections_per_source (16)
    gw = gateway_factory(
        sim_device.upstream, max_connections=256, extra_gateway={"max_connections_per_source": 128}
    )
    direct = sim_device.read_holding(0, 10)
    n, per_client = 200, 5
    barrier = threading.Barrier(n, timeout=60)
    errors: list[str] = []

    def client(i: int) -> int:
        src = zg.HIST if i % 2 == 0 else zg.EWS
        try:
            with zg.Raw(gw.port, src=src, timeout=30) as raw:
                barrier.wait()
                done = 0
                for _ in range(per_client):
                    pdu = raw.request(1, zg.read_pdu(3, 0, 10), timeout=30)
                    if zg.registers_of(pdu) != direct:
                        errors.append(f"client {i}: wrong registers {pdu.hex()}")
                    done += 1
                return done
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(f"client {i}: {type(e).__name__}: {e}")
            return 0

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(client, range(n), timeout=120))
    took = time.monotonic() - t0
    assert errors == [], f"{len(errors)} errors, first: {errors[:5]}"
    assert sum(results) == n * per_client
    assert took < 90, f"200 clients x 5 reads took {took:.1f}s"


def test_max_connections_refuses_the_extra_client(
    gateway_factory: Callable[..., zg.Gateway], sim_device: zg.SimDevice
) -> None:
    # Backpressure: the third waits in the listen backlog for max_connections_wait, then is refused.
    gw = gateway_factory(
        sim_device.upstream, max_connections=2, extra_gateway={"max_connections_wait": "300ms"}
    )
    time.sleep(0.5)  # the fixture's readiness probe connection must be gone first
    with zg.Raw(gw.port, src=zg.HIST) as a, zg.Raw(gw.port, src=zg.HIST) as b:
        assert zg.exception_of(a.request(1, zg.read_pdu(3, 0, 1))) is None
        assert zg.exception_of(b.request(1, zg.read_pdu(3, 0, 1))) is None
        try:
            c = zg.Raw(gw.port, src=zg.HIST, timeout=3)
        except OSError:
            c = None  # refused outright is fine
        if c is not None:
            with c:
                try:
                    c.send(zg.adu(1, 1, zg.read_pdu(3, 0, 1)))
                    outcome = c.outcome(3)
                except OSError:
                    outcome = "closed"
                assert outcome == "closed", f"third connection over max_connections 2: {outcome}"
        # the two admitted clients are unaffected
        assert zg.exception_of(a.request(1, zg.read_pdu(3, 0, 1))) is None
        assert zg.exception_of(b.request(1, zg.read_pdu(3, 0, 1))) is None
    # a slot frees up when a client leaves
    def admitted() -> bool:
        try:
            with zg.Raw(gw.port, src=zg.HIST, timeout=2) as d:
                return zg.exception_of(d.request(1, zg.read_pdu(3, 0, 1), timeout=2)) is None
        except (OSError, zg.Closed):
            return False

    zg.wait_until(admitted, 5, "a new client to be admitted after the others left", step=0.2)


@pytest.mark.parametrize("mode,code", [("wrong_tid", zg.TARGET_FAILED), ("wrong_function", 0x04)])
def test_mismatched_device_response_is_not_passed_on(
    gateway_factory: Callable[..., zg.Gateway], mode: str, code: int
) -> None:
    """A bad response is dropped and reported, never passed on. With the wrong transaction id it
    answers nothing (0x0B when the real answer never comes); with the request's transaction id
    but the wrong function the device did answer, wrongly: 0x04 at once (README, "On the wire")."""
    dev = zg.BadDevice(mode)
    try:
        gw = gateway_factory(dev.upstream, request_timeout="1s")
        with zg.Raw(gw.port, src=zg.HIST) as raw:
            pdu = raw.request(1, zg.read_pdu(3, 0, 2), timeout=10)
            assert zg.exception_of(pdu) == code, f"client got {pdu.hex()}"
        assert dev.requests >= 1
    finally:
        dev.stop()


def test_unsolicited_device_response_is_dropped(gateway_factory: Callable[..., zg.Gateway]) -> None:
    dev = zg.BadDevice("unsolicited")
    try:
        gw = gateway_factory(dev.upstream, request_timeout="1s")
        with zg.Raw(gw.port, src=zg.HIST) as raw:
            for _ in range(3):
                pdu = raw.request(1, zg.read_pdu(3, 0, 2), timeout=10)
                assert zg.registers_of(pdu) == [7777, 7777], f"client got {pdu.hex()}"
            assert raw.outcome(0.5) == "silent", f"unsolicited data reached the client: {raw.buf.hex()}"
    finally:
        dev.stop()


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_graceful_shutdown(gateway_factory: Callable[..., zg.Gateway], sim_device: zg.SimDevice, sig: str) -> None:
    import signal

    gw = gateway_factory(sim_device.upstream)
    with zg.Raw(gw.port, src=zg.HIST) as raw:
        assert zg.exception_of(raw.request(1, zg.read_pdu(3, 0, 1))) is None
        gw.proc.send_signal(getattr(signal, sig))
        try:
            gw.proc.popen.wait(10)
        except Exception as e:  # noqa: BLE001
            raise AssertionError(f"gateway still running 10 s after {sig}") from e
        assert gw.proc.popen.returncode == 0, f"exit status {gw.proc.popen.returncode} after {sig}"
        assert raw.outcome(2) == "closed"
    assert not zg.port_open(zg.LOOP, gw.port)


def test_long_pipeline_is_bounded_not_lost(sim_gateway: zg.Gateway, sim_device: zg.SimDevice) -> None:
    """500 requests in one burst, far more than max_in_flight: all answered, in
    order, without stalls (back-pressure, not loss and not waiting for a timer)."""
    direct = sim_device.read_holding(0, 10)
    with zg.Raw(sim_gateway.port, src=zg.HIST) as raw:
        raw.send(b"".join(zg.adu(i, 1, zg.read_pdu(3, 0, 10)) for i in range(500)))
        t0 = time.monotonic()
        for i in range(500):
            try:
                tid, _, pdu = raw.recv_adu(timeout=1.5)
            except (TimeoutError, zg.Closed) as e:
                raise AssertionError(
                    f"pipeline stalled after {i} answers ({time.monotonic() - t0:.1f}s): {e!r}"
                ) from e
            assert tid == i, f"answer {i} has tid {tid}"
            assert zg.registers_of(pdu) == direct
        assert time.monotonic() - t0 < 15


def test_client_leaving_mid_request_does_not_hurt_others(
    gateway_factory: Callable[..., zg.Gateway], silent_device: zg.SilentDevice, sim_device: zg.SimDevice
) -> None:
    # 21 connections from one address within request_timeout (a vanished client's session stays
    # until its request is answered or times out): above the default max_connections_per_source
    gw = gateway_factory(
        silent_device.upstream, request_timeout="1s", extra_gateway={"max_connections_per_source": 32}
    )
    for _ in range(20):  # clients that send and vanish while the device is silent
        raw = zg.Raw(gw.port, src=zg.HIST)
        raw.send(zg.adu(1, 1, zg.read_pdu(3, 0, 1)))
        raw.close()
    with zg.Raw(gw.port, src=zg.HIST) as raw:
        assert zg.exception_of(raw.request(1, zg.read_pdu(3, 0, 1), timeout=10)) == zg.TARGET_FAILED
    assert gw.proc.running()


def test_late_device_answer_is_not_given_to_the_next_request(
    gateway_factory: Callable[..., zg.Gateway],
) -> None:
    """The device answers the first request after 1.5 s, past request_timeout 1 s: the client gets
    0x0B for it, and the late answer must not be taken as the answer to the next request."""
    dev = zg.BadDevice("slow_first")
    try:
        gw = gateway_factory(dev.upstream, request_timeout="1s")
        with zg.Raw(gw.port, src=zg.HIST) as raw:
            assert zg.exception_of(raw.request(1, zg.read_pdu(3, 1, 1), timeout=5)) == zg.TARGET_FAILED
            pdu = raw.request(1, zg.read_pdu(3, 2, 1), timeout=5)
            assert zg.registers_of(pdu) == [2], f"second request got {pdu.hex()} (late answer was [1])"
            pdu = raw.request(1, zg.read_pdu(3, 3, 1), timeout=5)
            assert zg.registers_of(pdu) == [3]
    finally:
        dev.stop()


def test_device_closing_after_each_answer_is_reconnected(
    gateway_factory: Callable[..., zg.Gateway],
) -> None:
    """Some devices close the TCP connection after each answer: the gateway reconnects for the
    next request instead of failing the client."""
    dev = zg.BadDevice("close_after")
    try:
        gw = gateway_factory(dev.upstream)
        with zg.Raw(gw.port, src=zg.HIST) as raw:
            got = []
            for addr in (5, 6, 7):
                pdu = raw.request(1, zg.read_pdu(3, addr, 1), timeout=5)
                got.append(zg.exception_of(pdu) or zg.registers_of(pdu))
                time.sleep(0.1)
        assert got == [[5], [6], [7]], got
    finally:
        dev.stop()


def test_half_closed_client_still_gets_its_answers(sim_gateway: zg.Gateway) -> None:
    """`printf ... | nc` style: the client sends, shuts down its write side, then reads."""
    import socket

    with zg.Raw(sim_gateway.port, src=zg.HIST) as raw:
        raw.send(zg.adu(1, 1, zg.read_pdu(3, 0, 2)) + zg.adu(2, 1, zg.read_pdu(3, 2, 2)))
        raw.sock.shutdown(socket.SHUT_WR)
        assert [raw.recv_adu(5)[0] for _ in range(2)] == [1, 2]
        assert raw.outcome(3) == "closed"


def test_idle_timeout_does_not_cut_an_outstanding_request(
    gateway_factory: Callable[..., zg.Gateway],
) -> None:
    """idle_timeout 1 s, the device takes 1.5 s (within request_timeout 3 s): the client waiting
    for its answer is not idle, it gets the answer."""
    dev = zg.BadDevice("slow_first")
    try:
        gw = gateway_factory(dev.upstream, idle_timeout="1s", request_timeout="3s")
        with zg.Raw(gw.port, src=zg.HIST) as raw:
            pdu = raw.request(1, zg.read_pdu(3, 4, 1), timeout=6)
            assert zg.registers_of(pdu) == [4], pdu.hex()
    finally:
        dev.stop()
