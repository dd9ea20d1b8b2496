"""One-way replication (issue 13) on loopback: both halves of `zonegate run` against `zonegate sim`
and a pymodbus device, the replica read by the pymodbus client and mbpoll, writes refused (01),
staleness (0x0B) when the transmit side stops, and `zonegate probe --replication`."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
from pathlib import Path

import pytest

import zg

RID = "R1-HIST"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((zg.LOOP, 0))
        return s.getsockname()[1]


class Replication:
    """A model with one replication of `device`, its key pair, and `zonegate run` processes."""

    def __init__(self, tmp: Path, device: zg.Device, auth: str = "ed25519", max_age: str = "1s"):
        self.dir = tmp
        self.udp = free_udp_port()
        self.serve = zg.free_port()
        out = subprocess.run(
            [str(zg.zonegate_bin()), "log", "keygen", "--out", str(tmp / "diode")],
            capture_output=True, text=True, timeout=30,
        )
        assert out.returncode == 0, out.stderr
        rx_key = "diode.pub" if auth == "ed25519" else "diode.key"
        self.model = tmp / "model.yaml"
        self.model.write_text(
            f"""zones:
  - zone_id: Z3-OPS
  - zone_id: Z4-DMZ
replications:
  - replication_id: {RID}
    connects: [Z3-OPS, Z4-DMZ]
    source: {device.upstream}
    auth: {auth}
    blocks:
      - {{unit: 1, table: holding, range: 0-199, period: 100ms}}
      - {{unit: 1, table: coils, range: 0-15, period: 100ms}}
    transmit: {{to: {zg.LOOP}:{self.udp}, key: diode.key, repeat: 2, refresh: 2s}}
    receive: {{bind: {zg.LOOP}:{self.udp}, key: {rx_key}, serve: {zg.LOOP}:{self.serve}, max_age: {max_age}}}
