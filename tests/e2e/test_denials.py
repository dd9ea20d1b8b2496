"""Deny by default, with the exception code docs/DESIGN.md names; drop, close and monitor mode."""

from __future__ import annotations

import time
from typing import Callable

import pytest

import zg


def test_no_rule_for_source_is_closed_at_accept(gateway: zg.Gateway, device: zg.Device) -> None:
    """In `mode: enforce` a source no rule names could only ever be denied: its connection is
    closed at accept, nothing reaches the device, and the refusal is a `connection` record with
    reason `no_rule_for_source` and the source IP without its port. (A named source asking for a
    function no rule grants it gets 0x01: test_function_not_allowed_is_illegal_function.)"""
    before = device.read_holding(100, 10)
    client = zg.pymodbus_client(gateway.port, src=zg.ROGUE)
    try:
        try:
            r = client.read_holding_registers(100, count=10, device_id=1)
        except Exception as e:  # noqa: BLE001 - pymodbus raises on a closed connection
            r = e
        assert not hasattr(r, "registers") and getattr(r, "exception_code", None) is None, (
            f"a source with no rule got an answer: {r}"
        )
    finally:
        client.close()
    with zg.Raw(gateway.port, src=zg.ROGUE) as raw:  # a raw socket: closed, never answered
        try:
            raw.send(zg.adu(1, 1, zg.read_pdu(3, 100, 1)))
            outcome = raw.outcome(3)
        except OSError:
            outcome = "closed"
        assert outcome == "closed", f"connection from a source with no rule: {outcome}"
    refusals = zg.wait_until(
        lambda: [
            e for e in gateway.events()
            if e.get("kind") == "connection" and e.get("reason") == "no_rule_for_source"
        ],
        5,
        "a connection record no_rule_for_source",
    )
    for e in refusals:
        assert e.get("src") == zg.ROGUE, f"src is the IP without the port: {e}"
        assert e.get("conduit") == zg.CONDUIT, e
    assert not [e for e in gateway.request_events() if str(e.get("src", "")).startswith(zg.ROGUE)]
    assert device.read_holding(100, 10) == before


def test_function_not_allowed_is_illegal_function(gateway: zg.Gateway, device: zg.Device) -> None:
    before = device.read_holding(100, 1)
    client = zg.pymodbus_client(gateway.port, src=zg.HIST)  # the historian may only read
    try:
        r = client.write_register(100, 200, device_id=1)
        assert r.isError(), f"write by the historian was answered {r}"
        assert r.exception_code == zg.ILLEGAL_FUNCTION
        # unit 2 is not in the historian's unit_ids: no rule allows the function for that unit
        r = client.read_holding_registers(100, count=1, device_id=2)
        assert r.isError(), f"read of unit 2 was answered {r}"
        assert r.exception_code == zg.ILLEGAL_FUNCTION
    finally:
        client.close()
    assert device.read_holding(100, 1) == before


def test_address_outside_rules_is_illegal_address(gateway: zg.Gateway, device: zg.Device) -> None:
    client = zg.pymodbus_client(gateway.port, src=zg.HIST)
    try:
        r = client.read_holding_registers(200, count=1, device_id=1)
        assert r.isError() and r.exception_code == zg.ILLEGAL_ADDRESS, f"holding 200: {r}"
        # straddles the end of the allowed range 0-199: every address must be inside
        r = client.read_holding_registers(195, count=10, device_id=1)
        assert r.isError() and r.exception_code == zg.ILLEGAL_ADDRESS, f"holding 195x10: {r}"
        r = client.read_holding_registers(190, count=10, device_id=1)
        assert not r.isError(), f"holding 190x10 (last address 199) should pass: {r}"
    finally:
        client.close()
    before = device.read_holding(110, 1)
    ews = zg.pymodbus_client(gateway.port, src=zg.EWS)
    try:
        r = ews.write_register(110, 200, device_id=1)  # setpoints are 100-109 only
        assert r.isError() and r.exception_code == zg.ILLEGAL_ADDRESS, f"write 110: {r}"
        r = ews.write_registers(108, [200, 200, 200], device_id=1)  # 108..110
        assert r.isError() and r.exception_code == zg.ILLEGAL_ADDRESS, f"write 108x3: {r}"
    finally:
        ews.close()
    assert device.read_holding(110, 1) == before


