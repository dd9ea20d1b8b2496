"""The admin endpoint and its dashboard in a real browser (issue 9).

A gateway runs with `admin: {listen: 127.0.0.1:PORT}`; Debian's chromium, driven by selenium
through chromium-driver, opens the dashboard; a pymodbus client causes a denial and the test
sees it appear on the page (server-sent events, no reload). `/metrics`, `/healthz` and
`/readyz` are read with urllib.

Set ZONEGATE_DASHBOARD_PNG=path to also save the screenshot there (docs/dashboard.png is made
that way); it always goes to the test's tmp folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

import zg

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def http_get(url: str, timeout: float = 3.0) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def browser(profile: str):  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1400,1200",
    ):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)


def test_a_denial_appears_on_the_dashboard(
    gateway_factory: Callable[..., zg.Gateway], sim_device: zg.SimDevice, tmp_path: Path
) -> None:
    admin_port = zg.free_port()
    # A signing key and a checkpoint every 4 records: the page shows the last signed checkpoint.
    keygen = subprocess.run(
        [str(zg.zonegate_bin()), "log", "keygen", "--out", str(tmp_path / "audit")],
        capture_output=True, text=True, timeout=30,
    )
    assert keygen.returncode == 0, keygen.stderr
    gw = gateway_factory(
        sim_device.upstream,
        admin={"listen": f"{zg.LOOP}:{admin_port}"},
        extra_audit={"signing_key": str(tmp_path / "audit.key"), "checkpoint_every": 4},
    )
    base = f"http://{zg.LOOP}:{admin_port}"
    zg.wait_until(lambda: http_get(f"{base}/readyz")[0] == 200, 10, "the admin endpoint to be ready")
    assert http_get(f"{base}/healthz")[0] == 200
    assert json.loads(http_get(f"{base}/readyz")[2]) == {
        "ready": True,
        "listeners_up": True,
        "audit_writable": True,
    }

    profile = tempfile.mkdtemp(prefix="zg-chromium-")
    driver = browser(profile)
    try:
        driver.get(f"{base}/")
        assert driver.title == "zonegate"

        def text_of(css: str) -> str:
            # Found and read in one script run: the page re-renders its tables every refresh, so
            # an element found by one WebDriver call can be stale by the next (a flake seen in CI).
            return driver.execute_script(
                "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", css
            ).strip()

        def page_shows(text: str) -> bool:
            return text in text_of("body")

        zg.wait_until(lambda: page_shows(zg.CONDUIT), 15, "the conduit on the page")
        # A few allowed reads (the device row), then the denial: the historian may not write.
        client = zg.pymodbus_client(gw.port, src=zg.HIST)
        try:
            for _ in range(5):
                assert not client.read_holding_registers(0, count=2, device_id=1).isError()
            denied = client.write_register(100, 222, device_id=1)
            assert denied.isError(), denied
        finally:
            client.close()

        def denial_listed() -> bool:
            rows = driver.execute_script(
                "return Array.from(document.querySelectorAll('#recent tbody tr'), r => r.innerText)"
            )
            return any(zg.HIST in r and "write_single_register" in r and "deny" in r for r in rows)

        zg.wait_until(denial_listed, 15, "the denial in the page's latest-denials table")
        zg.wait_until(lambda: "online" in text_of("#units"), 15, "the device online")
        masters = text_of("#masters")
        assert zg.HIST in masters
        assert text_of("#ready") == "ready"
        zg.wait_until(
            lambda: text_of("#audit-checkpoint").startswith("seq "),
            15,
            "the last signed checkpoint on the page",
        )
        assert "record(s) since" in text_of("#audit-checkpoint-age")
        time.sleep(1.2)  # one more event, so that the rates show
        # The unit's polls per second: a number once a whole second has passed since its first.
        polls = text_of("#units tbody tr td:nth-child(4)")
        assert polls != "–" and float(polls) >= 0, polls
        shot = tmp_path / "dashboard.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        if os.environ.get("ZONEGATE_DASHBOARD_PNG"):
            shutil.copy(shot, os.environ["ZONEGATE_DASHBOARD_PNG"])
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)

    status, ctype, text = http_get(f"{base}/metrics")
    assert status == 200
    assert ctype.startswith("application/openmetrics-text")
    assert text.rstrip().endswith("# EOF")
    deny = [
        line
        for line in text.splitlines()
        if line.startswith("zonegate_requests_total{")
        and 'function="write_single_register"' in line
        and 'decision="deny"' in line
    ]
    assert deny and deny[0].endswith(" 1"), text
    assert zg.HIST not in text, "no source address in a metric label"
    assert "zonegate_upstream_response_seconds_bucket" in text
    fsyncs = [line for line in text.splitlines() if line.startswith("zonegate_audit_fsync_seconds_count ")]
    assert fsyncs and int(fsyncs[0].split()[-1]) > 0, text
    assert 'zonegate_audit_fsync_seconds_bucket{le="+Inf"}' in text
    state = json.loads(http_get(f"{base}/api/state")[2])
    assert state["audit"]["head_seq"] is not None
    assert state["audit"]["last_checkpoint"]["seq"] <= state["audit"]["head_seq"], state["audit"]
    assert state["units"][0]["polls_per_s"] is not None, state["units"]


def test_the_admin_port_off_loopback_needs_a_token(tmp_path: Path, zonegate_bin: Path) -> None:
    model = zg.model(f"{zg.LOOP}:{zg.free_port()}", "tcp://127.0.0.1:1", tmp_path / "e.jsonl")
    model["admin"] = {"listen": "0.0.0.0:9502"}
    path = tmp_path / "model.yaml"
    path.write_text(zg.to_yaml(model) + "\n")
    import subprocess

    r = subprocess.run(
        [str(zonegate_bin), "run", "-c", str(path), "--check"], capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 2, r
    assert "admin.listen" in r.stderr and "token_file" in r.stderr, r.stderr


def test_demo_prints_and_serves_the_dashboard(zonegate_bin: Path, tmp_path: Path) -> None:
    demo = zg.Proc([str(zonegate_bin), "demo"], "demo", tmp_path)
    try:
        m = demo.wait_line(r"^Dashboard .*(http://127\.0\.0\.1:\d+/)", timeout=20)
        base = m.group(1)
        zg.wait_until(lambda: http_get(f"{base}readyz")[0] == 200, 10, "the demo's admin endpoint ready")
        status, ctype, page = http_get(base)
        assert status == 200 and ctype.startswith("text/html") and "<title>zonegate</title>" in page
        state = json.loads(http_get(f"{base}api/state")[2])
        assert [c["id"] for c in state["conduits"]] == ["C1-OPS-CTRL", "C2-OPS-CTRL-TLS"], state
    finally:
        demo.stop()
