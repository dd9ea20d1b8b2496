"""Modbus/TCP Security (issue 10) with real peers; certificates made at run time with openssl.

- Client: pymodbus `ModbusTlsClient` with an `ssl.SSLContext` holding a client certificate.
- Device: pymodbus `ModbusTlsServer` with `CERT_REQUIRED`, behind `upstream: tls://`.
- Handshake cases: `openssl s_client` (no certificate, TLS 1.1) and Python's ssl module.
- Minting: `openssl req` / `openssl x509` (role: -addext 1.3.6.1.4.1.50316.802.1=ASN1:UTF8String:..)
  and `openssl ca` (expired, not yet valid, revoked + CRL).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import zg

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed (make deps)")

ROLE_OID = "1.3.6.1.4.1.50316.802.1"


def sh(*args: str, cwd: Path, stdin: str | None = None) -> str:
    r = subprocess.run(list(args), cwd=cwd, input=stdin, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"{' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"
    return r.stdout


CA_CONF = """[ ca ]
default_ca = lab
[ lab ]
dir = {d}
database = {d}/index.txt
new_certs_dir = {d}/newcerts
certificate = {d}/ca.pem
private_key = {d}/ca.key
serial = {d}/serial
crlnumber = {d}/crlnumber
default_md = sha256
default_crl_days = 30
policy = any
unique_subject = no
copy_extensions = copy
[ any ]
commonName = supplied
"""


class Pki:
    """A lab CA in `d` made with openssl; each certificate is NAME.pem + NAME.key."""

    def __init__(self, d: Path, cn: str = "e2e lab CA"):
        self.d = d
        d.mkdir(parents=True, exist_ok=True)
        (d / "newcerts").mkdir(exist_ok=True)
        (d / "index.txt").write_text("")
        (d / "serial").write_text("1000\n")
        (d / "crlnumber").write_text("1000\n")
        (d / "ca.conf").write_text(CA_CONF.format(d=d))
        sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
           "-keyout", "ca.key", "-out", "ca.pem", "-days", "30", "-subj", f"/CN={cn}",
           "-addext", "basicConstraints=critical,CA:TRUE",
           "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature", cwd=d)

    @property
    def ca(self) -> Path:
        return self.d / "ca.pem"

    def csr(self, name: str, *ext: str) -> None:
        args = ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}"]
        for e in ext:
            args += ["-addext", e]
        sh(*args, cwd=self.d)

    def sign(self, name: str, *ext: str) -> tuple[Path, Path]:
        """openssl x509 -req: a valid certificate (extensions of the request copied)."""
        self.csr(name, *ext)
        sh("openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
           "-CAcreateserial", "-days", "10", "-copy_extensions", "copyall", "-out", f"{name}.pem", cwd=self.d)
        return self.d / f"{name}.pem", self.d / f"{name}.key"

    def ca_sign(self, name: str, start: str, end: str, *ext: str) -> tuple[Path, Path]:
        """openssl ca with explicit dates (YYYYMMDDHHMMSSZ)."""
        self.csr(name, *ext)
        sh("openssl", "ca", "-batch", "-config", "ca.conf", "-in", f"{name}.csr", "-out", f"{name}.pem",
           "-startdate", start, "-enddate", end, "-notext", cwd=self.d)
        return self.d / f"{name}.pem", self.d / f"{name}.key"

    def server(self, name: str = "gateway") -> tuple[Path, Path]:
        return self.sign(name, "subjectAltName=DNS:localhost,IP:127.0.0.1", "extendedKeyUsage=serverAuth")

    def client(self, name: str, role: str | None = None, raw: str | None = None) -> tuple[Path, Path]:
        ext = ["extendedKeyUsage=clientAuth"]
        if role is not None:
            ext.append(f"{ROLE_OID}=ASN1:UTF8String:{role}")
        if raw is not None:
            ext.append(f"{ROLE_OID}={raw}")
        return self.sign(name, *ext)

    def revoke(self, cert: Path) -> Path:
        sh("openssl", "ca", "-batch", "-config", "ca.conf", "-revoke", str(cert), cwd=self.d)
        sh("openssl", "ca", "-batch", "-config", "ca.conf", "-gencrl", "-out", "ca.crl", cwd=self.d)
        return self.d / "ca.crl"


def client_ctx(pki: Pki, cert: tuple[Path, Path] | None, version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(pki.ca))
    # The sync pymodbus client wraps without server_hostname; the CA is still verified.
    ctx.check_hostname = False
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    if version is not None:
        ctx.minimum_version = version
        ctx.maximum_version = version
    return ctx


def tls_client(port: int, ctx: ssl.SSLContext) -> Any:
    from pymodbus.client import ModbusTlsClient

    return ModbusTlsClient(zg.LOOP, sslctx=ctx, port=port, source_address=(zg.HIST, 0), timeout=3, retries=0)


ROLE_RULES = [
    {"id": "operator-read", "from": ["HIST-01"], "roles": ["Operator", "Engineer"],
     "functions": ["read_holding_registers"], "holding": "0-199"},
    {"id": "engineer-write", "from": ["HIST-01"], "roles": ["Engineer"],
     "functions": ["write_single_register"], "holding": "100-109", "values": {"min": 180, "max": 240}},
    {"id": "anyone-input", "from": ["HIST-01"], "functions": ["read_input_registers"], "input": "0-99"},
    # openssl s_client cannot pick a source address: 127.0.0.1 may connect (and read input).
    {"id": "local-input", "from": ["127.0.0.1/32"], "functions": ["read_input_registers"], "input": "0-99"},
]


def tls_block(pki: Pki, **more: Any) -> dict[str, Any]:
    cert, key = (pki.d / "gateway.pem", pki.d / "gateway.key")
    if not cert.exists():
        pki.server()
    block: dict[str, Any] = {"cert": str(cert), "key": str(key), "client_ca": str(pki.ca)}
    block.update(more)
    return {"tls": block}


def connection_events(gw: zg.Gateway, reason: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    return zg.wait_until(
        lambda: [e for e in gw.events() if e.get("kind") == "connection" and e.get("reason") == reason],
        timeout, f"a connection record with reason {reason}")


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path / "pki")


def test_tls_operator_reads_and_is_refused_a_write(gateway_factory, sim_device, pki: Pki) -> None:  # type: ignore[no-untyped-def]
    gw = gateway_factory(sim_device.upstream, rules=ROLE_RULES, extra_gateway=tls_block(pki))
    op = pki.client("op1", role="Operator")
    c = tls_client(gw.port, client_ctx(pki, op))
    assert c.connect()
    r = c.read_holding_registers(100, count=2, device_id=1)
    assert not r.isError(), r
    w = c.write_register(100, 200, device_id=1)
    assert w.isError() and w.exception_code == zg.ILLEGAL_FUNCTION, w
    c.close()
    evs = gw.wait_request_events(2)
    for e in evs:
        assert e["role"] == "Operator", e
        assert e["peer_subject"] == "CN=op1", e
        assert len(e["peer_fingerprint"]) == 64, e
    # Denied with 01: only the role stood in the way, and the record says whose rule it was.
    assert evs[-1]["decision"] == "deny" and evs[-1]["reason"] == "role_not_allowed", evs[-1]
    assert evs[-1]["rule"] == "engineer-write", evs[-1]


def test_tls_engineer_writes_and_roles_outcomes(gateway_factory, sim_device, pki: Pki) -> None:  # type: ignore[no-untyped-def]
    gw = gateway_factory(sim_device.upstream, rules=ROLE_RULES, extra_gateway=tls_block(pki))
    eng = tls_client(gw.port, client_ctx(pki, pki.client("eng1", role="Engineer")))
    assert eng.connect()
    assert not eng.write_register(100, 200, device_id=1).isError()
    eng.close()
    # No role, and a bare OCTET STRING without the UTF8String tag: the null role.
    for name, kwargs, why in [("norole", {}, "role_absent"),
                              ("bare", {"raw": "DER:4F70657261746F72"}, "role_not_utf8string")]:
        c = tls_client(gw.port, client_ctx(pki, pki.client(name, **kwargs)))
        assert c.connect(), name
        r = c.read_holding_registers(100, count=1, device_id=1)
        assert r.isError() and r.exception_code == zg.ILLEGAL_FUNCTION, (name, r)
        assert not c.read_input_registers(0, count=1, device_id=1).isError(), name
        c.close()
        rec = [e for e in connection_events(gw, why) if e.get("peer_subject") == f"CN={name}"]
        assert rec and "role" not in rec[0], rec


@pytest.mark.parametrize("case", ["no_certificate", "other_ca", "expired", "not_yet_valid", "revoked"])
def test_tls_handshake_refusals(gateway_factory, sim_device, pki: Pki, tmp_path: Path, case: str) -> None:  # type: ignore[no-untyped-def]
    revoked = None
    # `openssl ca` keeps the index a CRL is made from: the revoked certificate is minted by it.
    if case == "revoked":
        revoked = pki.ca_sign("revoked2", "20260101000000Z", "20991231000000Z",
                              "extendedKeyUsage=clientAuth", f"{ROLE_OID}=ASN1:UTF8String:Operator")
        crl = pki.revoke(revoked[0])
        extra = tls_block(pki, crl=str(crl))
    else:
        extra = tls_block(pki)
    gw = gateway_factory(sim_device.upstream, rules=ROLE_RULES, extra_gateway=extra)
    if case == "no_certificate":
        # openssl s_client: no certificate -> the gateway's alert 116 (certificate required).
        # TLS 1.2: the refusal comes within the handshake (under 1.3 it follows the client's
        # Finished, after s_client may already have quit on its empty input).
        r = subprocess.run(["openssl", "s_client", "-connect", f"{zg.LOOP}:{gw.port}", "-CAfile", str(pki.ca),
                            "-tls1_2"], input="", capture_output=True, text=True, timeout=20)
        assert "alert" in (r.stdout + r.stderr).lower(), r.stderr
        reason = "no_client_certificate"
    else:
        cert = {
            "other_ca": lambda: Pki(tmp_path / "other", "rogue CA").client("op", role="Operator"),
            "expired": lambda: pki.ca_sign("old", "20200101000000Z", "20210101000000Z",
                                           "extendedKeyUsage=clientAuth"),
            "not_yet_valid": lambda: pki.ca_sign("early", "20900101000000Z", "20910101000000Z",
                                                 "extendedKeyUsage=clientAuth"),
            "revoked": lambda: revoked,
        }[case]()
        c = tls_client(gw.port, client_ctx(pki, cert))
        ok = c.connect()
        if ok:  # TLS 1.3: the alert may come after the client's handshake; the request fails
            try:
                r = c.read_holding_registers(100, count=1, device_id=1)
                assert r.isError(), r
            except Exception:  # noqa: BLE001 - a connection error is the expected outcome
                pass
        c.close()
        reason = {"other_ca": "certificate_unknown_issuer", "expired": "certificate_expired",
                  "not_yet_valid": "certificate_not_yet_valid", "revoked": "certificate_revoked"}[case]
    rec = connection_events(gw, reason)
    assert rec[0]["src"] == (zg.LOOP if case == "no_certificate" else zg.HIST), rec
    assert gw.request_events() == [], "no request of a refused client reached the policy"


def test_tls_1_1_and_plaintext_are_refused(gateway_factory, sim_device, pki: Pki) -> None:  # type: ignore[no-untyped-def]
    gw = gateway_factory(sim_device.upstream, rules=ROLE_RULES, extra_gateway=tls_block(pki))
    op = pki.client("op11", role="Operator")
    r = subprocess.run(["openssl", "s_client", "-connect", f"{zg.LOOP}:{gw.port}", "-CAfile", str(pki.ca),
                        "-cert", str(op[0]), "-key", str(op[1]), "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"],
                       input="", capture_output=True, text=True, timeout=20)
    out = r.stdout + r.stderr
    assert r.returncode != 0 or "Cipher is (NONE)" in out, out
    # Plaintext Modbus to the TLS port is never answered as Modbus.
    with socket.create_connection((zg.LOOP, gw.port), timeout=5) as s:
        s.sendall(zg.adu(1, 1, zg.read_pdu(3, 100, 1)))
        s.settimeout(5)
        got = b""
        try:
            while True:
                chunk = s.recv(1024)
                if not chunk:
                    break
                got += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    assert not (len(got) >= 8 and got[:2] == b"\x00\x01" and got[2:4] == b"\x00\x00"), got
    connection_events(gw, "not_tls")


def test_tls_resumed_session_keeps_the_role(gateway_factory, sim_device, pki: Pki) -> None:  # type: ignore[no-untyped-def]
    gw = gateway_factory(sim_device.upstream, rules=ROLE_RULES, extra_gateway=tls_block(pki))
    op = pki.client("opres", role="Operator")
    ctx = client_ctx(pki, op, ssl.TLSVersion.TLSv1_2)
    session = None
    for _ in range(2):
        raw = socket.create_connection((zg.LOOP, gw.port), timeout=5, source_address=(zg.HIST, 0))
        s = ctx.wrap_socket(raw, session=session)
        s.sendall(zg.adu(1, 1, zg.write_single_pdu(100, 200)))
        answer = s.recv(260)
        assert zg.exception_of(answer[7:]) == zg.ILLEGAL_FUNCTION, answer
        session = s.session
        resumed = s.session_reused
        s.close()
    assert resumed, "the second handshake resumed the TLS 1.2 session"
    rec = zg.wait_until(lambda: [e for e in gw.events() if e.get("kind") == "connection"
                                 and "resumed" in e.get("message", "")], 5, "a resumed session record")
    assert rec[0]["role"] == "Operator"


def test_tls_reload_with_a_bad_key_keeps_the_settings(gateway_factory, sim_device, pki: Pki) -> None:  # type: ignore[no-untyped-def]
    gw = gateway_factory(sim_device.upstream, rules=ROLE_RULES, extra_gateway=tls_block(pki))
    op = pki.client("opr", role="Operator")
    c = tls_client(gw.port, client_ctx(pki, op))
    assert c.connect()
    assert not c.read_holding_registers(100, count=1, device_id=1).isError()
    (pki.d / "gateway.key").write_text("-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n")
    # The file watcher sees the change; the reload is refused and names the file.
    rej = zg.wait_until(lambda: [e for e in gw.events() if e.get("kind") == "policy_rejected"], 10,
                        "a policy_rejected record")
    assert "gateway.key" in rej[0]["message"], rej
    assert not c.read_holding_registers(100, count=1, device_id=1).isError(), "the session survives"
    c.close()
    c2 = tls_client(gw.port, client_ctx(pki, op))
    assert c2.connect()
    assert not c2.read_holding_registers(100, count=1, device_id=1).isError(), "old settings in force"
    c2.close()


class TlsPyDevice(zg.Device):
    """pymodbus's ModbusTlsServer with CERT_REQUIRED: a Modbus/TCP Security device."""

    kind = "pymodbus-tls"

    def __init__(self, pki: Pki, identity: dict[str, str] | None = None):
        """`identity`: what it answers to FC 43/14 (pymodbus ModbusDeviceIdentification keys)."""
        from pymodbus.server import ModbusTlsServer
        from pymodbus.simulator import DataType, SimData
        from pymodbus.simulator import SimDevice as PySimDevice

        cert, key = pki.sign("device", "subjectAltName=DNS:localhost,IP:127.0.0.1", "extendedKeyUsage=serverAuth")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(cert), str(key))
        ctx.load_verify_locations(str(pki.ca))
        ctx.verify_mode = ssl.CERT_REQUIRED
        port = zg.free_port()
        self._loop = asyncio.new_event_loop()
        self._server: Any = None
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)

            async def main() -> None:
                co = [SimData(0, count=200, values=False, datatype=DataType.BITS)]
                di = [SimData(0, count=200, values=True, datatype=DataType.BITS)]
                hr = [SimData(0, values=[1000 + i for i in range(200)], datatype=DataType.REGISTERS)]
                ir = [SimData(0, values=[2000 + i for i in range(200)], datatype=DataType.REGISTERS)]
                dev = PySimDevice(0, simdata=(co, di, hr, ir))
                ident = None
                if identity is not None:
                    from pymodbus import ModbusDeviceIdentification

                    ident = ModbusDeviceIdentification(info_name=identity)
                self._server = ModbusTlsServer(dev, address=(zg.LOOP, port), sslctx=ctx, identity=ident)
                started.set()
                await self._server.serve_forever()

            self._loop.run_until_complete(main())

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        started.wait(10)
        zg.wait_until(lambda: zg.port_open(zg.LOOP, port), 10, "the pymodbus TLS server")
        super().__init__(zg.LOOP, port)

    def stop(self) -> None:
        if self._server is not None and self._loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop).result(5)
            except Exception:  # noqa: BLE001
                pass
        self._thread.join(5)


