"""Allowed traffic goes through: pymodbus and mbpoll clients, to `zonegate sim` and to pymodbus."""

from __future__ import annotations

import re
import subprocess

import zg


def test_allowed_reads_pymodbus_client(gateway: zg.Gateway, device: zg.Device) -> None:
    direct = device.read_holding(100, 10)
    client = zg.pymodbus_client(gateway.port, src=zg.HIST)
    try:
        rr = client.read_holding_registers(100, count=10, device_id=1)
        assert not rr.isError(), f"allowed FC3 read got {rr}"
        assert rr.registers == direct
        ri = client.read_input_registers(0, count=5, device_id=1)
        assert not ri.isError(), f"allowed FC4 read got {ri}"
        assert len(ri.registers) == 5
        rc = client.read_coils(0, count=8, device_id=1)
        assert not rc.isError(), f"allowed FC1 read got {rc}"
        rd = client.read_discrete_inputs(0, count=8, device_id=1)
        assert not rd.isError(), f"allowed FC2 read got {rd}"
    finally:
        client.close()


def test_allowed_writes_pymodbus_client(gateway: zg.Gateway, device: zg.Device) -> None:
    client = zg.pymodbus_client(gateway.port, src=zg.EWS)
    try:
        r = client.write_register(101, 222, device_id=1)
        assert not r.isError(), f"allowed FC6 write got {r}"
        assert device.read_holding(101, 1) == [222]
        r = client.write_registers(102, [190, 200, 210], device_id=1)
        assert not r.isError(), f"allowed FC16 write got {r}"
        assert device.read_holding(102, 3) == [190, 200, 210]
        r = client.write_coil(3, True, device_id=1)
        assert not r.isError(), f"allowed FC5 write got {r}"
        assert device.read_coils(3, 1) == [True]
        # the same client may read back (rule ews-read)
        rr = client.read_holding_registers(101, count=4, device_id=1)
        assert not rr.isError()
        assert rr.registers == [222, 190, 200, 210]
    finally:
        client.close()


def test_zone_resolution_via_networks(gateway: zg.Gateway) -> None:
    """Rule ops-status is `from: [Z2-OPS]`: both hosts of the zone may read input 100-109."""
    for src in (zg.HIST, zg.EWS):
        with zg.Raw(gateway.port, src=src) as raw:
            pdu = raw.request(1, zg.read_pdu(4, 100, 10))
            assert zg.exception_of(pdu) is None, f"{src}: FC4 100x10 answered {pdu.hex()}"
            assert len(zg.registers_of(pdu)) == 10


def _mbpoll(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = ["mbpoll", "-m", "tcp", "-p", str(port), "-a", "1", "-0", "-1", "-o", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=20)


def test_mbpoll_read_and_write(gateway: zg.Gateway, device: zg.Device) -> None:
    # mbpoll cannot choose its source address: it comes from 127.0.0.1 (rule local-tools).
    direct = device.read_holding(100, 10)
    r = _mbpoll(gateway.port, "-t", "4", "-r", "100", "-c", "10", zg.LOOP)
    assert r.returncode == 0, f"mbpoll read failed: {r.stdout}\n{r.stderr}"
    values = [int(v) for v in re.findall(r"^\[(?:\d+)\]:\s+(-?\d+)", r.stdout, re.M)]
    assert values == direct
    r = _mbpoll(gateway.port, "-t", "4", "-r", "105", zg.LOOP, "777", "778")
    assert r.returncode == 0, f"mbpoll write failed: {r.stdout}\n{r.stderr}"
    assert "Written 2 references" in r.stdout
    assert device.read_holding(105, 2) == [777, 778]


def test_mbpoll_sees_denials(gateway: zg.Gateway, device: zg.Device) -> None:
    before = device.read_holding(100, 2)
    # address outside rule local-tools (0-199) -> 0x02 Illegal data address
    r = _mbpoll(gateway.port, "-t", "4", "-r", "300", "-c", "2", zg.LOOP)
    assert r.returncode != 0
    assert "Illegal data address" in r.stderr, r.stderr
    # value outside 0..1000 -> 0x03 Illegal data value, nothing written
    r = _mbpoll(gateway.port, "-t", "4", "-r", "100", zg.LOOP, "5000", "6000")
    assert r.returncode != 0
    assert "Illegal data value" in r.stderr, r.stderr
    assert device.read_holding(100, 2) == before
    # input registers are not allowed to 127.0.0.1 at all -> 0x01 Illegal function
    r = _mbpoll(gateway.port, "-t", "3", "-r", "0", "-c", "2", zg.LOOP)
    assert r.returncode != 0
    assert "Illegal function" in r.stderr, r.stderr


def test_spec_maximum_quantities_pass(gateway: zg.Gateway, device: zg.Device) -> None:
    """The largest legal requests (FC 3 x 125, FC 16 x 123) are valid and allowed here."""
    with zg.Raw(gateway.port, src=zg.HIST) as raw:
        pdu = raw.request(1, zg.read_pdu(3, 0, 125))
        assert zg.exception_of(pdu) is None, pdu.hex()
        assert zg.registers_of(pdu) == device.read_holding(0, 125)
    values = [(7 * i) % 1000 for i in range(123)]
    with zg.Raw(gateway.port, src=zg.LOCAL) as raw:
        pdu = raw.request(1, zg.write_multiple_pdu(0, values))
        assert pdu[0] == 16, pdu.hex()
    assert device.read_holding(0, 123) == values