"""
        )
        self.procs: list[zg.Proc] = []

    def run(self, *extra: str, name: str = "replicate") -> zg.Proc:
        p = zg.Proc([str(zg.zonegate_bin()), "run", "-c", str(self.model), *extra], name, self.dir)
        self.procs.append(p)
        return p

    def audit(self) -> list[dict]:
        path = self.dir / f"{RID}-receive.log"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def stop(self) -> None:
        for p in self.procs:
            p.stop()
            print(f"--- {p.name} output:\n{p.output()}")


@pytest.fixture
def replication(tmp_path: Path, device: zg.Device):
    r = Replication(tmp_path, device)
    try:
        yield r
    finally:
        r.stop()


def replica_read(port: int, address: int, count: int) -> bytes:
    with zg.Raw(port) as raw:
        return raw.request(1, struct.pack(">BHH", 3, address, count))


def test_both_halves_replicate_and_pymodbus_reads_the_replica(replication: Replication, device: zg.Device) -> None:
    p = replication.run()
    p.wait_line(r"replication R1-HIST receive", timeout=15)
    p.wait_line(r"replication R1-HIST transmit", timeout=15)
    direct = device.read_holding(0, 20)
    client = zg.pymodbus_client(replication.serve)
    try:
        def same() -> bool:
            rr = client.read_holding_registers(0, count=20, device_id=1)
            return not rr.isError() and rr.registers == direct
        zg.wait_until(same, 10, "the replica to show the device's registers")
        device.write_holding(150, [4242])
        def changed() -> bool:
            rr = client.read_holding_registers(150, count=1, device_id=1)
            return not rr.isError() and rr.registers == [4242]
        zg.wait_until(changed, 10, "the replica to follow a change")
        rc = client.read_coils(0, count=16, device_id=1)
        assert not rc.isError() and rc.bits[:16] == device.read_coils(0, 16)
        # Writes are refused with 01 and never reach the device.
        r = client.write_register(150, 1, device_id=1)
        assert r.isError() and r.exception_code == zg.ILLEGAL_FUNCTION, r
        r = client.write_coil(0, True, device_id=1)
        assert r.isError() and r.exception_code == zg.ILLEGAL_FUNCTION, r
        assert device.read_holding(150, 1) == [4242]
        # Outside the replicated blocks: 02; a unit that is not replicated: 0A.
        r = client.read_holding_registers(199, count=2, device_id=1)
        assert r.isError() and r.exception_code == zg.ILLEGAL_ADDRESS, r
        r = client.read_holding_registers(0, count=1, device_id=9)
        assert r.isError() and r.exception_code == zg.PATH_UNAVAILABLE, r
    finally:
        client.close()
    # Both refusals are on the replica's own chain (the writer may still be flushing the last).
    def both_denied() -> bool:
        denied = [e for e in replication.audit() if e.get("reason") == "replica_is_read_only"]
        return len(denied) >= 2

    zg.wait_until(both_denied, 5, "both refused writes on the replica's audit chain")


def test_mbpoll_reads_the_replica_and_is_refused_writes(replication: Replication, device: zg.Device) -> None:
    p = replication.run()
    p.wait_line(r"replication R1-HIST transmit", timeout=15)
    direct = device.read_holding(0, 5)
    def shows() -> bool:
        pdu = replica_read(replication.serve, 0, 5)
        return zg.exception_of(pdu) is None and zg.registers_of(pdu) == direct
    zg.wait_until(shows, 10, "the replica to show the device")
    # mbpoll: -r is 1-based; -1 one poll.
    out = subprocess.run(
        ["mbpoll", "-m", "tcp", "-a", "1", "-t", "4", "-r", "1", "-c", "5", "-1", "-p",
         str(replication.serve), zg.LOOP],
        capture_output=True, text=True, timeout=30,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    for i, v in enumerate(direct):
        assert f"[{i + 1}]: \t{v}" in out.stdout, out.stdout
    out = subprocess.run(
        ["mbpoll", "-m", "tcp", "-a", "1", "-t", "4", "-r", "3", "-p", str(replication.serve), zg.LOOP, "77"],
        capture_output=True, text=True, timeout=30,
    )
    assert "Illegal function" in out.stdout + out.stderr, out.stdout + out.stderr
    assert device.read_holding(2, 1) == [direct[2]]


def test_the_replica_answers_0b_after_max_age_when_the_transmit_side_stops(replication: Replication, device: zg.Device) -> None:
    rx = replication.run("--side", "receive", name="receive")
    rx.wait_line(r"replication R1-HIST receive", timeout=15)
    tx = replication.run("--side", "transmit", name="transmit")
    tx.wait_line(r"replication R1-HIST transmit", timeout=15)
    zg.wait_until(lambda: zg.exception_of(replica_read(replication.serve, 0, 1)) is None, 10, "replica")
    assert tx.stop() == 0
    zg.wait_until(
        lambda: zg.exception_of(replica_read(replication.serve, 0, 1)) == zg.TARGET_FAILED,
        5, "0x0B after max_age",
    )
    zg.wait_until(lambda: any(e.get("reason") == "stale" for e in replication.audit()), 5, "a stale alert")


def test_probe_measures_latency_and_reports_the_open_reverse_path_on_loopback(
    replication: Replication, sim_device: zg.SimDevice
) -> None:
    p = replication.run()
    p.wait_line(r"replication R1-HIST transmit", timeout=15)
    zg.wait_until(lambda: zg.exception_of(replica_read(replication.serve, 0, 1)) is None, 10, "replica")
    out_json = replication.dir / "probe.json"
    out = subprocess.run(
        [str(zg.zonegate_bin()), "probe", str(replication.model), "--replication", RID,
         "--mark", "1:150", "--timeout-ms", "500", "--out", str(out_json)],
        capture_output=True, text=True, timeout=60,
    )
    result = json.loads(out_json.read_text())
    checks = {c["name"]: c for c in result["tests"]}
    assert all(c["pass"] for n, c in checks.items() if n.startswith("forward")), out.stdout
    assert result["latency_ms"] is not None and result["latency_ms"] < 5000
    # On loopback the device is reachable from the "receive side": the probe must say so.
    assert out.returncode == 1 and any(
        not c["pass"] for n, c in checks.items() if n.startswith("reverse")
    ), out.stdout
    # `zonegate report --probe` includes the result.
    rep = subprocess.run(
        [str(zg.zonegate_bin()), "report", str(replication.model), "--probe", str(out_json)],
        capture_output=True, text=True, timeout=60,
    )
    assert rep.returncode == 0, rep.stderr
    assert "R1-HIST" in rep.stdout and "reverse" in rep.stdout, rep.stdout
    assert sim_device.read_holding(150, 1) == [0], "the marker was not restored"


def test_run_refuses_what_it_cannot_do_with_a_clear_error(tmp_path: Path, sim_device: zg.SimDevice) -> None:
    r = Replication(tmp_path, sim_device)
    text = r.model.read_text()
    z = str(zg.zonegate_bin())

    def run(model_text: str, *extra: str) -> subprocess.CompletedProcess[str]:
        m = tmp_path / "m2.yaml"
        m.write_text(model_text)
        return subprocess.run([z, "run", "-c", str(m), *extra], capture_output=True, text=True, timeout=30)

    # A receive side that is not this host: say which --side to run.
    remote = text.replace(f"bind: {zg.LOOP}:{r.udp}", f"bind: 192.0.2.7:{r.udp}")
    out = run(remote)
    assert out.returncode == 2 and "--side transmit" in out.stderr, out.stderr
    # A missing key file names the file.
    out = run(text.replace("key: diode.pub", "key: missing.pub"), "--side", "receive")
    assert out.returncode == 2 and "missing.pub" in out.stderr, out.stderr
    # An upstream kind the transmit side cannot use yet.
    out = run(text.replace(sim_device.upstream, "rtu:///dev/ttyUSB0"), "--side", "transmit")
    assert out.returncode == 2 and "not supported" in out.stderr, out.stderr
    # --side on a model without replications.
    out = run("zones: []\n", "--side", "receive")
    assert out.returncode == 2 and "no replications" in out.stderr, out.stderr
