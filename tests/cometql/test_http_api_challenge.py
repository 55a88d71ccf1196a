"""POST /api/publish with wrong credentials: the Basic challenge goes to HTTP clients (curl
--anyauth, browsers navigating), never to a page's fetch()/XHR, whose request the browser's
login prompt would hold open."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import pytest

BODY = json.dumps({"pipe": "web_x", "event": "e", "message": "m"}).encode()
WRONG = "Basic " + base64.b64encode(b"1:wrong").decode()


def refuse(server, headers: dict) -> tuple[int, str | None, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{server.port}/api/publish", data=BODY, method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": WRONG, **headers})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(req, timeout=5)
    e = caught.value
    return e.code, e.headers.get("WWW-Authenticate"), json.loads(e.read())


def test_plain_http_clients_get_the_basic_challenge(server):
    for headers in ({}, {"Sec-Fetch-Mode": "navigate"}):
        status, challenge, body = refuse(server, headers)
        assert (status, challenge, body["code"]) == (401, 'Basic realm="comet_server"', 16), headers


@pytest.mark.parametrize("headers", [{"Sec-Fetch-Mode": "cors"}, {"Sec-Fetch-Mode": "same-origin"},
                                     {"X-Requested-With": "fetch"}])
def test_page_scripts_get_the_json_refusal_without_a_challenge(server, headers):
    status, challenge, body = refuse(server, headers)
    assert (status, challenge) == (401, None)
    assert body["ok"] is False and body["code"] == 16 and "Authentication failed" in body["error"]
