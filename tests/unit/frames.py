"""Replay fixtures: server frames exactly as captured.

CPP_*: frames captured verbatim from a real CppComet 4.09 server (recorded while
the project was written; V3_* are the legacy form a v=3.25 URL gets). CS_*: comet_server
frames as specified in docs/design.md §3.
"""

# ---------------------------------------------------------------- CppComet, v4

CPP_INFO_ANON = r'{"authorized":false,"data":"","event":"serverInfo","message_send_time":1795823336,"pipe":"sys","server":"CppComet community 4.09 (AGPL license)"}'
CPP_INFO_AUTH = r'{"authorized":true,"data":"valid00000userHash","event":"serverInfo","message_send_time":1795823350,"pipe":"sys","server":"CppComet community 4.09 (AGPL license)"}'

CPP_COMETQL_PLAIN = r'{"data":"hello","event":"ev","message_send_time":1795823336,"pipe":"test_pipe"}'
CPP_COMETQL_JSON = r'{"data":"{\"text\":\"hi\",\"n\":1}","event":"json_ev","message_send_time":1795823337,"pipe":"test_pipe"}'
CPP_COMETQL_ESC = r'{"data":"it' + "'" + r's \\\"quoted\\\" back\\\\slash unicode-é","event":"esc","message_send_time":1795823337,"pipe":"test_pipe"}'

# web_pipe2 from uid 3: data is the MySQL-escaped JSON text.
CPP_WEB_PIPE = r'{"data":"{\\\"a\\\":1}","event":"fromU3","message_send_time":1795823348,"pipe":"web_chat","user_id":3}'
CPP_WEB_PIPE_STRING = r'{"data":"\\\"plain string\\\"","event":"myevent","message_send_time":1795823339,"pipe":"web_chat","user_id":0}'
CPP_REPORT = r'{"data":{"message":"{\\\"text\\\":\\\"from B\\\"}","number_messages":1},"event":"answer","message_send_time":1795823338,"pipe":"_answer_to_web_chat"}'
CPP_REPORT_LOG = r'{"data":{"message":"{\\\"j\\\":1}","number_messages":0},"event":"answer","message_send_time":1795823342,"pipe":"_answer_to_web_log"}'
CPP_ERR_WEB_ONLY = r'{"data":{"error":"[pipe_msg2] Invalid channel name. The channel should begin with web_","number_messages":-1},"event":"error","message_send_time":1795823340,"pipe":"sys"}'
CPP_ERR_CHARS = r'{"data":{"error":"The channel name can only contain characters A-Za-z0-9_-","number_messages":-1},"event":"error","message_send_time":1795823357,"pipe":"sys"}'

CPP_COUNT_COAL1 = r'{"data":["user_in_pipe",2],"event":"user_in_pipe","marker":"MrkCoal001","message_send_time":1795823357,"pipe":"_answer_pipe_count"}'
CPP_COUNT_COAL2 = r'{"data":["user_in_pipe",2],"event":"user_in_pipe","marker":"MrkCoal002","message_send_time":1795823357,"pipe":"_answer_pipe_count"}'

CPP_LOG_ITEMS = [
    r'{"data":"{\"i\":0}","event":"e0","fromQueue":true,"message_send_time":1795823341,"pipe":"web_log","user_id":0}',
    r'{"data":"{\"i\":1}","event":"e1","fromQueue":true,"message_send_time":1795823341,"pipe":"web_log","user_id":0}',
    r'{"data":"{\"i\":2}","event":"e2","fromQueue":true,"message_send_time":1795823341,"pipe":"web_log","user_id":0}',
]

