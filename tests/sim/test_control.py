"""The sim control protocol: every request gets a reply, malformed ones an error reply."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sim.control import handle
from sim.errors import BadControlRequest
from tripwire.messages import decode_reply


class FakeHandlers:
    """Records calls; a stand-in for the sim process in this pure unit test."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.scheduled = False

    def status(self, since: int) -> dict[str, Any]:
        self.calls.append(("status", since))
        return {"frames_published": 3}

    def schedule(self) -> dict[str, Any]:
        if self.scheduled:
            raise BadControlRequest("schedule_already_started")
        self.scheduled = True
        return {"schedule_started_ns": 5}

    def stop(self) -> None:
        self.calls.append(("stop", None))


def _ask(req: Any, handlers: FakeHandlers | None = None) -> tuple[dict[str, Any], bool]:
    parts = req if isinstance(req, list) else [json.dumps(req).encode()]
    reply = handle(parts, handlers or FakeHandlers())
    return decode_reply(reply.payload), reply.stop


def test_status_schedule_and_stop() -> None:
    h = FakeHandlers()
    assert _ask({"cmd": "status"}, h) == ({"v": 1, "ok": True, "frames_published": 3}, False)
    assert _ask({"cmd": "status", "since": 7, "v": 1}, h)[0]["ok"]
    assert h.calls == [("status", 0), ("status", 7)]
    assert _ask({"cmd": "schedule"}, h)[0] == {"v": 1, "ok": True, "schedule_started_ns": 5}
    again = _ask({"cmd": "schedule"}, h)[0]
    assert again["ok"] is False and again["error"] == "schedule_already_started"
    assert _ask({"cmd": "stop"}, h) == ({"v": 1, "ok": True}, True)
    assert h.calls[-1] == ("stop", None)


@pytest.mark.parametrize("parts", [
    [b"not json"],
    [b"\xff\xfe"],
    [b"[1, 2]"],
    [b"{}"],
    [b'{"cmd": 5}'],
    [b'{"cmd": "status", "v": 99}'],
    [b'{"cmd": "status", "since": -1}'],
    [b'{"cmd": "status", "since": "3"}'],
    [b'{"cmd": "status", "since": true}'],
    [b'{"cmd": "reboot"}'],
    [b'{"cmd": "status"}', b"extra part"],
    [b"{" + b" " * 10_000 + b"}"],
])
def test_malformed_requests_get_error_replies(parts: list[bytes]) -> None:
    h = FakeHandlers()
    reply, stop = _ask(parts, h)
    assert reply["ok"] is False and reply["error"] and not stop
    assert h.calls == []
