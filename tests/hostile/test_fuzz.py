"""Seeded fuzzing of the parsers that read what a peer sends (issue 8, Tests).

comet_py's frame decoder and relay envelope parser, comet_server's command parser (ws.handle_command
on an in-memory connection) and WebSocket URL parser. Property: no exception escapes, nothing
answers "Internal server error", and no call takes more than 100 ms (hypothesis' deadline).
``derandomize=True``: the same examples on every run, so CI is repeatable.
"""

from __future__ import annotations

import json
import random
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comet_py import protocol as P
from comet_py import relay as R
from comet_py.options import parse_options
from comet_py.session import Session
from comet_server import wire, ws
from comet_server.hub import Client, Hub
from comet_server.store import Store
from tests.hostile.cpu import CPU_LIMIT, cpu_of
from tests.support.memory_transport import RecordingTransport

# the 100 ms bound is checked as CPU time in _timed; hypothesis' wall-clock deadline is only a
# generous backstop, since CI machines are shared
FUZZ = settings(derandomize=True, deadline=timedelta(seconds=2), max_examples=300,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _timed(fn, *args):
    out, took = cpu_of(fn, *args)
    assert took < CPU_LIMIT, f"{fn.__name__} took {took * 1000:.0f} ms of CPU"
    return out


# -- strategies -------------------------------------------------------------------------------

names = st.sampled_from(["web_x", "private_x", "track_x", "trust_x", "webauth_x", "msg", "sys", "x",
                         "c" * 65, "user_status_1", "", "web x", "w\u00e9b", "@web_x"])
digits = st.sampled_from(["", "0", "7", "-1", "\u00b2", "\u0663", "1" * 19, "1" * 5000, "1e5", " 3", "3\r"])
line = st.one_of(names, digits, st.text(max_size=40), st.text(alphabet="\n\r\\\"'{}[]:,0-9a_*@", max_size=40))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8)
frame_keys = st.sampled_from(["pipe", "event", "data", "marker", "uuid", "user_id", "history", "fromQueue",
                              "authorized", "server", "message_send_time", "event_name", "_info", "error_code"])
frame_values = st.one_of(names, json_values, st.sampled_from(["serverInfo", "error", "answer", "pipe_log",
                                                              "_answer_pipe_log", "_answer", "_answer_to_web_x",
                                                              "_answer_pipe_count", "true"]))
frames = st.dictionaries(frame_keys, frame_values, max_size=8).map(lambda d: json.dumps(d))
deep = st.integers(min_value=1, max_value=3000).map(lambda n: "[" * n + "]" * n)
frame_text = st.one_of(frames, st.text(max_size=200), deep,
                       st.lists(frames, min_size=1, max_size=4).map("\n".join),
                       frames.map(lambda f: f.replace('"', "\\'", 1)))


# -- comet_py ---------------------------------------------------------------------------------

def _session() -> Session:
    s = Session(parse_options(dev_id=1, user_id=5, user_key="hash4hash4"),
                uuid="uuidU3000000000000000000000000U3", rng=random.Random(1))
    s.connecting()
    s.opened()
    s.set_channels({"web_x", "track_x"})
    return s


@settings(FUZZ, max_examples=150)
@given(frame_text)
def test_frame_decoder_and_session_never_raise(text):
    objs = _timed(P.decode_frame, text)
    assert all(isinstance(o, dict) for o in objs)
    for o in objs:
        _timed(P.classify, o)
    s = _session()
    _timed(s.received, '{"authorized":true,"data":"k","event":"serverInfo","pipe":"sys","server":"comet_server"}')
    _timed(s.received, text)


envelope_kinds = st.sampled_from(sorted(R.KINDS) + ["nope"])
envelopes = st.fixed_dictionaries(
    {"v": st.sampled_from([1, 1, 2, "1", True]), "k": envelope_kinds,
     "from": st.sampled_from(["a", "b" * 16, "", "x" * 65, 3]), "to": st.sampled_from(["*", "a", "b" * 16, None]),
     "term": st.sampled_from([0, 1, -1, 2**70, "1", 1.5])},
    optional={"channels": json_values, "markers": json_values, "req": st.integers() | st.text(max_size=3),
              "op": st.sampled_from(["web_pipe", "pipe_log", "x"]), "args": json_values, "m": json_values,
              "state": json_values, "master": st.sampled_from(["a", "b" * 16]), "at": json_values,
              "seq": json_values, "detail": json_values, "value": json_values, "error": json_values,
              "authorized": json_values})


@settings(FUZZ, max_examples=100)
@given(st.one_of(envelopes.map(json.dumps), st.text(max_size=200), deep.map(lambda d: '{"v":1,"m":' + d + "}"),
                 envelopes))
def test_relay_envelope_parser_never_raises(data):
    m = _timed(R.parse, data)
    assert m is None or isinstance(m, dict)
    follower = R.FollowerRelay("b" * 16)
    master = R.MasterRelay("a", 1)
    _timed(follower.on_message, data, 1.0)
    _timed(master.on_message, data, 1.0)


