# The worker side of worker.html: the same test namespace as harness.html, exported to the page.
import asyncio
import json
import traceback

import js
from pyodide.code import eval_code_async

import comet_py

ns = {"comet_py": comet_py, "asyncio": asyncio, "js": js, "json": json, "log": []}
exec(
    "from comet_py import *\n"
    "def rec(tag):\n"
    "    def callback(e):\n"
    "        log.append({'tag': tag, **e.to_dict()})\n"
    "    return callback\n"
    "def tagged(tag):\n"
    "    return [x for x in log if x['tag'] == tag]\n",
    ns,
)


def _answer(ok, value):
    return json.dumps({"ok": ok, "value": value}, default=repr)


async def py_exec(code):
    try:
        return _answer(True, await eval_code_async(code, ns))
    except BaseException:
        return _answer(False, traceback.format_exc())


def py_eval(expr):
    try:
        return _answer(True, eval(expr, ns))
    except BaseException:
        return _answer(False, traceback.format_exc())


def ready():
    return True


__export__ = ["py_exec", "py_eval", "ready"]