def test_tls_upstream_to_a_pymodbus_tls_device(gateway_factory, pki: Pki) -> None:  # type: ignore[no-untyped-def]
    dev = TlsPyDevice(pki)
    try:
        gcert, gkey = pki.client("gateway-client")
        up = (f"tls://{zg.LOOP}:{dev.port}?ca={pki.ca}&cert={gcert}&key={gkey}&server_name=localhost")
        gw = gateway_factory(up)
        c = zg.pymodbus_client(gw.port, src=zg.HIST)
        for _ in range(3):  # connections are reused: one request in flight per TLS record
            r = c.read_holding_registers(10, count=2, device_id=1)
            assert not r.isError() and r.registers == [1010, 1011], r
        c.close()
        # A device name the certificate does not carry: 0x0A and why.
        gw.write_model(text=(zg.to_yaml(gw.model_dict()) + "\n").replace("server_name=localhost",
                                                                         "server_name=plc.example"))
        zg.wait_until(lambda: [e for e in gw.events() if e.get("kind") == "policy_reload"], 10, "the reload")
        c = zg.pymodbus_client(gw.port, src=zg.HIST)
        r = c.read_holding_registers(10, count=1, device_id=1)
        assert r.isError() and r.exception_code == zg.PATH_UNAVAILABLE, r
        c.close()
        connection_events(gw, "upstream_tls_failed")
    finally:
        dev.stop()


