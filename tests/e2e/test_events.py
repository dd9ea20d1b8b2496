"""The events file: one JSON line per request, docs/DESIGN.md field names, decision/rule/reason right."""

from __future__ import annotations

import re
import time

import zg

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|\+00:00)$")


def test_one_event_per_request_with_design_fields(sim_gateway: zg.Gateway) -> None:
    gw = sim_gateway
    # (src, pdu, expected decision, rule, reason, exception)
    cases = [
        (zg.HIST, zg.read_pdu(3, 100, 10), "allow", "historian-read", "allowed", None),
        (zg.EWS, zg.write_multiple_pdu(100, [200, 201]), "allow", "ews-setpoints", "allowed", None),
        (zg.HIST, zg.write_single_pdu(100, 200), "deny", None, "no_rule_for_function", 1),
        (zg.HIST, zg.read_pdu(3, 250, 1), "deny", None, "address_out_of_range", 2),
        (zg.EWS, zg.write_single_pdu(101, 250), "deny", "ews-setpoints", "value_out_of_bounds", 3),
    ]
    unit2 = (zg.HIST, zg.read_pdu(3, 0, 1), "deny", None, "no_rule_for_unit", 1)
    tids = []
    for i, (src, pdu, *_rest) in enumerate(cases):
        with zg.Raw(gw.port, src=src) as raw:
            tid = 4242 + i
            raw.send(zg.adu(tid, 1, pdu))
            raw.recv_adu(5)
            tids.append(tid)
    with zg.Raw(gw.port, src=zg.HIST) as raw:  # unit 2: the historian's rule is for unit 1
        raw.send(zg.adu(4299, 2, unit2[1]))
        raw.recv_adu(5)
    cases.append(unit2)
    tids.append(4299)
    # a source no rule names is closed at accept: a `connection` record, no `request` record
    with zg.Raw(gw.port, src=zg.ROGUE) as raw:
        try:
            raw.send(zg.adu(4300, 1, zg.read_pdu(3, 100, 10)))
            assert raw.outcome(3) == "closed", f"stranger answered: {raw.buf.hex()}"
        except OSError:
            pass
    (refused, *_) = zg.wait_until(
        lambda: [
            e for e in gw.events()
            if e.get("kind") == "connection" and e.get("reason") == "no_rule_for_source"
        ],
        5,
        "a connection record no_rule_for_source",
    )
    assert refused.get("src") == zg.ROGUE and refused.get("conduit") == zg.CONDUIT, refused
    assert TS.match(refused["ts"]) and isinstance(refused.get("seq"), int), refused
    events = gw.wait_request_events(len(cases))
    time.sleep(0.5)
    events = gw.request_events()
    all_events = gw.events()
    assert len(events) == len(cases), f"{len(events)} request events for {len(cases)} requests: {events}"

    required = {
        "ts", "seq", "conduit", "src", "dst", "unit", "tid", "fc", "function", "access",
        "decision", "reason", "mode",
    }
    seqs = []
    for ev, (src, pdu, decision, rule, reason, exc), tid in zip(events, cases, tids):
        missing = required - ev.keys()
        assert not missing, f"event lacks {sorted(missing)}: {ev}"
        assert TS.match(ev["ts"]), f"ts not RFC 3339 UTC with microseconds: {ev['ts']}"
        assert isinstance(ev["seq"], int)
        seqs.append(ev["seq"])
        assert ev["conduit"] == zg.CONDUIT
        assert str(ev["src"]).split(":")[0] == src, ev["src"]
        assert ev["unit"] == (2 if tid == 4299 else 1)
        assert ev["tid"] == tid
        assert ev["fc"] == pdu[0]
        assert ev["mode"] == "enforce"
        assert ev["decision"] == decision, ev
        assert ev["reason"] == reason, ev
        if rule is not None:
            assert ev.get("rule") == rule, ev
        assert zg.exception_value(ev.get("exception")) == exc, ev
        if decision == "allow" and ev["access"] == "write":
            # durable write record before forwarding, then an outcome record with the latency
            outcomes = [o for o in all_events if o.get("kind") == "outcome" and o.get("ref_seq") == ev["seq"]]
            assert len(outcomes) == 1, f"no outcome record for the allowed write {ev}"
            assert isinstance(outcomes[0].get("latency_us"), int), outcomes[0]
            assert outcomes[0].get("exception") is None, outcomes[0]
        elif decision == "allow":
            assert isinstance(ev.get("latency_us"), int) and ev["latency_us"] >= 0, ev
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), f"seq not increasing: {seqs}"

    read, write = events[0], events[1]
    assert read["function"] == "read_holding_registers"
    assert read["access"] == "read"
    assert read["table"] == "holding"
    assert read["address"] == 100 and read["quantity"] == 10
    assert write["function"] == "write_multiple_registers"
    assert write["access"] == "write"
    assert write["table"] == "holding"
    assert write["address"] == 100 and write["quantity"] == 2
    assert write["values"] == [200, 201]


