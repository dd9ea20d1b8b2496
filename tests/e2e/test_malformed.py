"""Malformed input is never forwarded: broken frames close the connection, bad PDUs get 0x03/0x01."""

from __future__ import annotations

import struct

import pytest

import zg


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(zg.adu(1, 1, zg.write_single_pdu(100, 200), protocol=1), id="protocol-id-1"),
        pytest.param(zg.adu(1, 1, zg.write_single_pdu(100, 200), protocol=0xFFFF), id="protocol-id-ffff"),
        pytest.param(zg.adu(1, 1, b"", length=1), id="length-1"),
        pytest.param(zg.adu(1, 1, b"", length=0), id="length-0"),
        pytest.param(zg.adu(1, 1, b"\x06" + b"\x00" * 300, length=302), id="length-302"),
    ],
)
def test_broken_frame_closes_connection(gateway: zg.Gateway, device: zg.Device, frame: bytes) -> None:
    before = device.read_holding(100, 1)
    if isinstance(device, zg.PyDevice):
        device.clear()
    with zg.Raw(gateway.port, src=zg.EWS) as raw:  # EWS may write 100 with 200 in a good frame
        raw.send(frame)
        out = raw.outcome(3)
        assert out == "closed", f"broken frame: connection not closed ({out}, got {raw.buf.hex()!r})"
    if isinstance(device, zg.PyDevice):
        assert device.seen() == [], f"a broken frame reached the device: {device.seen()}"
    assert device.read_holding(100, 1) == before


@pytest.mark.parametrize(
    "src,pdu,code",
    [
        pytest.param(zg.HIST, zg.read_pdu(3, 100, 0), zg.ILLEGAL_VALUE, id="fc3-quantity-0"),
        pytest.param(zg.HIST, zg.read_pdu(3, 100, 126), zg.ILLEGAL_VALUE, id="fc3-quantity-126"),
        pytest.param(zg.HIST, zg.read_pdu(1, 0, 2001), zg.ILLEGAL_VALUE, id="fc1-quantity-2001"),
        pytest.param(zg.HIST, zg.read_pdu(3, 100, 2) + b"\x00", zg.ILLEGAL_VALUE, id="fc3-trailing-byte"),
        pytest.param(zg.HIST, b"\x03\x00\x64", zg.ILLEGAL_VALUE, id="fc3-truncated"),
        pytest.param(zg.EWS, zg.write_multiple_pdu(100, [200, 200], byte_count=5), zg.ILLEGAL_VALUE, id="fc16-byte-count-mismatch"),
        pytest.param(zg.EWS, struct.pack(">BHHB", 16, 100, 0, 0), zg.ILLEGAL_VALUE, id="fc16-quantity-0"),
        pytest.param(zg.EWS, struct.pack(">BHH", 5, 1, 0x1234), zg.ILLEGAL_VALUE, id="fc5-bad-coil-value"),
        pytest.param(zg.HIST, b"\x41\x00\x00", zg.ILLEGAL_FUNCTION, id="unknown-function-0x41"),
    ],
)
def test_invalid_pdu_gets_exception_and_is_not_forwarded(
    gateway: zg.Gateway, device: zg.Device, src: str, pdu: bytes, code: int
) -> None:
    before = device.read_holding(100, 2)
    if isinstance(device, zg.PyDevice):
        device.clear()
    with zg.Raw(gateway.port, src=src) as raw:
        tid = raw.next_tid()
        raw.send(zg.adu(tid, 1, pdu))
        rtid, unit, rpdu = raw.recv_adu(timeout=5)
        assert rtid == tid and unit == 1
        assert rpdu == bytes([pdu[0] | 0x80, code]), f"answer {rpdu.hex()}, expected exception {code:#04x}"
        # the connection stays usable
        ok = raw.request(1, zg.read_pdu(3, 100, 2))
        assert zg.exception_of(ok) is None
    if isinstance(device, zg.PyDevice):
        fcs = [fc for fc, _ in device.seen()]
        assert fcs == [3], f"the invalid request reached the device: {device.seen()}"
    assert device.read_holding(100, 2) == before


def test_monitor_mode_never_forwards_malformed(gateway_factory, py_device: zg.PyDevice) -> None:  # type: ignore[no-untyped-def]
    """Monitor mode forwards what the policy would deny, but never what is not valid Modbus."""
    gw = gateway_factory(py_device.upstream, mode="monitor")
    py_device.clear()
    with zg.Raw(gw.port, src=zg.ROGUE) as raw:
        pdu = raw.request(1, zg.read_pdu(3, 100, 0))
        assert pdu == bytes([0x83, zg.ILLEGAL_VALUE]), pdu.hex()
        pdu = raw.request(1, zg.write_multiple_pdu(100, [1, 2], byte_count=3))
        assert pdu == bytes([0x90, zg.ILLEGAL_VALUE]), pdu.hex()
        raw.send(zg.adu(9, 1, zg.write_single_pdu(100, 5), protocol=7))
        assert raw.outcome(3) == "closed"
    assert py_device.seen() == [], f"monitor mode forwarded malformed input: {py_device.seen()}"
    assert py_device.read_holding(100, 2) == [1100, 1101]
