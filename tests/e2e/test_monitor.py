"""The live monitor (issue 12) with real peers: a pymodbus client and a pymodbus device behind
`zonegate run`. A Force Listen Only request, an address scan and a master the baseline never
saw each become an `alert` record on the audit chain and a syslog message whose severity fits
the detector; `zonegate inventory --probe` asks the model's devices (`zonegate sim` and a
pymodbus server with device identification set) who they are, over Modbus/TCP, RTU over TCP
(pymodbus's TCP server with the RTU framer) and Modbus/TCP Security (pymodbus's TLS server,
certificates minted by openssl at run time), and says what it does not ask.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

import zg


class WatchedGateway(zg.Gateway):
    """The standard test gateway with a `monitor:` section (and optional conduit keys)."""

    def __init__(self, tmp: Path, upstream: str, monitor: dict[str, Any], **opts: Any):
        self.monitor = monitor
        super().__init__(tmp, upstream, **opts)

    def model_dict(self, **changes: Any) -> dict[str, Any]:
        d = super().model_dict(**changes)
        d["monitor"] = self.monitor
        return d

    def alerts(self) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("kind") == "alert"]


class SyslogListener:
    """A UDP syslog collector on loopback (RFC 5426: one message per datagram)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((zg.LOOP, 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="syslog", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(65536)
            except OSError:
                continue
            self.messages.append(data.decode("utf-8", "replace"))

    def alerts(self) -> list[tuple[int, dict[str, Any]]]:
        """(severity, record) of every `alert` message received."""
        out = []
        for m in list(self.messages):
            match = re.match(r"<(\d+)>1 .*? (\{.*\})$", m)
            if match and 'kind="alert"' in m:
                out.append((int(match.group(1)) % 8, json.loads(match.group(2))))
        return out

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def baseline(master: str, slave: str) -> dict[str, Any]:
    """A baseline (the JSON `zonegate analyze --write-baseline` writes) in which only `master`
    has read holding registers 0-199 of `slave` unit 1."""
    return {
        "version": 1,
        "requests": 10,
        "channels_dropped": 0,
        "channels": [
            {
                "master": master,
                "slave": slave,
                "unit": 1,
                "requests": 10,
                "first_seen_us": 1_700_000_000_000_000,
                "last_seen_us": 1_700_000_009_000_000,
                "functions": {"3": 10},
                "reads": {"holding": [[0, 199]]},
                "writes": {},
                "write_counts": {},
                "values": {},
                "polls": [],
            }
        ],
    }


def test_listen_only_address_scan_and_new_master_become_alert_records_and_syslog(
    gateway_factory: Any, py_device: zg.PyDevice, tmp_path: Path
) -> None:
    collector = SyslogListener()
    try:
        base = tmp_path / "baseline.json"
        base.write_text(json.dumps(baseline(zg.HIST, zg.LOOP)), encoding="utf-8")
        rules = zg.standard_rules() + [
            # The historian may read the whole holding table: the device (400 registers)
            # answers 0x02 past its end, which is what an address scan collects.
            {"id": "hist-wide", "from": ["HIST-01"], "functions": ["read_holding_registers"],
             "holding": "0-65535"},
        ]
        monitor = {"baseline": str(base), "thresholds": {"address_scan_count": 3}}
        d = tmp_path / "gw"
        d.mkdir()
        gw = WatchedGateway(
            d, py_device.upstream, monitor, rules=rules,
            extra_audit={"syslog": {"address": f"{zg.LOOP}:{collector.port}", "transport": "udp"}},
        )
        try:
            # 1. FC 8/04 Force Listen Only from the historian: no rule allows diagnostics, so the
            # gateway refuses it (0x01), and the monitor still sees it.
            c = zg.pymodbus_client(gw.port, src=zg.HIST)
            c.diag_force_listen_only(device_id=1, no_response_expected=True)
            c.close()
            # 2. An address scan: reads past the device's 400 registers get 0x02 from it.
            c = zg.pymodbus_client(gw.port, src=zg.HIST)
            for address in (1000, 2000, 3000):
                rr = c.read_holding_registers(address, count=1, device_id=1)
                assert rr.isError(), rr
                assert rr.exception_code == 2, rr
            ok = c.read_holding_registers(0, count=2, device_id=1)
            assert not ok.isError() and ok.registers == [1000, 1001]
            c.close()
            # 3. A master the baseline never saw (the EWS reads what the historian reads).
            c = zg.pymodbus_client(gw.port, src=zg.EWS)
            rr = c.read_holding_registers(0, count=1, device_id=1)
            assert not rr.isError(), rr
            c.close()

            wanted = {"diagnostics_listen_only", "address_scan", "new_master"}
            zg.wait_until(
                lambda: wanted <= {a.get("reason") for a in gw.alerts()},
                10, f"alerts {wanted} in {gw.events_path}",
            )
            by_reason = {a["reason"]: a for a in gw.alerts()}
            lo = by_reason["diagnostics_listen_only"]
            assert lo["src"].startswith(zg.HIST + ":") and lo["fc"] == 8 and lo["unit"] == 1
            assert lo["conduit"] == zg.CONDUIT and "seq" in lo and "hash" in lo
            assert by_reason["address_scan"]["src"].startswith(zg.HIST + ":")
            assert "3 illegal-data-address" in by_reason["address_scan"]["message"]
            assert by_reason["new_master"]["src"].startswith(zg.EWS + ":")
            # The historian is in the baseline: no new_master for it.
            assert not any(a["reason"] == "new_master" and a["src"].startswith(zg.HIST + ":")
                           for a in gw.alerts())

            # Syslog: the same records, the severity by detector (2 critical, 3 error, 4 warning).
            zg.wait_until(
                lambda: wanted <= {r.get("reason") for _, r in collector.alerts()},
                10, "the alerts on syslog",
            )
            sev = {r["reason"]: s for s, r in collector.alerts()}
            assert sev["diagnostics_listen_only"] == 2
            assert sev["address_scan"] == 3
            assert sev["new_master"] == 4
        finally:
            status = gw.stop()
            print(f"--- gateway (exit {status}) output:\n{gw.proc.output()}")
        verify = subprocess.run(
            [str(zg.zonegate_bin()), "log", "verify", str(gw.events_path)],
            capture_output=True, text=True, timeout=30,
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
    finally:
        collector.stop()


def probe_model(path: Path, upstreams: list[tuple[str, str]]) -> None:
    """A model whose conduits' upstreams are the devices to ask (conduit id, tcp://...)."""
    conduits = []
    for i, (cid, upstream) in enumerate(upstreams):
        conduits.append({
            "conduit_id": cid,
            "connects": ["Z1", "Z2"],
            "gateway": {"listen": f"{zg.LOOP}:{zg.free_port()}", "upstream": upstream},
            "rules": [],
        })
        del i
    m = {
        "zones": [
            {"zone_id": "Z1", "assets": [{"id": "AHU-PLC", "address": zg.LOOP, "unit_ids": [1]}]},
            {"zone_id": "Z2", "assets": ["operators"]},
        ],
        "conduits": conduits,
    }
    path.write_text(zg.to_yaml(m) + "\n", encoding="utf-8")


def inventory_probe(model: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(zg.zonegate_bin()), "inventory", "--probe", str(model), "--timeout", "3"],
        capture_output=True, text=True, timeout=60,
    )


def test_inventory_probe_asks_the_sim_and_a_pymodbus_device(
    sim_device: zg.SimDevice, tmp_path: Path
) -> None:
    identity = {
        "VendorName": "Acme Controls",
        "ProductCode": "AC-4000",
        "MajorMinorRevision": "2.7",
        "ProductName": "Acme AHU controller",
    }
    py = zg.PyDevice(identity=identity)
    try:
        for name, upstream, expect in (
            ("sim", sim_device.upstream, ("zonegate", "ZG-SIM-HVAC")),
            ("pymodbus", py.upstream, ("Acme Controls", "AC-4000")),
        ):
            model = tmp_path / f"{name}.yaml"
            probe_model(model, [("C1", upstream)])
            r = inventory_probe(model)
            assert r.returncode == 0, r.stdout + r.stderr
            out = r.stdout
            assert "  - id: AHU-PLC" in out, out
            assert f'vendor: "{expect[0]}"' in out, out
            assert f'model: "{expect[1]}"' in out, out
            assert "firmware: " in out, out
            if name == "pymodbus":
                assert "Acme AHU controller" in out, out
                assert "2.7" in out, out
            else:
                # The sim answers FC 17 as well.
                assert "FC 17 server id 5aff" in out, out
        # Only the model's devices were asked: the pymodbus server saw FC 43 (and FC 17),
        # nothing else.
        functions = {fc for fc, _ in py.seen()}
        assert 43 in functions and functions <= {43, 17}, py.seen()
    finally:
        py.stop()


IDENTITY = {
    "VendorName": "Acme Controls",
    "ProductCode": "AC-4000",
    "MajorMinorRevision": "2.7",
    "ProductName": "Acme AHU controller",
}


def assert_identified(r: subprocess.CompletedProcess[str], how: str) -> None:
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "  - id: AHU-PLC" in out, out
    assert 'vendor: "Acme Controls"' in out, out
    assert 'model: "AC-4000"' in out, out
    assert "Acme AHU controller" in out, out
    assert how in out, out


def test_inventory_probe_asks_an_rtu_over_tcp_converter(tmp_path: Path) -> None:
    """Regression (issue 12): `rtu+tcp://` upstreams were skipped."""
    from test_rtu import PyRtuDevice

    port = zg.free_port()
    dev = PyRtuDevice(tcp_port=port, identity=IDENTITY)
    try:
        model = tmp_path / "rtu.yaml"
        probe_model(model, [("C1", f"rtu+tcp://{zg.LOOP}:{port}")])
        assert_identified(inventory_probe(model), "(RTU over TCP)")
    finally:
        dev.stop()


def test_inventory_probe_asks_a_tls_device_with_the_upstreams_certificates(tmp_path: Path) -> None:
    """Regression (issue 12): `tls://` upstreams were skipped. The device requires a client
    certificate; the upstream's `ca`, `cert`, `key` (relative to the model, as the gateway
    reads them) and `server_name` are what the probe uses."""
    import shutil

    import pytest

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (make deps)")
    from test_tls import Pki, TlsPyDevice

    pki = Pki(tmp_path / "pki")
    dev = TlsPyDevice(pki, identity=IDENTITY)
    try:
        pki.client("gateway-client")
        model = tmp_path / "tls.yaml"
        up = (f"tls://{zg.LOOP}:{dev.port}?ca=pki/ca.pem&cert=pki/gateway-client.pem"
              "&key=pki/gateway-client.key&server_name=localhost")
        probe_model(model, [("C1", up)])
        assert_identified(inventory_probe(model), "(Modbus/TCP Security)")
        # A name the device certificate does not carry: the handshake fails, and says so.
        probe_model(model, [("C1", up.replace("server_name=localhost", "server_name=plc.example"))])
        r = inventory_probe(model)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "TLS handshake failed" in r.stdout, r.stdout
    finally:
        dev.stop()


def test_inventory_probe_says_it_skips_a_serial_line(tmp_path: Path, sim_device: zg.SimDevice) -> None:
    """An `rtu://` line is the gateway's to drive: skipped with a reason, never silently."""
    model = tmp_path / "serial.yaml"
    probe_model(model, [("C1", sim_device.upstream), ("C2", "rtu:///dev/ttyZG9?baud=9600&parity=none")])
    r = inventory_probe(model)
    assert r.returncode == 0, r.stdout + r.stderr
    assert ("conduit C2: skipped: serial line rtu:///dev/ttyZG9 is probed through the gateway's "
            "conduit (--through-gateway), not directly") in r.stderr, r.stderr