def test_rate_limited_and_malformed_events(sim_gateway: zg.Gateway) -> None:
    """Every rate-limited request is accounted for: repeated denials of one (source, reason) are
    aggregated (the first in full, the rest in a summary record with `count`, `first_ts`,
    `last_ts`, written at the end of the interval or at shutdown)."""
    gw = sim_gateway
    with zg.Raw(gw.port, src=zg.RATE) as raw:
        codes = [zg.exception_of(raw.request(1, zg.read_pdu(3, 0, 1))) for _ in range(5)]
    assert zg.BUSY in codes
    with zg.Raw(gw.port, src=zg.HIST) as raw:
        raw.request(1, zg.read_pdu(3, 0, 0))  # invalid quantity -> 0x03
    gw.wait_request_events(codes.count(None) + 2)
    assert gw.stop() == 0, "the gateway did not exit 0 on SIGTERM"  # flushes the summaries
    events = gw.request_events()
    rate = [e for e in events if str(e["src"]).split(":")[0] == zg.RATE]
    assert len([e for e in rate if e["decision"] == "allow"]) == codes.count(None), rate
    limited = [e for e in rate if e["decision"] == "deny"]
    full = [e for e in limited if "count" not in e]
    summaries = [e for e in limited if "count" in e]
    assert len(full) == 1, f"the first rate-limited request is written in full: {limited}"
    assert len(full) + sum(e["count"] for e in summaries) == codes.count(zg.BUSY), limited
    for e in limited:
        assert e["reason"] == "rate_limited", e
        assert e.get("rule") == "rate-read", e
        assert zg.exception_value(e.get("exception")) == zg.BUSY
    for e in summaries:
        assert TS.match(e["first_ts"]) and TS.match(e["last_ts"]), e
        assert e["first_ts"] <= e["last_ts"], e
        assert "request_id" not in e, e
    (bad,) = [e for e in events if str(e["src"]).split(":")[0] == zg.HIST]
    assert bad["decision"] == "deny", bad
    assert zg.exception_value(bad.get("exception")) == zg.ILLEGAL_VALUE, bad


def test_upstream_failure_events(gateway_factory, silent_device: zg.SilentDevice) -> None:  # type: ignore[no-untyped-def]
    gw = gateway_factory(silent_device.upstream, request_timeout="500ms")
    with zg.Raw(gw.port, src=zg.HIST) as raw:
        assert zg.exception_of(raw.request(1, zg.read_pdu(3, 0, 1), timeout=5)) == zg.TARGET_FAILED
    (ev,) = gw.wait_request_events(1)
    assert ev["decision"] == "allow" and ev.get("rule") == "historian-read", ev
    assert zg.exception_value(ev.get("exception")) == zg.TARGET_FAILED, ev


def test_log_verify_accepts_the_gateway_log_and_catches_an_edit(sim_gateway: zg.Gateway) -> None:
    """The events file is the hash-chained audit log: `zonegate log verify` passes it after a clean
    stop and names the record once a value is edited."""
    import subprocess

    gw = sim_gateway
    with zg.Raw(gw.port, src=zg.EWS) as raw:
        raw.request(1, zg.write_single_pdu(100, 200))
        raw.request(1, zg.read_pdu(3, 100, 1))
        raw.request(1, zg.write_single_pdu(100, 999))  # denied
    gw.wait_request_events(3)
    assert gw.stop() == 0, "the gateway did not exit 0 on SIGTERM"
    verify = [str(zg.zonegate_bin()), "log", "verify", str(gw.events_path)]
    r = subprocess.run(verify, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"verify of an untouched log failed:\n{r.stdout}\n{r.stderr}"
    text = gw.events_path.read_text()
    assert '"values":[200]' in text, "expected the compact JSON the gateway writes"
    gw.events_path.write_text(text.replace('"values":[200]', '"values":[201]', 1))
    r = subprocess.run(verify, capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, f"an edited log verified:\n{r.stdout}\n{r.stderr}"