# -- comet_server -----------------------------------------------------------------------------

_HUB = Hub(Store(":memory:"), "CometQLPassword", server_name="fuzz")
_HUB.store.set_pipe_length(1, "web_x", 5)
_HUB.store.add_history(1, "web_x", "e", "d", 0, 1, 5)

free_args = st.builds(lambda args, sep: sep + "\n".join(args), st.lists(line, max_size=5),
                      st.sampled_from(["\n", "", " \n", "\r\n"]))
# the positional shape of every command: <command>\n<channel or id>\n<marker or id>\n<number>
shaped_args = st.builds(lambda pipe, mark, num: f"\n{pipe}\n{mark}\n{num}\n",
                        st.sampled_from(["web_x", "private_x", "track_x", "webauth_x", "5", "x", "bad.name"]),
                        st.sampled_from(["M1", "7", "bad marker", "", "\u00b2"]), digits)


@pytest.mark.parametrize("command", sorted(ws.COMMANDS) + ["nope"])
@settings(FUZZ, max_examples=60)
@given(st.one_of(shaped_args, free_args), st.booleans())
def test_command_parser_never_fails(command, args, authorized):
    text = command + args
    t = RecordingTransport()
    c = Client(_HUB, None, t, dev_id=1, user_id=3 if authorized else 0, authorized=authorized)
    _HUB.register(c)
    try:
        _timed(ws.handle_command, _HUB, c, text)
    finally:
        _HUB.unregister(c)
    for m in t.messages():
        assert m.get("data", {}) != {"error": "Internal server error", "number_messages": -1}, text


url_parts = st.one_of(st.sampled_from(["sesion=", "&myid=", "&devid=", "&v=", "&uuid=", "&api=js", "=", "&",
                                       "4.08", "3.25", "\u00b2", "1" * 30, "%00", "/ws/", "//ws/"]),
                      st.text(max_size=20))


@settings(FUZZ, max_examples=200)
@given(st.one_of(st.lists(url_parts, max_size=12).map("".join), st.text(max_size=300)))
def test_url_parser_never_raises(raw):
    got = _timed(wire.parse_ws_url, raw)
    assert isinstance(got, (wire.WsUrl, wire.UrlError))
    if isinstance(got, wire.WsUrl):
        assert 0 <= got.dev_id <= wire.DEV_INDEX_SIZE and got.user_id >= 0 and len(got.uuid) <= wire.UUID_LEN


def _client_frame(payload: bytes, masked: bool, opcode: int = 0x1, fin: bool = True, rsv: int = 0) -> bytes:
    n = len(payload)
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    b1 = 0x80 if masked else 0
    if n < 126:
        head = bytes([b0, b1 | n])
    elif n < 65536:
        head = bytes([b0, b1 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, b1 | 127]) + n.to_bytes(8, "big")
    return head + (b"\0\0\0\0" if masked else b"") + payload


_FRAME = st.tuples(
    st.sampled_from([0x0, 0x1, 0x2, 0x3, 0x8, 0x9, 0xA, 0xF]),       # opcodes, reserved ones too
    st.booleans(),                                                    # fin
    st.booleans(),                                                    # masked
    st.sampled_from([0, 0, 0, 4]),                                    # RSV1 now and then
    st.one_of(st.binary(max_size=200), st.integers(0, 70000).map(lambda n: b"pipe_count\nweb_f\nM\n" + b" " * n)))


@settings(FUZZ, max_examples=150)
@given(st.lists(_FRAME, min_size=1, max_size=8), st.lists(st.integers(1, 9000), max_size=30))
def test_ws_connection_survives_any_frame_stream_cut_anywhere(frames, cuts):
    """WsConnection (websockets' parser, fragment joining, commands) on a recording transport:
    whatever frames arrive, cut wherever, nothing raises, each read is fast, and once the
    connection has failed (a close frame written) no command is answered any more."""
    from comet_server.ws_connection import WsConnection

    hub = Hub(Store(":memory:"), "CometQLPassword", server_name="fuzz")
    tr = RecordingTransport()
    conn = WsConnection(hub, tr)  # type: ignore[arg-type]
    client = Client(hub, conn, tr, dev_id=1, user_id=0, authorized=False)
    conn.client = client
    hub.register(client)
    stream = b"".join(_client_frame(data, masked, op, fin, rsv) for op, fin, masked, rsv, data in frames)
    pos = 0
    for cut in cuts + [len(stream)]:
        chunk = stream[pos:pos + cut]
        pos += len(chunk)
        if chunk and not tr.closing:
            _timed(conn.data_received, chunk)
    frames_out = tr.frames
    closes = [i for i, f in enumerate(frames_out) if f[0] & 0x0F == 0x8]
    if closes:
        assert tr.closing and all(f[0] & 0x0F != 0x1 for f in frames_out[closes[0] + 1:])
    conn.connection_lost(None)
    assert hub.connection_count() == 0
