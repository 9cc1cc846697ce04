"""tripwire.bus on real sockets: a whole message part by part, and the input look."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import zmq

from tripwire import bus


def test_recv_parts_reads_one_whole_message_at_a_time(zmq_pair: tuple[Any, Any]) -> None:
    out, into = zmq_pair
    assert not bus.readable(into)
    with pytest.raises(zmq.Again):
        bus.recv_parts(into)
    out.send_multipart([b"header", b"payload", b"tail"])
    out.send(b"next")
    assert into.poll(5000)
    assert bus.readable(into)
    assert [bytes(p.buffer) for p in bus.recv_parts(into)] == [b"header", b"payload", b"tail"]
    assert [bytes(p.buffer) for p in bus.recv_parts(into)] == [b"next"]
    assert not bus.readable(into)


@pytest.fixture
def zmq_pair() -> Any:
    ctx: zmq.Context[Any] = zmq.Context()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    a.bind("inproc://bus-test")
    b.connect("inproc://bus-test")
    yield a, b
    a.close(0)
    b.close(0)
    ctx.term()


def test_bind_creates_an_ipc_sockets_directory(tmp_path: Path) -> None:
    ctx: zmq.Context[Any] = zmq.Context()
    rep, req = ctx.socket(zmq.REP), ctx.socket(zmq.REQ)
    endpoint = f"ipc://{tmp_path}/not/yet/cmd.sock"
    try:
        bus.bind(rep, endpoint)
        assert (tmp_path / "not" / "yet" / "cmd.sock").exists()
        req.connect(endpoint)
        req.send(b"ping")
        assert rep.poll(5000) and rep.recv() == b"ping"
    finally:
        rep.close(0)
        req.close(0)
        ctx.term()