CPP_TRACK_SUB = r'{"data":{"user_id":0,"uuid":"uuidC0000000000000000000000000CC"},"event":"subscription","message_send_time":1795823344,"pipe":"track_room"}'
CPP_TRACK_USERS = r'{"_info":"answer for track_pipe_users","data":[{"user_id":0,"uuid":"uuidC0000000000000000000000000CC"},{"user_id":0,"uuid":"uuidB0000000000000000000000000BB"},{"user_id":0,"uuid":"uuidA0000000000000000000000000AA"}],"event":"answer","marker":"Mrk0000007","message_send_time":1795823345,"pipe":"_answer"}'
CPP_USER_DATA = r'{"data":{"user_data":"{\"name\":\"Seven\"}","user_id":7},"event":"answer","marker":"Mrk0000008","message_send_time":1795823355,"pipe":"_answer"}'

CPP_PERSONAL_LIVE = r'{"data":"{\"text\":\"to both\"}","event":"chat","pipe":"msg"}'
CPP_PERSONAL_QUEUED = r'{"data":"{\"q\":1}","event":"queued","fromQueue":true,"message_send_time":1795823352,"pipe":"msg"}'

# §13: 121..126-byte payloads; 123/124/125 arrive with NUL tails.
CPP_LEN_121 = r'{"data":"mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm","event":"e","message_send_time":1795823363,"pipe":"lenpipe"}'
CPP_LEN_122 = r'{"data":"mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm","event":"e","message_send_time":1795823363,"pipe":"lenpipe"}'
CPP_LEN_123 = r'{"data":"mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm","event":"e","message_send_time":1795823363,"pipe":"lenpipe"' + "\x00"
CPP_LEN_124 = r'{"data":"mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm","event":"e","message_send_time":1795823364,"pipe":"lenpipe' + "\x00\x00"
CPP_LEN_125 = r'{"data":"mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm","event":"e","message_send_time":1795823364,"pipe":"lenpip' + "\x00\x00\x00"
CPP_LEN_126 = r'{"data":"mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm","event":"e","message_send_time":1795823364,"pipe":"lenpipe"}'
CPP_ERR_CORRUPT_123 = r'{"data":{"error":"Invalid channel name.","number_messages":-1},"event":"error","message_send_time":1795823357,"pipe":"sys"' + "\x00"

# ------------------------------------------------------- CppComet, legacy v3.25

V3_INFO_AUTH = r'{"api_data":"for major_version < 4","authorized":true,"data":"valid00000userHash","event":"serverInfo","event_name":"serverInfo","message_send_time":1795823347,"pipe":"sys","server":"CppComet community 4.09 (AGPL license)"}'
V3_WEB_PIPE = r'{"api_data":"for major_version < 4","data":"{\\\"text\\\":\\\"from B\\\"}","event":"myevent","event_name":"myevent","message_send_time":1795823338,"pipe":"web_chat","user_id":0}'
V3_TRACK_SUB = r'{"api_data":"for major_version < 4","data":"{\"user_id\":0,\"uuid\":\"uuidB0000000000000000000000000BB\"}","event":"subscription","event_name":"subscription","message_send_time":1795823336,"pipe":"track_room"}'
V3_COUNT = r'{"api_data":"for major_version < 4","data":"[\"user_in_pipe\",2]","event":"user_in_pipe","event_name":"user_in_pipe","marker":"Mrk0000001","message_send_time":1795823340,"pipe":"_answer_pipe_count"}'
V3_LOG_ITEM = r'{"api_data":"for major_version < 4","data":"{\"j\":1}","event":"fromjs","event_name":"fromjs","fromQueue":true,"message_send_time":1795823342,"pipe":"web_log","user_id":0}'
V3_REPORT = r'{"api_data":"for major_version < 4","data":"{\"message\":\"{\\\\\\\"a\\\\\\\":1}\",\"number_messages\":1}","event":"answer","event_name":"answer","message_send_time":1795823348,"pipe":"_answer_to_web_chat"}'
V3_PRESENCE = r'{"api_data":"for major_version < 4","data":"online","event":"online","event_name":"online","pipe":"user_status_3"}'
V3_CONNECT_401 = r'{"api_data":"for major_version < 4","data":"{\"error\":\"Error code 401(Invalid request, the user ID can not be found)\",\"error_code\":401,\"info\":\"Closed due to error. See last message.\"}","event":"error","event_name":"error","message_send_time":1795823360,"pipe":"sys"}'
V3_USER_DATA = r'{"api_data":"for major_version < 4","data":"{\"user_data\":\"{\\\"name\\\":\\\"Seven\\\"}\",\"user_id\":7}","event":"answer","event_name":"answer","marker":"Mrk0000009","message_send_time":1795823356,"pipe":"_answer"}'