def test_value_out_of_bounds_is_illegal_value(gateway: zg.Gateway, device: zg.Device) -> None:
    before = device.read_holding(100, 4)
    ews = zg.pymodbus_client(gateway.port, src=zg.EWS)
    try:
        r = ews.write_register(100, 250, device_id=1)  # bounds 180..240
        assert r.isError() and r.exception_code == zg.ILLEGAL_VALUE, f"write 250: {r}"
        r = ews.write_register(100, 179, device_id=1)
        assert r.isError() and r.exception_code == zg.ILLEGAL_VALUE, f"write 179: {r}"
        # one bad value among good ones: the whole request is denied, nothing written
        r = ews.write_registers(100, [200, 210, 241, 220], device_id=1)
        assert r.isError() and r.exception_code == zg.ILLEGAL_VALUE, f"write [..241..]: {r}"
    finally:
        ews.close()
    assert device.read_holding(100, 4) == before
    ews = zg.pymodbus_client(gateway.port, src=zg.EWS)
    try:  # the bounds are inclusive
        r = ews.write_registers(100, [180, 240], device_id=1)
        assert not r.isError(), f"write [180, 240] (the bounds) got {r}"
    finally:
        ews.close()
    assert device.read_holding(100, 2) == [180, 240]


def test_rate_limit_is_server_busy(gateway: zg.Gateway, device: zg.Device) -> None:
    codes = []
    with zg.Raw(gateway.port, src=zg.RATE) as raw:
        for _ in range(10):
            codes.append(zg.exception_of(raw.request(1, zg.read_pdu(3, 0, 2))))
        assert codes[0] is None, f"first request of a 2/s rule was denied: {codes}"
        assert set(codes) <= {None, zg.BUSY}, codes
        assert codes.count(zg.BUSY) >= 6, f"10 back-to-back requests at 2/s: {codes}"
        time.sleep(1.2)  # the bucket refills
        pdu = raw.request(1, zg.read_pdu(3, 0, 2))
        assert zg.exception_of(pdu) is None, f"after 1.2 s still denied: {pdu.hex()}"
    # the limit is per source: another client of another rule is not affected
    with zg.Raw(gateway.port, src=zg.HIST) as raw:
        for _ in range(10):
            assert zg.exception_of(raw.request(1, zg.read_pdu(3, 0, 2))) is None


def test_deny_drop_sends_nothing(
    gateway_factory: Callable[..., zg.Gateway], py_device: zg.PyDevice
) -> None:
    # one record per denied request is the point here: no aggregation of repeated denials
    gw = gateway_factory(py_device.upstream, deny="drop", extra_audit={"aggregate_interval": "0s"})
    py_device.clear()
    with zg.Raw(gw.port, src=zg.HIST) as raw:
        # a denied write then an allowed read, pipelined: only the read is answered
        raw.send(zg.adu(1, 1, zg.write_single_pdu(100, 200)) + zg.adu(2, 1, zg.read_pdu(3, 100, 2)))
        tid, _, pdu = raw.recv_adu(timeout=5)
        assert tid == 2, f"the dropped request (tid 1) was answered: {pdu.hex()}"
        assert zg.registers_of(pdu) == [1100, 1101]
        # a denied read alone: nothing comes back, the connection stays open
        raw.send(zg.adu(3, 1, zg.write_single_pdu(100, 200)))
        assert raw.outcome(1.5) == "silent"
        assert zg.registers_of(raw.request(1, zg.read_pdu(3, 100, 1))) == [1100]
    # a real client (pymodbus) sees a timeout, not an answer (the historian may not write)
    client = zg.pymodbus_client(gw.port, src=zg.HIST, timeout=1)
    try:
        t0 = time.monotonic()
        try:
            r = client.write_register(100, 200, device_id=1)
            answered = not r.isError() or getattr(r, "exception_code", None) is not None
        except Exception:  # noqa: BLE001 - pymodbus raises ModbusIOException on a timeout
            answered = False
        assert not answered, f"deny: drop answered the pymodbus client: {r}"
        assert time.monotonic() - t0 >= 0.9
    finally:
        client.close()
    seen = [fc for fc, _ in py_device.seen()]
    assert 6 not in seen, f"a denied write reached the device: {py_device.seen()}"
    assert py_device.read_holding(100, 1) == [1100]
    decisions = [e["decision"] for e in gw.wait_request_events(5)]
    assert decisions[:5] == ["deny", "allow", "deny", "allow", "deny"], decisions