def _probe(model: Path, conduit: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(zg.zonegate_bin()), "probe", str(model), "--conduit", conduit,
                           "--from", zg.HIST, *extra], capture_output=True, text=True, timeout=60)


def test_probe_over_tls_as_a_role(gateway_factory, sim_device, pki: Pki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`zonegate probe --cert/--key/--ca`: the plan follows the certificate's role, every test
    passes against the live TLS listener, and a client without a certificate is refused."""
    gw = gateway_factory(sim_device.upstream, rules=ROLE_RULES, extra_gateway=tls_block(pki))
    conduit = gw.model_dict()["conduits"][0]["conduit_id"]
    before = sim_device.read_holding(100, 10)
    for role in ("Operator", "Engineer"):
        cert, key = pki.client(f"probe-{role.lower()}", role=role)
        out = tmp_path / f"probe-{role}.json"
        r = _probe(gw.model_path, conduit, "--connect", f"{zg.LOOP}:{gw.port}", "--cert", str(cert),
                   "--key", str(key), "--ca", str(pki.ca), "--out", str(out))
        assert r.returncode == 0, r.stdout + r.stderr
        assert f"role {role}" in r.stdout, r.stdout
        assert "PASS no-client-certificate" in r.stdout, r.stdout
        run = json.loads(out.read_text())
        runs = run if isinstance(run, list) else [run]
        assert runs[-1]["tls"]["role"] == role, runs[-1]
    # Plaintext probing of a TLS conduit is refused with a clear error, not a hang.
    r = _probe(gw.model_path, conduit, "--connect", f"{zg.LOOP}:{gw.port}")
    assert r.returncode == 2 and "--cert" in r.stderr, r.stdout + r.stderr
    assert sim_device.read_holding(100, 10) == before, "the probe changed a value"