# --------------------------------------------------- comet_server (design.md §3)

CS_INFO_AUTH = r'{"authorized":true,"data":"hash4hash4","event":"serverInfo","message_send_time":1795900000,"pipe":"sys","server":"comet_server 0.1.0"}'
CS_INFO_ANON = r'{"authorized":false,"data":"","event":"serverInfo","message_send_time":1795900000,"pipe":"sys","server":"comet_server 0.1.0"}'
# authorized as the string "true" (what the v3.25 JS client expected)
CS_INFO_AUTH_STR = r'{"authorized":"true","data":"hash4hash4","event":"serverInfo","message_send_time":1795900000,"pipe":"sys","server":"comet_server 0.1.0"}'


def compact_json(value) -> str:
    """``json.dumps(value, sort_keys=True, separators=(",", ":"))``, written out so that these
    frames are built under MicroPython too (tests/mpy: its json has no sort_keys)."""
    import json

    if isinstance(value, dict):
        return "{" + ",".join([json.dumps(k) + ":" + compact_json(value[k]) for k in sorted(value)]) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join([compact_json(item) for item in value]) + "]"
    return json.dumps(value)


def cs_live(pipe: str, history_id: int | None, data: str = "x", event: str = "e", user_id: int = 5) -> str:
    """comet_server channel message (web_pipe2 text not escaped; history_id on history channels)."""
    d = {"data": data, "event": event, "message_send_time": 1795900001, "pipe": pipe, "user_id": user_id}
    if history_id is not None:
        d["history_id"] = str(history_id)
    return compact_json(d)


def cs_history_item(pipe: str, history_id: int, data: str = "x", event: str = "e") -> str:
    return compact_json(
        {"data": data, "event": event, "fromQueue": True, "history": True, "history_id": str(history_id),
         "message_send_time": 1795900001, "pipe": pipe, "user_id": 5})


def cs_log_end(request_marker: str, n: int) -> str:
    return (
        '{"data":{"number_messages":%d},"event":"pipe_log","marker":"%s",'
        '"message_send_time":1795900002,"pipe":"_answer_pipe_log"}' % (n, request_marker)
    )


def cs_count(request_marker: str, n: int) -> str:
    return (
        '{"data":{"user_in_pipe":%d},"event":"user_in_pipe","marker":"%s",'
        '"message_send_time":1795900002,"pipe":"_answer_pipe_count"}' % (n, request_marker)
    )


def cs_report(pipe: str, text: str, n: int, *, user_id: int | None = None, history_id: str | None = None) -> str:
    data: dict = {"message": text, "number_messages": n}
    if user_id is not None:  # comet_server's report also says what the others got
        data.update(event="said", user_id=user_id)
    if history_id is not None:
        data["history_id"] = history_id
    return compact_json(
        {"data": data, "event": "answer", "message_send_time": 1795900002, "pipe": "_answer_to_" + pipe})


CS_WEB_PIPE_APOSTROPHE = r'''{"data":"{\"text\":\"it's \\\"ok\\\"\"}","event":"say","message_send_time":1795900001,"pipe":"web_chat","user_id":5}'''
CS_RUNTIME_ERROR = r'{"data":{"error":"Unknown command","number_messages":-1},"event":"error","message_send_time":1795900003,"pipe":"sys"}'