def test_deny_close_closes_the_connection(
    gateway_factory: Callable[..., zg.Gateway], py_device: zg.PyDevice
) -> None:
    gw = gateway_factory(py_device.upstream, deny="close")
    py_device.clear()
    with zg.Raw(gw.port, src=zg.HIST) as raw:
        assert zg.exception_of(raw.request(1, zg.read_pdu(3, 0, 1))) is None
        raw.send(zg.adu(9, 1, zg.write_single_pdu(100, 200)))
        out = raw.outcome(3)
        assert out == "closed", f"deny: close did not close ({out}, got {raw.buf.hex()!r})"
    assert py_device.read_holding(100, 1) == [1100]
    assert 6 not in [fc for fc, _ in py_device.seen()]
    # the gateway still serves new connections
    with zg.Raw(gw.port, src=zg.HIST) as raw:
        assert zg.exception_of(raw.request(1, zg.read_pdu(3, 0, 1))) is None


def test_monitor_mode_forwards_and_records_would_deny(
    gateway_factory: Callable[..., zg.Gateway], py_device: zg.PyDevice
) -> None:
    gw = gateway_factory(py_device.upstream, mode="monitor")
    with zg.Raw(gw.port, src=zg.ROGUE) as raw:
        pdu = raw.request(1, zg.write_multiple_pdu(100, [999, 998]))
        assert pdu[0] == 16, f"monitor mode did not forward the write: {pdu.hex()}"
    assert py_device.read_holding(100, 2) == [999, 998]
    with zg.Raw(gw.port, src=zg.HIST) as raw:
        pdu = raw.request(1, zg.read_pdu(3, 100, 2))
        assert zg.registers_of(pdu) == [999, 998]
    events = gw.wait_request_events(2)
    assert [e["decision"] for e in events] == ["would_deny", "allow"], events
    assert events[0]["mode"] == "monitor"
    assert events[0]["reason"] == "no_rule_for_source"
    assert events[1]["rule"] == "historian-read"


@pytest.mark.parametrize("deny", ["exception", "drop", "close"])
def test_denied_write_never_reaches_device(
    gateway_factory: Callable[..., zg.Gateway], py_device: zg.PyDevice, deny: str
) -> None:
    gw = gateway_factory(py_device.upstream, deny=deny)
    py_device.clear()
    for src, pdu in [
        (zg.ROGUE, zg.write_single_pdu(100, 200)),
        (zg.HIST, zg.write_multiple_pdu(100, [200])),
        (zg.EWS, zg.write_single_pdu(100, 9999)),
        (zg.EWS, zg.write_multiple_pdu(150, [200])),
    ]:
        with zg.Raw(gw.port, src=src) as raw:
            raw.send(zg.adu(1, 1, pdu))
            raw.outcome(0.5)
    time.sleep(0.3)
    assert py_device.seen() == [], f"denied requests reached the device: {py_device.seen()}"
