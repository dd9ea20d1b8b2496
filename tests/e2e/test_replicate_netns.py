"""One-way replication across a network-namespace pair with the reverse direction dropped.

The test creates two namespaces (transmit = OT, receive = DMZ) joined by a veth pair, with static
neighbour entries (no ARP is ever needed) and an nftables `netdev ingress` chain on the transmit
side's end that drops EVERY frame coming back. The replica must still show the device's values
and follow a change, and `zonegate probe --replication` run in the receive namespace must find
the reverse path closed (its SYNs are counted by the drop rule). Names are unique per run and
everything is deleted in every case. Needs root, `ip`, `nft` and `mbpoll`; skipped otherwise.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import zg

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nft", "mbpoll")),
    reason="needs root, ip, nft and mbpoll",
)


def sh(*args: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(args)}: {out.stderr}{out.stdout}")
    return out


def mac(ns: str, dev: str) -> str:
    out = sh("ip", "-n", ns, "-j", "link", "show", dev).stdout
    return json.loads(out)[0]["address"]


@pytest.fixture
def netns_pair():
    tag = f"{os.getpid() % 10000}{random.randrange(100, 999)}"
    tx, rx = f"zgtx{tag}", f"zgrx{tag}"
    vtx, vrx = f"vt{tag}", f"vr{tag}"
    net = random.randrange(1, 250)
    tx_ip, rx_ip = f"10.213.{net}.1", f"10.213.{net}.2"
    try:
        sh("ip", "netns", "add", tx)
        sh("ip", "netns", "add", rx)
        sh("ip", "link", "add", vtx, "type", "veth", "peer", "name", vrx)
        sh("ip", "link", "set", vtx, "netns", tx)
        sh("ip", "link", "set", vrx, "netns", rx)
        for ns, dev, ip, peer in ((tx, vtx, tx_ip, rx_ip), (rx, vrx, rx_ip, tx_ip)):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "addr", "add", f"{ip}/32", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "route", "add", f"{peer}/32", "dev", dev)
        # Static neighbours: no ARP exchange is needed in either direction.
        sh("ip", "-n", tx, "neigh", "add", rx_ip, "lladdr", mac(rx, vrx), "dev", vtx, "nud", "permanent")
        sh("ip", "-n", rx, "neigh", "add", tx_ip, "lladdr", mac(tx, vtx), "dev", vrx, "nud", "permanent")
        rules = (
            "table netdev diode {\n"
            f"  chain reverse {{ type filter hook ingress device {vtx} priority 0; policy accept;\n"
            "    counter drop\n  }\n}\n"
        )
        p = subprocess.run(["ip", "netns", "exec", tx, "nft", "-f", "-"], input=rules,
                           capture_output=True, text=True, timeout=20)
        assert p.returncode == 0, p.stderr
        yield {"tx": tx, "rx": rx, "tx_ip": tx_ip, "rx_ip": rx_ip}
    finally:
        for ns in (tx, rx):
            sh("ip", "netns", "del", ns, check=False)


def dropped(tx: str) -> int:
    out = sh("ip", "netns", "exec", tx, "nft", "list", "table", "netdev", "diode").stdout
    m = re.search(r"counter packets (\d+)", out)
    assert m, out
    return int(m.group(1))


def mbpoll(ns: str, host: str, port: int, *opts: str, write: str | None = None) -> subprocess.CompletedProcess[str]:
    """mbpoll in namespace `ns`: a read (`-1` one poll) or, with `write`, a write of that value."""
    tail = [host, write] if write is not None else ["-1", host]
    return sh("ip", "netns", "exec", ns, "mbpoll", "-m", "tcp", "-a", "1", "-t", "4", "-p", str(port),
              "-o", "1", *opts, *tail, check=False)


def test_replication_works_with_the_reverse_direction_dropped(netns_pair, tmp_path: Path) -> None:
    tx, rx, tx_ip, rx_ip = netns_pair["tx"], netns_pair["rx"], netns_pair["tx_ip"], netns_pair["rx_ip"]
    z = str(zg.zonegate_bin())
    sh(z, "log", "keygen", "--out", str(tmp_path / "diode"))
    model = tmp_path / "model.yaml"
    model.write_text(
        f"""zones:
  - zone_id: Z3-OPS
  - zone_id: Z4-DMZ
replications:
  - replication_id: R1-HIST
    connects: [Z3-OPS, Z4-DMZ]
    source: tcp://{tx_ip}:1502
    auth: ed25519
    blocks:
      - {{unit: 1, table: holding, range: 0-199, period: 100ms}}
    transmit: {{to: {rx_ip}:5450, bind: {tx_ip}:5449, key: diode.key, refresh: 2s}}
    receive: {{bind: {rx_ip}:5450, key: diode.pub, serve: {rx_ip}:5502, max_age: 1s}}
"""
    )
    procs = []
    try:
        sim = zg.Proc(["ip", "netns", "exec", tx, z, "sim", "--listen", f"{tx_ip}:1502"], "sim", tmp_path)
        procs.append(sim)
        sim.wait_line(r"listening on", timeout=15)
        recv = zg.Proc(["ip", "netns", "exec", rx, z, "run", "-c", str(model), "--side", "receive"], "receive", tmp_path)
        procs.append(recv)
        recv.wait_line(r"replication R1-HIST receive", timeout=15)
        trans = zg.Proc(["ip", "netns", "exec", tx, z, "run", "-c", str(model), "--side", "transmit"], "transmit", tmp_path)
        procs.append(trans)
        trans.wait_line(r"replication R1-HIST transmit", timeout=15)

        # Set a value on the device (inside the transmit namespace), see it on the replica.
        assert mbpoll(tx, tx_ip, 1502, "-r", "11", write="4711").returncode == 0
        def replica_shows() -> bool:
            out = mbpoll(rx, rx_ip, 5502, "-r", "11", "-c", "1")
            return "[11]: \t4711" in out.stdout
        zg.wait_until(replica_shows, 10, "the replica to show 4711 across the one-way link")
        before = dropped(tx)

        # From the receive side, nothing gets through: the probe's SYNs die at the ingress drop.
        out = sh("ip", "netns", "exec", rx, z, "probe", str(model), "--replication", "R1-HIST",
                 "--timeout-ms", "700", "--out", str(tmp_path / "probe.json"), check=False, timeout=60)
        result = json.loads((tmp_path / "probe.json").read_text())
        reverse = [c for c in result["tests"] if c["name"].startswith("reverse")]
        assert reverse and all(c["pass"] for c in reverse), out.stdout
        assert all(c["pass"] for c in result["tests"]), out.stdout
        assert out.returncode == 0, out.stdout + out.stderr
        assert dropped(tx) > before, "the reverse attempts never reached the drop rule"
        # The replica is still fed: the transmit side never needed anything back.
        assert mbpoll(tx, tx_ip, 1502, "-r", "11", write="4712").returncode == 0
        zg.wait_until(lambda: "[11]: \t4712" in mbpoll(rx, rx_ip, 5502, "-r", "11", "-c", "1").stdout,
                      10, "the replica to follow a change")
    finally:
        for p in procs:
            p.stop()
            print(f"--- {p.name}:\n{p.output()}")
