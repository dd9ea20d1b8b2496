"""One-way replication (issue 13) on loopback: both halves of `zonegate run` against `zonegate sim`
and a pymodbus device, the replica read by the pymodbus client and mbpoll, writes refused (01),
staleness (0x0B) when the transmit side stops, and `zonegate probe --replication`; the replica
over Modbus/TCP Security read by pymodbus's ModbusTlsClient, a `tls://` source that is a pymodbus
ModbusTlsServer with CERT_REQUIRED, the transmit side's own audit chain, a datagram captured
before a receive-side restart replayed after it (rejected and recorded), and an `rtu://` source
that is pymodbus's serial server (RTU framer) on a socat pty."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import threading
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

    def __init__(self, tmp: Path, device: zg.Device, auth: str = "ed25519", max_age: str = "1s",
                 source: str | None = None, receive_extra: str = "", transmit_to: int | None = None):
        self.dir = tmp
        self.udp = free_udp_port()
        to = self.udp if transmit_to is None else transmit_to
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
    source: {source or device.upstream}
    auth: {auth}
    blocks:
      - {{unit: 1, table: holding, range: 0-199, period: 100ms}}
      - {{unit: 1, table: coils, range: 0-15, period: 100ms}}
    transmit: {{to: {zg.LOOP}:{to}, key: diode.key, repeat: 2, refresh: 2s, counters: 1s}}
    receive: {{bind: {zg.LOOP}:{self.udp}, key: {rx_key}, serve: {zg.LOOP}:{self.serve}, max_age: {max_age}{receive_extra}}}
"""
        )
        self.procs: list[zg.Proc] = []

    def run(self, *extra: str, name: str = "replicate") -> zg.Proc:
        p = zg.Proc([str(zg.zonegate_bin()), "run", "-c", str(self.model), *extra], name, self.dir)
        self.procs.append(p)
        return p

    def audit(self, side: str = "receive") -> list[dict]:
        path = self.dir / f"{RID}-{side}.log"
        if not path.exists():
            return []
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
    # A `serial:` block on a source that is no bus (issue 13: RTU sources take one).
    out = run(text.replace("    auth:", "    serial: {retries: 1}\n    auth:"), "--side", "transmit")
    assert out.returncode == 2 and "rtu:// or rtu+tcp:// source only" in out.stderr, out.stderr
    # --side on a model without replications.
    out = run("zones: []\n", "--side", "receive")
    assert out.returncode == 2 and "no replications" in out.stderr, out.stderr


# ---------------------------------------------------------------- Modbus/TCP Security


