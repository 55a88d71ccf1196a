import pytest

from comet_py.errors import OptionsError
from comet_py.options import Options, parse_options


def test_defaults_and_normalisation():
    o = parse_options({"dev_id": "15"})
    assert o == Options(dev_id=15, user_id=0, user_key="", nodes=("127.0.0.1:8087",), wss=None, uuid=None)
    assert o.key == "127.0.0.1:8087|15|0"
    o = parse_options(dev_id=1, user_id="12", user_key="hash", node="example.ru:8087/comet-server/")
    assert (o.user_id, o.node, o.key) == (12, "example.ru:8087/comet-server", "example.ru:8087/comet-server|1|12")


@pytest.mark.parametrize("anon", [None, "", 0, "0"])
def test_anonymous_user_ids(anon):
    assert parse_options(dev_id=0, user_id=anon).user_id == 0


def test_keywords_override_dict():
    assert parse_options({"dev_id": 1}, dev_id=2).dev_id == 2


@pytest.mark.parametrize(
    "opt, key",
    [
        ({}, "dev_id"),
        ({"dev_id": -1}, "dev_id"),
        ({"dev_id": True}, "dev_id"),
        ({"dev_id": "1a"}, "dev_id"),
        ({"dev_id": 1, "user_id": 1.5}, "user_id"),
        ({"dev_id": 1, "user_key": 5}, "user_key"),
        ({"dev_id": 1, "user_key": "a&myid=2"}, "user_key"),
        ({"dev_id": 1, "user_key": "x" * 601}, "user_key"),
        ({"dev_id": 1, "user_key": "has space"}, "user_key"),
        ({"dev_id": 1, "node": "ws://host"}, "node"),
        ({"dev_id": 1, "node": "host:99999"}, "node"),
        ({"dev_id": 1, "node": []}, "node"),
        ({"dev_id": 1, "node": 8087}, "node"),
        ({"dev_id": 1, "wss": "yes"}, "wss"),
        ({"dev_id": 1, "uuid": "short"}, "uuid"),
        ({"dev_id": 1, "usr_id": 3}, "usr_id"),
    ],
)
def test_errors_name_the_key(opt, key):
    with pytest.raises(OptionsError) as ei:
        parse_options(opt)
    assert repr(key) in str(ei.value)
    assert isinstance(ei.value, ValueError)


def test_unknown_key_suggests_the_close_one():
    with pytest.raises(OptionsError, match="did you mean 'user_id'"):
        parse_options(dev_id=1, userid=3)


def test_node_list_and_jwt_key():
    jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VyX2lkIjo1fQ.jXeCiNOA1eKLiLwcA2bkyaFZOhewvt81FCIfF278aO8"
    o = parse_options(dev_id=1, user_id=5, user_key=jwt, node=["a.example:8087", "[::1]:8087"])
    assert o.nodes == ("a.example:8087", "[::1]:8087") and o.user_key == jwt
    assert o.key == "a.example:8087,[::1]:8087|1|5"


def test_merged_keeps_unnamed_keys():
    o = parse_options(dev_id=1, user_id=3, user_key="k", node="h:1", wss=True)
    m = o.merged({"user_id": 4, "user_key": "k2"})
    assert (m.dev_id, m.user_id, m.user_key, m.node, m.wss) == (1, 4, "k2", "h:1", True)
    assert o.merged() == o
    with pytest.raises(OptionsError):
        o.merged({"bogus": 1})


# The regexes options.py used before its checks became plain code (MicroPython's re has no
# fullmatch or named groups and fails {m,n} silently): the plain code must accept exactly what
# they accepted, on any string.
_OLD_NODE_RE = __import__("re").compile(
    r"(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
    r"(?::(?P<port>[0-9]{1,5}))?"
    r"(?P<path>(?:/[A-Za-z0-9._~-]+)*)/?")
_OLD_UUID_RE = __import__("re").compile(r"[A-Za-z0-9_-]{32}")


def _old_node_ok(node: str) -> bool:
    m = _OLD_NODE_RE.fullmatch(node)
    return m is not None and (m.group("port") is None or 0 < int(m.group("port")) < 65536)


def _accepted(**kw) -> bool:
    try:
        parse_options(dev_id=1, **kw)
    except OptionsError:
        return False
    return True


def test_node_check_accepts_what_the_old_regex_did():
    import random
    rng = random.Random(15)
    alphabet = "ab9.-:/[]_~ \u00e9\n0F"
    samples = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in range(20000)]
    samples += ["a:00080", "a:000000", "[::1]:65535/x/", "a.-b", "[:]:1", "a:080/", "[1]/p//"]
    differ = [s for s in samples if "://" not in s and _accepted(node=s) != _old_node_ok(s)]
    assert not differ, differ[:20]


def test_uuid_check_accepts_what_the_old_regex_did():
    import random
    rng = random.Random(16)
    samples = ["".join(rng.choice("aZ9_-!\u00e9") for _ in range(rng.choice((31, 32, 33))))
               for _ in range(3000)]
    for s in samples:
        assert _accepted(uuid=s) == (_OLD_UUID_RE.fullmatch(s) is not None), s
