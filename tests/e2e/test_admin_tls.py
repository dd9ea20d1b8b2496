"""The admin endpoint over HTTPS with mutual TLS (issue 9, `admin: {tls: {cert, key, client_ca}}`).

The lab PKI is made at run time with `zonegate cert`: the operators' CA (the admin server's
certificate and an operator's client certificate) and a second, foreign CA. Debian's curl is
the client: with the operator's certificate it reads /healthz and /metrics; without a
certificate, or with one from the foreign CA, the handshake is refused.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Callable

import pytest

import zg

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (make deps)")


def cert(zonegate_bin: Path, *args: str) -> None:
    r = subprocess.run([str(zonegate_bin), "cert", *args], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r


def curl(url: str, ca: Path, client: tuple[Path, Path] | None) -> subprocess.CompletedProcess[str]:
    args = ["curl", "--silent", "--show-error", "--max-time", "5", "--cacert", str(ca)]
    if client is not None:
        args += ["--cert", str(client[0]), "--key", str(client[1])]
    return subprocess.run([*args, "--write-out", "\n%{http_code}", url], capture_output=True, text=True, timeout=15)


def test_admin_mutual_tls_with_curl(
    gateway_factory: Callable[..., zg.Gateway], sim_device: zg.SimDevice, zonegate_bin: Path, tmp_path: Path
) -> None:
    ops, other = tmp_path / "ops-pki", tmp_path / "other-pki"
    cert(zonegate_bin, "ca", "--dir", str(ops))
    cert(zonegate_bin, "server", "--dir", str(ops), "--name", "admin", "--san", "127.0.0.1")
    cert(zonegate_bin, "client", "--dir", str(ops), "--name", "operator")
    cert(zonegate_bin, "ca", "--dir", str(other))
    cert(zonegate_bin, "client", "--dir", str(other), "--name", "intruder")

    port = zg.free_port()
    gateway_factory(
        sim_device.upstream,
        admin={
            # Off loopback would be allowed too: mutual TLS stands in for the token.
            "listen": f"{zg.LOOP}:{port}",
            "tls": {"cert": str(ops / "admin.pem"), "key": str(ops / "admin.key"), "client_ca": str(ops / "ca.pem")},
        },
    )
    base = f"https://{zg.LOOP}:{port}"
    operator = (ops / "operator.pem", ops / "operator.key")

    zg.wait_until(
        lambda: curl(f"{base}/readyz", ops / "ca.pem", operator).stdout.endswith("\n200"),
        15,
        "the admin endpoint ready over HTTPS",
    )
    r = curl(f"{base}/healthz", ops / "ca.pem", operator)
    assert r.returncode == 0 and r.stdout == "ok\n\n200", r
    r = curl(f"{base}/metrics", ops / "ca.pem", operator)
    assert r.returncode == 0 and "zonegate_build_info" in r.stdout, r

    # No client certificate: refused in the handshake (curl fails, no HTTP status).
    r = curl(f"{base}/healthz", ops / "ca.pem", None)
    assert r.returncode != 0, r
    assert not r.stdout.endswith("200"), r
    # A certificate from another CA: refused likewise.
    r = curl(f"{base}/healthz", ops / "ca.pem", (other / "intruder.pem", other / "intruder.key"))
    assert r.returncode != 0, r
    assert not r.stdout.endswith("200"), r

    # Both refusals are counted by reason.
    text = curl(f"{base}/metrics", ops / "ca.pem", operator).stdout
    refused = [line for line in text.splitlines() if line.startswith("zonegate_admin_tls_refused_total{")]
    assert any('reason="no_client_certificate"' in line for line in refused), refused
    assert sum(int(line.rsplit(" ", 1)[1]) for line in refused) >= 2, refused


def test_admin_tls_off_loopback_passes_check(tmp_path: Path, zonegate_bin: Path) -> None:
    pki = tmp_path / "pki"
    cert(zonegate_bin, "ca", "--dir", str(pki))
    cert(zonegate_bin, "server", "--dir", str(pki), "--name", "admin")
    model = zg.model(f"{zg.LOOP}:{zg.free_port()}", "tcp://127.0.0.1:1", tmp_path / "e.jsonl")
    # Relative paths: against the model's folder.
    model["admin"] = {
        "listen": "0.0.0.0:9502",
        "tls": {"cert": "pki/admin.pem", "key": "pki/admin.key", "client_ca": "pki/ca.pem"},
    }
    path = tmp_path / "model.yaml"
    path.write_text(zg.to_yaml(model) + "\n")
    r = subprocess.run([str(zonegate_bin), "run", "-c", str(path), "--check"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r
    assert "admin: https://0.0.0.0:9502/ (mutual TLS)" in r.stdout, r.stdout