def test_tls_replica_is_read_by_a_pymodbus_tls_client_and_refuses_writes(tmp_path: Path, sim_device: zg.SimDevice) -> None:
    from test_tls import Pki, client_ctx, tls_client

    pki = Pki(tmp_path / "pki")
    cert, key = pki.server("replica")
    r = Replication(tmp_path, sim_device,
                    receive_extra=f", tls: {{cert: {cert}, key: {key}, client_ca: {pki.ca}}}")
    try:
        check = subprocess.run([str(zg.zonegate_bin()), "check", str(r.model)], capture_output=True, text=True,
                               timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr
        p = r.run()
        p.wait_line(r"replication R1-HIST receive: .*mutual TLS", timeout=15)
        p.wait_line(r"replication R1-HIST transmit", timeout=15)
        sim_device.write_holding(7, [777])
        direct = sim_device.read_holding(0, 20)
        c = tls_client(r.serve, client_ctx(pki, pki.client("hist1", role="Historian")))
        assert c.connect()
        try:
            def same() -> bool:
                rr = c.read_holding_registers(0, count=20, device_id=1)
                return not rr.isError() and rr.registers == direct
            zg.wait_until(same, 10, "the TLS replica to show the device's registers")
            w = c.write_register(7, 1, device_id=1)
            assert w.isError() and w.exception_code == zg.ILLEGAL_FUNCTION, w
        finally:
            c.close()
        assert sim_device.read_holding(7, 1) == [777], "a write over TLS reached the device"
        # Plaintext Modbus to the TLS replica is never answered as Modbus.
        with socket.create_connection((zg.LOOP, r.serve), timeout=5) as s:
            s.sendall(zg.adu(1, 1, zg.read_pdu(3, 0, 1)))
            s.settimeout(3)
            try:
                got = s.recv(1024)
            except (TimeoutError, ConnectionResetError):
                got = b""
        assert not (len(got) >= 8 and got[:2] == b"\x00\x01" and got[2:4] == b"\x00\x00"), got

        def recorded() -> bool:
            a = r.audit()
            est = [e for e in a if e.get("reason") == "tls_established" and e.get("peer_subject") == "CN=hist1"]
            deny = [e for e in a if e.get("reason") == "replica_is_read_only" and e.get("peer_subject") == "CN=hist1"]
            plain = [e for e in a if e.get("kind") == "connection" and e.get("reason") == "not_tls"]
            return bool(est and deny and plain and est[0].get("role") == "Historian"
                        and deny[0].get("role") == "Historian" and len(deny[0].get("peer_fingerprint", "")) == 64)
        zg.wait_until(recorded, 10, "the TLS session, the refused write and the plaintext attempt on the chain")
        # The probe reads the TLS replica as a client (forward checks and the marked value).
        hist = (pki.d / "hist1.pem", pki.d / "hist1.key")
        out_json = tmp_path / "probe-tls.json"
        out = subprocess.run(
            [str(zg.zonegate_bin()), "probe", str(r.model), "--replication", RID, "--cert", str(hist[0]),
             "--key", str(hist[1]), "--mark", "1:150", "--timeout-ms", "1000", "--out", str(out_json)],
            capture_output=True, text=True, timeout=60,
        )
        result = json.loads(out_json.read_text())
        forward = [t for t in result["tests"] if t["name"].startswith("forward")]
        assert forward and all(t["pass"] for t in forward), out.stdout + out.stderr
        assert result["latency_ms"] is not None, out.stdout
        rep = subprocess.run([str(zg.zonegate_bin()), "report", str(r.model), "--probe", str(out_json)],
                             capture_output=True, text=True, timeout=60)
        assert "ONE-WAY REPLICATIONS" in rep.stdout and "mutual TLS" in rep.stdout, rep.stdout
        assert "replication latency" in rep.stdout, rep.stdout
    finally:
        r.stop()


def test_tls_source_is_a_pymodbus_tls_device_with_cert_required(tmp_path: Path) -> None:
    from test_tls import Pki, TlsPyDevice

    pki = Pki(tmp_path / "pki")
    dev = TlsPyDevice(pki)
    try:
        c, k = pki.client("diode-tx")
        source = f"tls://{zg.LOOP}:{dev.port}?ca={pki.ca}&cert={c}&key={k}&server_name=localhost"
        r = Replication(tmp_path, dev, source=source)
        try:
            p = r.run()
            p.wait_line(r"replication R1-HIST transmit: source tls://", timeout=15)
            zg.wait_until(lambda: zg.registers_of(replica_read(r.serve, 10, 2)) == [1010, 1011]
                          if zg.exception_of(replica_read(r.serve, 10, 2)) is None else False,
                          10, "the replica to show the TLS device's registers")
            # The transmit side's own chain: its start names the source.
            start = zg.wait_until(lambda: [e for e in r.audit("transmit")
                                           if e.get("kind") == "start" and e.get("conduit") == RID], 5,
                                  "the transmit agent's start record")
            assert start[0]["dst"] == f"{zg.LOOP}:{dev.port}", start
        finally:
            r.stop()
        # A name the device certificate does not carry: nothing is replicated, and it is recorded.
        r.model.write_text(r.model.read_text().replace("server_name=localhost", "server_name=plc.example"))
        r.procs = []
        try:
            p = r.run()
            p.wait_line(r"replication R1-HIST transmit", timeout=15)
            failed = zg.wait_until(lambda: [e for e in r.audit("transmit")
                                            if e.get("reason") == "source_read_failed"], 10,
                                   "a source_read_failed record")
            assert "TLS" in failed[0]["message"] or "certificate" in failed[0]["message"], failed[0]
            zg.wait_until(lambda: zg.exception_of(replica_read(r.serve, 10, 1)) == zg.TARGET_FAILED, 5,
                          "0x0B: the source is gone")
        finally:
            r.stop()
        stops = [e for e in r.audit("transmit") if e.get("kind") == "stop" and e.get("conduit") == RID]
        assert len(stops) == 2 and "polls=" in stops[-1]["message"], stops
    finally:
        dev.stop()


# ---------------------------------------------------------------- replay across a restart


class Tap:
    """A UDP relay between the agents that keeps every datagram and forwards while `open`."""

    def __init__(self, to: int):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((zg.LOOP, 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.to = to
        self.open = True
        self.seen: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(2048)
            except (TimeoutError, OSError):
                continue
            if len(self.seen) < 10_000:
                self.seen.append(data)
            if self.open:
                out.sendto(data, (zg.LOOP, self.to))
        out.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def test_a_datagram_captured_before_a_receive_restart_is_rejected_and_recorded_after_it(
    tmp_path: Path, sim_device: zg.SimDevice
) -> None:
    udp = free_udp_port()
    tap = Tap(udp)
    r = Replication(tmp_path, sim_device, transmit_to=tap.port)
    # The receive side binds the port the tap forwards to.
    r.model.write_text(r.model.read_text().replace(f"bind: {zg.LOOP}:{r.udp}", f"bind: {zg.LOOP}:{udp}"))
    r.udp = udp
    try:
        sim_device.write_holding(150, [1111])
        rx = r.run("--side", "receive", name="receive-1")
        rx.wait_line(r"replication R1-HIST receive", timeout=15)
        tx = r.run("--side", "transmit", name="transmit")
        tx.wait_line(r"replication R1-HIST transmit", timeout=15)
        def shows(v: int) -> bool:
            pdu = replica_read(r.serve, 150, 1)
            return zg.exception_of(pdu) is None and zg.registers_of(pdu) == [v]
        zg.wait_until(lambda: shows(1111), 10, "the replica")
        captured = tap.seen[0]
        sim_device.write_holding(150, [2222])
        zg.wait_until(lambda: shows(2222), 10, "the replica to follow")
        # Restart the receive side with nothing forwarded meanwhile.
        tap.open = False
        assert rx.stop() == 0
        state = tmp_path / f"{RID}-receive.state"
        assert state.read_text().startswith("zonegate-replicate-state 1 "), state.read_text()
        before = len([e for e in r.audit() if e.get("reason") == "replayed"])
        assert before == 0
        rx2 = r.run("--side", "receive", name="receive-2")
        rx2.wait_line(r"replication R1-HIST receive", timeout=15)
        # The replay: the first datagram the new receive side gets is the old capture.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(captured, (zg.LOOP, udp))
        rec = zg.wait_until(lambda: [e for e in r.audit() if e.get("reason") == "replayed"], 5,
                            "a replayed alert after the restart")
        assert rec[0]["kind"] == "alert" and rec[0]["conduit"] == RID, rec
        assert zg.exception_of(replica_read(r.serve, 150, 1)) == zg.TARGET_FAILED, "the old value was served"
        # The live stream resumes.
        tap.open = True
        zg.wait_until(lambda: shows(2222), 10, "the replica after the restart")
        verify = subprocess.run([str(zg.zonegate_bin()), "log", "verify", str(tmp_path / f"{RID}-receive.log")],
                                capture_output=True, text=True, timeout=30)
        assert verify.returncode == 0, verify.stdout + verify.stderr
    finally:
        r.stop()
        tap.stop()


# ---------------------------------------------------------------- Modbus RTU source


class _NoDevice:
    """The `device` of a Replication whose `source` is given."""

    upstream = "unused"


def test_rtu_source_is_a_pymodbus_serial_server_on_a_socat_pty(tmp_path: Path) -> None:
    """The transmit agent as RTU master on a pty (the gateway's RTU master), pymodbus's serial
    server with the RTU framer on the other end (units 1 and 2, holding[i] = 1000 + i on unit 1)."""
    from test_rtu import PtyPair, PyRtuDevice, UNIT_BASE, rtu_url

    line = PtyPair(tmp_path)
    dev = None
    r = None
    try:
        dev = PyRtuDevice(serial_port=line.b)
        r = Replication(tmp_path, _NoDevice(), max_age="5s", source=rtu_url(line.a))  # type: ignore[arg-type]
        r.model.write_text(r.model.read_text().replace(
            "    auth:", "    serial: {retries: 1, turnaround: 50ms}\n    auth:"))
        out = subprocess.run([str(zg.zonegate_bin()), "check", str(r.model)],
                             capture_output=True, text=True, timeout=30)
        assert "ZG-C041" not in out.stdout + out.stderr, out.stdout
        p = r.run()
        p.wait_line(r"replication R1-HIST transmit", timeout=15)
        want = [UNIT_BASE[1] + i for i in range(20)]
        client = zg.pymodbus_client(r.serve)
        try:
            def same() -> bool:
                rr = client.read_holding_registers(0, count=20, device_id=1)
                return not rr.isError() and rr.registers == want
            zg.wait_until(same, 15, "the replica to show the RTU slave's registers")
        finally:
            client.close()
        # The transmit chain names the bus as the device it read.
        def named() -> bool:
            return any(str(e.get("dst", "")).startswith("rtu://") for e in r.audit("transmit"))
        zg.wait_until(named, 5, "the rtu:// source on the transmit chain")
    finally:
        if r is not None:
            r.stop()
        if dev is not None:
            dev.stop()
        line.stop()
