# bench/ingest.py's receiver, one source for py_ingest.html (Pyodide) and mpy_ingest.html
# (MicroPython): cometApi subscribed to ?pipe=, a plain Python callback counts the messages and
# reads e.data["i"] (decoded by comet_py). Query: ?dev_id=&pipe=&n=.
import json

import js
from pyscript.ffi import create_proxy
from comet_py import cometApi

params = js.URLSearchParams.new(js.location.search)
PIPE = params.get("pipe") or "web_ingest"
N = int(params.get("n") or 20000)
state = {"count": 0, "first": 0.0, "checksum": 0}


def now():
    return js.performance.now()


def publish(name, value):
    """Hand a plain result to the bench driver (a JS object, the same way on both interpreters)."""
    setattr(js.window, name, js.JSON.parse(json.dumps(value)))


def on_message(e):
    if state["count"] == 0:
        state["first"] = now()
    state["count"] += 1
    state["checksum"] += e.data["i"]
    if state["count"] == N:
        publish("benchResult", {"first": state["first"], "last": now(), "n": state["count"],
                                "checksum": state["checksum"]})


def on_state(s, detail):
    if s == "connected":
        js.window.benchSubscribed = now()


def frames_like_the_servers(n):
    # written out: MicroPython's json.dumps has no sort_keys and its dicts keep no order
    return ['{"data":%s,"event":"m","message_send_time":1700000000,"pipe":"%s","user_id":0}'
            % (json.dumps('{"i": %d, "pad": "%s"}' % (k, "x" * 80)), PIPE) for k in range(n)]


def bench_direct(n, profile=False):
    """ms to hand n frames like the server's straight to comet_py's frame handler (no socket);
    with ``profile`` (Pyodide only), cProfile's table of that run instead."""
    conn = cometApi._coordinator._master().connection
    frames = frames_like_the_servers(n)
    if profile:
        import cProfile
        prof = cProfile.Profile()
        prof.enable()
    t0 = now()
    for frame in frames:
        conn._received(frame)
    took = now() - t0
    if profile:
        import io
        import pstats
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(30)
        return out.getvalue()
    return took


def bench_floor(n):
    """ms for the least any Python page does per frame: json-decode the frame and its data string
    (what the JS page's two JSON.parse do) and read data["i"], nothing of comet_py."""
    frames = frames_like_the_servers(n)
    loads = json.loads
    total = 0
    t0 = now()
    for frame in frames:
        total += loads(loads(frame)["data"])["i"]
    return now() - t0


js.window.benchCount = create_proxy(lambda: state["count"])
js.window.benchFloor = create_proxy(bench_floor)
js.window.benchDirect = create_proxy(bench_direct)
cometApi.on_state(on_state)
cometApi.subscription(PIPE, on_message)
cometApi.start({"dev_id": int(params.get("dev_id") or 1), "node": js.location.host})
