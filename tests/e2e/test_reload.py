"""Reload: a valid model change applies to new requests on open connections; an invalid one is
rejected and the old policy stays in force. By file change (in place and editor-style rename) and
by SIGHUP."""

from __future__ import annotations

import copy
import os
import signal
import time
from typing import Any

import zg


def _widen_historian(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The standard rules with the historian allowed holding 0-299 instead of 0-199."""
    out = copy.deepcopy(rules)
    for r in out:
        if r["id"] == "historian-read":
            r["holding"] = "0-299"
    return out


def _read_250(raw: zg.Raw) -> int | None:
    return zg.exception_of(raw.request(1, zg.read_pdu(3, 250, 1)))


def test_valid_change_applies_without_dropping_connections(sim_gateway: zg.Gateway) -> None:
    gw = sim_gateway
    with zg.Raw(gw.port, src=zg.HIST) as raw:
        assert _read_250(raw) == zg.ILLEGAL_ADDRESS
        gw.write_model(rules=_widen_historian(zg.standard_rules()))
        zg.wait_until(lambda: _read_250(raw) is None, 10, "the widened rule to apply", step=0.2)
        # and back: narrowing applies too, still on the same connection
        gw.write_model()
        zg.wait_until(lambda: _read_250(raw) == zg.ILLEGAL_ADDRESS, 10, "the narrowed rule", step=0.2)
        assert zg.exception_of(raw.request(1, zg.read_pdu(3, 0, 1))) is None
    assert gw.proc.running()


def test_editor_style_replace_is_picked_up(sim_gateway: zg.Gateway) -> None:
    """Editors write a new file and rename it over the old one: the watcher must follow."""
    gw = sim_gateway
    with zg.Raw(gw.port, src=zg.HIST) as raw:
        assert _read_250(raw) == zg.ILLEGAL_ADDRESS
        tmp = gw.model_path.with_suffix(".yaml.swp")
        tmp.write_text(zg.to_yaml(gw.model_dict(rules=_widen_historian(zg.standard_rules()))) + "\n")
        os.replace(tmp, gw.model_path)
        zg.wait_until(lambda: _read_250(raw) is None, 10, "the renamed-in model to apply", step=0.2)
        # a second rename-replace is seen as well (the watch survives the first one)
        tmp.write_text(zg.to_yaml(gw.model_dict()) + "\n")
        os.replace(tmp, gw.model_path)
        zg.wait_until(lambda: _read_250(raw) == zg.ILLEGAL_ADDRESS, 10, "the second replace", step=0.2)


def test_invalid_change_is_rejected_and_old_policy_stays(sim_gateway: zg.Gateway) -> None:
    gw = sim_gateway
    good = gw.model_path.read_text()
    with zg.Raw(gw.port, src=zg.HIST) as raw:
        mark = gw.proc.line_count()
        # widen the historian AND add an unknown key: the whole file must be rejected
        bad = zg.to_yaml(gw.model_dict(rules=_widen_historian(zg.standard_rules())))
        bad = bad.replace("facility:", "bogus_key_e2e: 1\nfacility:", 1)
        gw.write_model(text=bad + "\n")
        gw.proc.wait_line(r"bogus_key_e2e", timeout=10, start=mark)  # the error names the key
        time.sleep(0.5)
        assert gw.proc.running(), "an invalid model stopped the gateway"
        assert _read_250(raw) == zg.ILLEGAL_ADDRESS, "the rejected model was applied"
        assert zg.exception_of(raw.request(1, zg.read_pdu(3, 0, 1))) is None
        # syntactically broken YAML as well
        gw.write_model(text=good.replace("rules:", "rules: [\n", 1))
        time.sleep(1.5)
        assert gw.proc.running()
        assert _read_250(raw) == zg.ILLEGAL_ADDRESS
        # a later valid change still applies
        gw.write_model(rules=_widen_historian(zg.standard_rules()))
        zg.wait_until(lambda: _read_250(raw) is None, 10, "a valid model after an invalid one", step=0.2)


def test_sighup_reloads(sim_gateway: zg.Gateway) -> None:
    gw = sim_gateway
    with zg.Raw(gw.port, src=zg.HIST) as raw:
        assert _read_250(raw) == zg.ILLEGAL_ADDRESS
        gw.write_model(rules=_widen_historian(zg.standard_rules()))
        gw.proc.send_signal(signal.SIGHUP)
        zg.wait_until(lambda: _read_250(raw) is None, 10, "SIGHUP reload", step=0.2)
        assert gw.proc.running(), "SIGHUP killed the gateway"
        # SIGHUP with an unchanged file is harmless
        gw.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert gw.proc.running()
        assert _read_250(raw) is None


def test_reloads_are_audit_records(sim_gateway: zg.Gateway) -> None:
    """Every policy load, reload and rejected reload is itself a record of the audit log."""
    gw = sim_gateway
    kinds = lambda: [e.get("kind") for e in gw.events()]  # noqa: E731
    zg.wait_until(lambda: "policy_load" in kinds(), 5, "a policy_load record at start")
    gw.write_model(rules=_widen_historian(zg.standard_rules()))
    zg.wait_until(lambda: "policy_reload" in kinds(), 10, "a policy_reload record")
    gw.write_model(text="facility: [unclosed\n")
    zg.wait_until(lambda: "policy_rejected" in kinds(), 10, "a policy_rejected record")
    assert gw.proc.running()


def test_mode_switch_to_monitor_by_reload(sim_gateway: zg.Gateway, sim_device: zg.SimDevice) -> None:
    """The maintenance-window switch, in reverse: enforce -> monitor on a live connection. (A
    source no rule names cannot hold a live connection in enforce mode, it is closed at accept;
    once in monitor mode it is accepted and forwarded.)"""
    gw = sim_gateway
    before = sim_device.read_holding(150, 1)
    with zg.Raw(gw.port, src=zg.ROGUE) as raw:  # enforce: refused at accept
        try:
            raw.send(zg.adu(1, 1, zg.read_pdu(3, 150, 1)))
            assert raw.outcome(3) == "closed", f"stranger answered in enforce: {raw.buf.hex()}"
        except OSError:
            pass
    with zg.Raw(gw.port, src=zg.EWS) as raw:
        assert zg.registers_of(raw.request(1, zg.read_pdu(3, 150, 1))) == before  # allowed
        # FC 4 input 0: the workstation's zone may read input 100-109 only (ops-status)
        assert zg.exception_of(raw.request(1, zg.read_pdu(4, 0, 1))) == zg.ILLEGAL_ADDRESS
        gw.write_model(mode="monitor")
        zg.wait_until(
            lambda: zg.exception_of(raw.request(1, zg.read_pdu(4, 0, 1))) is None,
            10,
            "monitor mode after reload",
            step=0.2,
        )
        pdu = raw.request(1, zg.read_pdu(4, 0, 1))  # forwarded: the device's answer
        assert pdu[0] == 4 and len(zg.registers_of(pdu)) == 1, pdu.hex()
    with zg.Raw(gw.port, src=zg.ROGUE) as raw:  # monitor: accepted and forwarded
        assert zg.registers_of(raw.request(1, zg.read_pdu(3, 150, 1))) == before
    assert gw.stop() == 0  # writes the summaries of aggregated denials
    ews = [e for e in gw.request_events() if str(e["src"]).split(":")[0] == zg.EWS]
    for e in ews:  # a summary never mixes blocked (enforce) and forwarded (monitor) requests
        if e["decision"] == "deny":
            assert e["mode"] == "enforce" and zg.exception_value(e.get("exception")) == 2, e
        elif e["decision"] == "would_deny":
            assert e["mode"] == "monitor" and e.get("exception") is None, e
    would = [e for e in gw.request_events() if e.get("decision") == "would_deny"]
    assert any(str(e["src"]).split(":")[0] == zg.EWS for e in would), would
    assert any(
        str(e["src"]).split(":")[0] == zg.ROGUE and e.get("reason") == "no_rule_for_source" for e in would
    ), would
