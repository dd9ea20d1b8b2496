"""`zonegate decode` and `zonegate demo` driven as a user would, via subprocess."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

import zg


def _find(obj: Any, key: str) -> list[Any]:
    """Every value under `key` anywhere in a JSON document."""
    out: list[Any] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == key:
                out.append(v)
            out.extend(_find(v, key))
    elif isinstance(obj, list):
        for v in obj:
            out.extend(_find(v, key))
    return out


def _decode(zonegate_bin: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(zonegate_bin), "decode", *args], capture_output=True, text=True, timeout=20
    )


def test_decode_tcp_request(zonegate_bin: Path) -> None:
    # tid 0x0001, protocol 0, length 6, unit 1, FC3 read holding 100 x 10
    r = _decode(zonegate_bin, "00010000000601030064000a")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert 3 in _find(doc, "fc"), doc
    assert "read_holding_registers" in _find(doc, "function"), doc
    assert 1 in _find(doc, "unit"), doc
    assert 1 in _find(doc, "tid"), doc
    assert 100 in _find(doc, "address"), doc
    assert 10 in _find(doc, "quantity"), doc
    assert "holding" in _find(doc, "table"), doc
    assert "read" in _find(doc, "access"), doc


def test_decode_write_shows_values(zonegate_bin: Path) -> None:
    frame = zg.adu(7, 1, zg.write_multiple_pdu(100, [200, 201])).hex()
    r = _decode(zonegate_bin, frame)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert "write_multiple_registers" in _find(doc, "function"), doc
    assert [200, 201] in _find(doc, "values"), doc
    assert "write" in _find(doc, "access"), doc


def test_decode_response_and_rtu(zonegate_bin: Path) -> None:
    # exception response: FC3 | 0x80, code 2
    r = _decode(zonegate_bin, "--response", "000100000003018302")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert any(zg.exception_value(v) == 2 for v in _find(doc, "exception")), doc
    # RTU: address 1, FC3 100 x 10, CRC 0xF5C4? computed here
    body = bytes.fromhex("01030064000a")
    crc = 0xFFFF
    for b in body:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    frame = body + crc.to_bytes(2, "little")
    r = _decode(zonegate_bin, "--rtu", frame.hex())
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert 100 in _find(doc, "address") and 10 in _find(doc, "quantity"), doc


def test_decode_rejects_broken_input(zonegate_bin: Path) -> None:
    r = _decode(zonegate_bin, "00010001000601030064000a")  # protocol id 1
    assert r.returncode in (1, 2), (r.returncode, r.stdout, r.stderr)
    assert "protocol" in (r.stdout + r.stderr).lower()
    r = _decode(zonegate_bin, "not-hex")
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    body = bytes.fromhex("01030064000a0000")  # wrong CRC
    r = _decode(zonegate_bin, "--rtu", body.hex())
    assert r.returncode in (1, 2)
    assert "crc" in (r.stdout + r.stderr).lower()


def test_demo_prints_commands_that_work(zonegate_bin: Path, tmp_path: Path) -> None:
    """`zonegate demo` prints pymodbus and mbpoll commands, each followed by a `-> expected`
    line; every command is run and must do what its line says (exception code, mbpoll error
    text, or success)."""
    demo = zg.Proc([str(zonegate_bin), "demo"], "demo", tmp_path)
    try:
        demo.wait_line(r"^\s*mbpoll ", timeout=20)
        time.sleep(1.0)  # let it print the rest
        lines = [ln.strip() for ln in demo.lines]
        pairs: list[tuple[str, str]] = []
        for k, ln in enumerate(lines):
            cmd = ln.lstrip("$ ").strip()
            if cmd.startswith(("mbpoll ", "python3 -c ", "python -c ")):
                expect = lines[k + 1] if k + 1 < len(lines) and lines[k + 1].startswith("->") else ""
                pairs.append((cmd, expect))
        mbpolls = [p for p in pairs if p[0].startswith("mbpoll")]
        pys = [p for p in pairs if not p[0].startswith("mbpoll")]
        assert len(mbpolls) >= 2, f"demo printed too few mbpoll commands:\n{demo.output()}"
        assert len(pys) >= 3, f"expected allowed read, blocked write, out-of-bounds:\n{demo.output()}"
        seen_codes = set()
        for cmd, expect in pairs:
            if cmd.startswith("mbpoll"):
                r = subprocess.run(shlex.split(cmd), capture_output=True, text=True, timeout=20)
            else:
                r = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30)
            out = r.stdout + r.stderr
            m = re.search(r"exception_code=(\d+)", expect)
            failed = re.search(r"failed: (.+)$", expect)
            if m:
                assert f"exception_code={m.group(1)}" in out, f"{cmd}\nexpected {expect}\ngot {out}"
                seen_codes.add(int(m.group(1)))
            elif failed:
                assert r.returncode != 0 and failed.group(1).strip() in out, f"{cmd}\n{expect}\n{out}"
            else:
                assert r.returncode == 0, f"{cmd}\nexpected {expect}\ngot rc {r.returncode}: {out}"
                assert "Exception" not in out and "failed" not in out, f"{cmd}\n{out}"
        assert {1, 3} <= seen_codes, f"demo shows no blocked write / out-of-bounds: {seen_codes}"
        assert demo.running(), "demo exited"
    finally:
        demo.stop()
