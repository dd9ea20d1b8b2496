"""A device that answers wrongly (issue 15): the client hears an exception at once, not a
request_timeout later, and the connection goes on working."""

from __future__ import annotations

import struct
import threading
import time
from typing import Callable

import zg

SERVER_DEVICE_FAILURE = 0x04


class ShortReply:
    """A `trace_packet` hook: the first FC 3 answer of 2 registers loses one (byte count 2)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.armed = True
        self.edited_at: float | None = None

    def __call__(self, sending: bool, packet: bytes) -> bytes:
        if not sending or len(packet) != 13 or packet[7] != 3 or packet[8] != 4:
            return packet
        with self.lock:
            if not self.armed:
                return packet
            self.armed = False
            self.edited_at = time.monotonic()
        tid, proto, _length, unit = struct.unpack(">HHHB", packet[:7])
        # | tid | proto | length 5 (was 7) | unit | fc 3 | byte count 2 (was 4) | one register |
        return struct.pack(">HHHB", tid, proto, 5, unit) + bytes([3, 2]) + packet[9:11]


def test_wrong_byte_count_is_answered_at_once(gateway_factory: Callable[..., zg.Gateway]) -> None:
    hook = ShortReply()
    dev = zg.PyDevice(trace_packet=hook)
    try:
        # request_timeout 2 s: a gateway that waited for a right answer would answer 0x0B late.
        gw = gateway_factory(dev.upstream, request_timeout="2s")
        client = zg.pymodbus_client(gw.port, src=zg.HIST, timeout=3)
        try:
            rr = client.read_holding_registers(100, count=2, device_id=1)
            got = time.monotonic()
            assert rr.isError(), f"the short reply reached the client: {rr}"
            assert rr.exception_code == SERVER_DEVICE_FAILURE, f"{rr}"
            assert hook.edited_at is not None, "the device never sent the edited reply"
            after = got - hook.edited_at
            assert after < 0.05, f"exception {after * 1000:.1f} ms after the bad reply"
            # The next request on the same connection gets the device's right answer.
            rr = client.read_holding_registers(100, count=2, device_id=1)
            assert not rr.isError(), f"{rr}"
            assert rr.registers == [1100, 1101]
        finally:
            client.close()
        alerts = zg.wait_until(
            lambda: [
                e for e in gw.events()
                if e.get("kind") == "alert" and e.get("reason") == "mismatched_response"
            ],
            5,
            "the mismatched_response alert",
        )
        requests = zg.wait_until(
            lambda: [
                e for e in gw.events()
                if e.get("kind") == "request" and e.get("exception") == SERVER_DEVICE_FAILURE
            ],
            5,
            "the request record with exception 0x04",
        )
        assert alerts[0].get("request_id") == requests[0].get("request_id")
    finally:
        dev.stop()
