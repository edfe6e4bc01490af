#!/usr/bin/env python3
"""Writes the seed corpus under fuzz/corpus/<target>/ (run from anywhere: python3 fuzz/make_corpus.py).

Every seed is built here from readable values: lowstate bodies as rest_wsgi clients send
them, msgpack replies and events as Salt's master writes them (salt.payload uses
use_bin_type=False: str family for strings, no str8; the IPC framing uses use_bin_type=True:
str8 and bin), event-bus frames bare (3006.0-3006.25, 3007, 3008) and with the 4-byte
length prefix (3006.26+), FastCGI requests as nginx sends them, CGI environments.

The msgpack encoder below is independent of the Rust crates under test on purpose.
Existing seed directories are emptied first, so the output is exactly what this script
makes (files fuzzing adds go to fuzz/target/corpus/, not here).
"""

import json
import math
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "corpus")
# Inputs that reproduce known, reported issues (docs/fuzzing.md, "Findings"). They are
# not seeds: each one crashes, times out or runs out of memory when run with
# FUZZ_KNOWN_BUGS=1 until the issue is fixed.
REGRESSIONS = os.path.join(HERE, "regressions")
JID = "20240101120000123456"


# ---------------------------------------------------------------- msgpack


class Ext:
    def __init__(self, code, data):
        self.code, self.data = code, data


class Raw:
    """Bytes inserted as they are (hand-made encodings)."""

    def __init__(self, data):
        self.data = data


def packb(obj, bin_type=False, float32=False):
    """msgpack like msgpack-python's packb(use_bin_type=bin_type)."""
    out = bytearray()

    def uint(n, marks):
        for limit, mark, fmt in marks:
            if n <= limit:
                out.append(mark)
                out.extend(struct.pack(fmt, n))
                return

    def raw_str(b):
        n = len(b)
        if n < 32:
            out.append(0xA0 | n)
        elif n < 256 and bin_type:
            out.extend(bytes([0xD9, n]))
        elif n < 65536:
            out.extend(b"\xda" + struct.pack(">H", n))
        else:
            out.extend(b"\xdb" + struct.pack(">I", n))
        out.extend(b)

    def go(o):
        if isinstance(o, Raw):
            out.extend(o.data)
        elif o is None:
            out.append(0xC0)
        elif o is True:
            out.append(0xC3)
        elif o is False:
            out.append(0xC2)
        elif isinstance(o, int):
            if 0 <= o < 128:
                out.append(o)
            elif o >= 0:
                uint(o, [(0xFF, 0xCC, ">B"), (0xFFFF, 0xCD, ">H"), (0xFFFFFFFF, 0xCE, ">I"), (2**64 - 1, 0xCF, ">Q")])
            elif o >= -32:
                out.append(o & 0xFF)
            else:
                for lo, mark, fmt in [(-128, 0xD0, ">b"), (-32768, 0xD1, ">h"), (-(2**31), 0xD2, ">i"), (-(2**63), 0xD3, ">q")]:
                    if o >= lo:
                        out.append(mark)
                        out.extend(struct.pack(fmt, o))
                        break
        elif isinstance(o, float):
            if float32:
                out.extend(b"\xca" + struct.pack(">f", o))
            else:
                out.extend(b"\xcb" + struct.pack(">d", o))
        elif isinstance(o, str):
            raw_str(o.encode("utf-8"))
        elif isinstance(o, (bytes, bytearray)):
            if not bin_type:
                raw_str(bytes(o))
            else:
                n = len(o)
                if n < 256:
                    out.extend(bytes([0xC4, n]))
                elif n < 65536:
                    out.extend(b"\xc5" + struct.pack(">H", n))
                else:
                    out.extend(b"\xc6" + struct.pack(">I", n))
                out.extend(o)
        elif isinstance(o, (list, tuple)):
            n = len(o)
            if n < 16:
                out.append(0x90 | n)
            elif n < 65536:
                out.extend(b"\xdc" + struct.pack(">H", n))
            else:
                out.extend(b"\xdd" + struct.pack(">I", n))
            for i in o:
                go(i)
        elif isinstance(o, dict):
            n = len(o)
            if n < 16:
                out.append(0x80 | n)
            elif n < 65536:
                out.extend(b"\xde" + struct.pack(">H", n))
            else:
                out.extend(b"\xdf" + struct.pack(">I", n))
            for k, v in o.items():
                go(k)
                go(v)
        elif isinstance(o, Ext):
            n = len(o.data)
            fixed = {1: 0xD4, 2: 0xD5, 4: 0xD6, 8: 0xD7, 16: 0xD8}
            if n in fixed:
                out.append(fixed[n])
            elif n < 256:
                out.extend(bytes([0xC7, n]))
            elif n < 65536:
                out.extend(b"\xc8" + struct.pack(">H", n))
            else:
                out.extend(b"\xc9" + struct.pack(">I", n))
            out.extend(struct.pack(">b", o.code))
            out.extend(o.data)
        else:
            raise TypeError(type(o))

    go(obj)
    return bytes(out)


def salt_dumps(obj):
    """salt.payload.dumps: use_bin_type=False."""
    return packb(obj, bin_type=False)


def datetime_ext(text):
    return Ext(78, text.encode())


def constant_ext(name, value):
    return Ext(79, salt_dumps([name, value]))


def event_frame(tag, data, prefixed=False, body_first=False, body_as_str=False):
    """What the master's event publisher writes for one event."""
    body = tag.encode() + b"\n\n" + salt_dumps(data)
    if body_as_str:
        body = Raw(packb(body.decode("utf-8", "replace")))
    entries = [("head", {}), ("body", body)]
    if body_first:
        entries.reverse()
    frame = packb(dict(entries), bin_type=True)
    if prefixed:
        frame = struct.pack(">I", len(frame)) + frame
    return frame


# ---------------------------------------------------------------- FastCGI


def fcgi_record(kind, rid, content=b"", pad_to_8=True):
    pad = (-len(content)) % 8 if pad_to_8 else 0
    return struct.pack(">BBHHBx", 1, kind, rid, len(content), pad) + content + b"\0" * pad


def fcgi_length(n):
    return bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)


def fcgi_params(pairs):
    out = b""
    for k, v in pairs:
        k, v = k.encode(), v if isinstance(v, bytes) else v.encode()
        out += fcgi_length(len(k)) + fcgi_length(len(v)) + k + v
    return out


def nginx_params(method, body_len=None, content_type="application/json", extra=()):
    p = [
        ("QUERY_STRING", ""),
        ("REQUEST_METHOD", method),
        ("CONTENT_TYPE", content_type if body_len is not None else ""),
        ("CONTENT_LENGTH", str(body_len) if body_len is not None else ""),
        ("SCRIPT_NAME", "/salt"),
        ("REQUEST_URI", "/salt"),
        ("DOCUMENT_URI", "/salt"),
        ("DOCUMENT_ROOT", "/usr/share/nginx/html"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_SCHEME", "http"),
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_SOFTWARE", "nginx/1.22.1"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", "51234"),
        ("SERVER_ADDR", "127.0.0.1"),
        ("SERVER_PORT", "80"),
        ("SERVER_NAME", "localhost"),
        ("REDIRECT_STATUS", "200"),
        ("HTTP_HOST", "localhost"),
        ("HTTP_USER_AGENT", "curl/7.88.1"),
        ("HTTP_ACCEPT", "application/json"),
    ]
    if body_len is not None:
        p += [("HTTP_CONTENT_TYPE", content_type), ("HTTP_CONTENT_LENGTH", str(body_len))]
    return p + list(extra)


def fcgi_request(rid, method, body=None, keep_conn=True, role=1, content_type="application/json",
                 extra=(), stdin_split=None, declared=None, data=None):
    """BEGIN_REQUEST, PARAMS, empty PARAMS, STDIN..., empty STDIN (as nginx sends it)."""
    n = None if body is None else (len(body) if declared is None else declared)
    out = fcgi_record(1, rid, struct.pack(">HB5x", role, 1 if keep_conn else 0))
    out += fcgi_record(4, rid, fcgi_params(nginx_params(method, n, content_type, extra)))
    out += fcgi_record(4, rid)
    if body:
        step = stdin_split or len(body)
        for i in range(0, len(body), step):
            out += fcgi_record(5, rid, body[i:i + step])
    out += fcgi_record(5, rid)
    if data is not None:
        out += fcgi_record(8, rid, data) + fcgi_record(8, rid)
    return out


# ---------------------------------------------------------------- seeds


def lowstate_bodies():
    auth = {"username": "saltdev", "password": "saltdev", "eauth": "pam"}
    one = lambda **kw: json.dumps([dict(kw, **auth)])
    return {
        "local_ping": one(client="local", tgt="*", fun="test.ping"),
        "local_args": one(client="local", tgt="web*", fun="cmd.run", arg=["uptime"], kwarg={"env": {"LANG": "C"}}),
        "local_list": one(client="local", tgt=["a", "b"], tgt_type="list", fun="test.echo", arg=["hi"], full_return=True),
        "local_compound": one(client="local", tgt="G@os:Debian and web*", tgt_type="compound", fun="grains.items", timeout=2.5),
        "local_nodegroup": one(client="local", tgt="web", tgt_type="nodegroup", fun="test.ping", ret="mysql"),
        "local_async": one(client="local_async", tgt="*", fun="test.sleep", arg=[1]),
        "local_batch": one(client="local_batch", tgt="*", fun="test.ping", batch="10%"),
        "local_subset": one(client="local_subset", tgt="*", fun="test.ping", sub=2),
        "runner": one(client="runner", fun="jobs.lookup_jid", jid=JID),
        "runner_kwarg": one(client="runner", fun="manage.up", kwarg={"timeout": 3}),
        "runner_async": one(client="runner_async", fun="test.sleep", s_time=1),
        "wheel": one(client="wheel", fun="key.list_all"),
        "wheel_async": one(client="wheel_async", fun="key.accept", match="web1"),
        "token": json.dumps([{"client": "local", "tgt": "*", "fun": "test.ping", "token": "a" * 40}]),
        "two_chunks": json.dumps([dict(client="local", tgt="*", fun="test.ping", **auth),
                                  dict(client="runner", fun="manage.status", **auth)]),
        "ssh": one(client="ssh", tgt="*", fun="test.ping"),
        "raw_shell": one(client="local", tgt="*", fun="cmd.run", raw_shell=True),
        "no_client": json.dumps([dict(tgt="*", fun="test.ping", **auth)]),
        "bad_client": one(client="destroy", fun="x"),
        "no_auth": json.dumps([{"client": "local", "tgt": "*", "fun": "test.ping"}]),
        "unicode": '[{"client":"local","tgt":"*","fun":"test.echo","arg":["\\u00e9\\u2603 \\ud83d\\ude00 \\" \\\\ \\n"],"eauth":"pam"}]',
        "numbers": '[{"client":"local","timeout":1e3,"n":-0,"big":18446744073709551615,"neg":-9223372036854775808,"f":0.1,"e":-2.5E-7}]',
        "pretty": json.dumps(json.loads(one(client="local", tgt="*", fun="test.ping")), indent=2) + "\n",
        "empty_list": "[]",
        "empty_chunk": "[{}]",
        "empty": "",
        "spaces": " \t\r\n",
        "object": '{"client":"local"}',
        "scalar_in_list": "[1]",
        "mixed": '[{}, []]',
        "truncated": '[{"client":"local","tgt":"*"',
        "trailing": '[{}] x',
        "bad_utf8": b'[{"client":"\xff\xfe"}]',
        "deep_ok": "[{\"a\":" + "[" * 62 + "1" + "]" * 62 + "}]",
        "deep_64": "[{\"a\":" + "[" * 63 + "]" * 63 + "}]",
        "deep_65": "[{\"a\":" + "[" * 64 + "]" * 64 + "}]",
        "deep_brackets_in_string": '[{"a":"' + "[" * 100 + '"}]',
        # The parsed value keeps only the last "arg"; the text nests 4 deep all the same.
        "duplicate_key_hides_nesting": '[{"client":"local","arg":[[]],"arg":1}]',
        "chunks_100": "[" + ",".join(["{}"] * 100) + "]",
        "chunks_101": "[" + ",".join(["{}"] * 101) + "]",
    }


def salt_replies():
    job = {"jid": JID, "minions": ["a"]}
    ret_event = {
        "cmd": "_return", "id": "a", "fun": "test.ping", "fun_args": [], "jid": JID,
        "retcode": 0, "return": True, "success": True, "_stamp": "2024-01-01T12:00:00.123456",
    }
    return {
        "publish_reply": salt_dumps({"enc": "clear", "load": job}),
        "publish_reply_missing": salt_dumps({"enc": "clear", "load": dict(job, missing=["b"], minions=["a", "b"])}),
        "publish_no_minions": salt_dumps({"enc": "clear", "load": {"jid": JID, "minions": []}}),
        "runner_async_reply": salt_dumps({"enc": "clear", "load": {"tag": "salt/run/" + JID, "jid": JID}}),
        "wheel_reply": salt_dumps({"enc": "clear", "load": {"tag": "salt/wheel/" + JID, "data": {
            "fun": "wheel.key.list_all", "jid": JID, "user": "saltdev", "success": True,
            "_stamp": "2024-01-01T12:00:00.123456",
            "return": {"local": ["master.pem", "master.pub"], "minions": ["a", "b"], "minions_pre": [],
                       "minions_rejected": [], "minions_denied": []}}}}),
        "auth_error": salt_dumps({"enc": "clear", "load": {"error": {
            "name": "AuthenticationError", "message": 'Authentication failure of type "eauth" occurred.'}}}),
        "authz_error": salt_dumps({"enc": "clear", "load": {"error": {
            "name": "AuthorizationError", "message": "Authorization error occurred."}}}),
        "load_error_string": salt_dumps({"enc": "clear", "load": "Server-side exception handling payload"}),
        "bad_load": salt_dumps("bad load"),
        "ret_event_data": salt_dumps(ret_event),
        "ret_event_fail": salt_dumps(dict(ret_event, retcode=1, success=False, fun="cmd.run",
                                          fun_args=["false"], **{"return": "ERROR: exit 1"})),
        "new_job_event": salt_dumps({"jid": JID, "tgt": "*", "tgt_type": "glob", "user": "saltdev",
                                     "fun": "test.ping", "arg": [], "minions": ["a"], "missing": [],
                                     "_stamp": "2024-01-01T12:00:00.123456"}),
        "runner_ret_event": salt_dumps({"fun": "runner.manage.up", "jid": JID, "user": "saltdev",
                                        "success": True, "return": ["a", "b"],
                                        "_stamp": "2024-01-01T12:00:00.123456"}),
        "numbers": salt_dumps([0, 1, 127, 128, 255, 256, 65535, 65536, 2**32, 2**64 - 1, -1, -32, -33,
                               -128, -129, -(2**15), -(2**31), -(2**63), 0.5, -1e300, 1e-300]),
        "float32": packb([1.5, -0.0, 3.4028234663852886e38], float32=True),
        "nan_inf": salt_dumps({"nan": math.nan, "inf": math.inf, "-inf": -math.inf}),
        "odd_keys": salt_dumps({1: "int", -5: "neg", None: "nil", True: "t", False: "f", 1.5: "float"}),
        "list_key": b"\x81" + salt_dumps([1, "a"]) + salt_dumps("v"),
        "map_key_4": b"\x81\x81\x81" + salt_dumps({"k": 1}) + b"\x01\x02\x03",
        "bin_types": packb({"s": "text", "b": b"\x00\xff binary", "u": b"caf\xc3\xa9"}, bin_type=True),
        "latin1_str": salt_dumps({"name": b"caf\xe9"}),
        "datetime": salt_dumps({"_stamp": datetime_ext("20240101T12:00:00.123456")}),
        "constant": salt_dumps({"c": constant_ext("True", True), "bad79": Ext(79, b"\xc1"), "other": Ext(5, b"xyz")}),
        "ext_sizes": salt_dumps([Ext(1, b"a"), Ext(2, b"ab"), Ext(3, b"abcd"), Ext(4, b"a" * 8), Ext(6, b"a" * 16),
                                 Ext(7, b"a" * 3), Ext(8, b"a" * 300)]),
        "ext79_chain_8": ext79_chain(8),
        "str16": salt_dumps(["x" * 40, "y" * 300]),
        "array16_map16": salt_dumps({"list": list(range(20)), "map": {str(i): i for i in range(20)}}),
        "deep_120": b"\x91" * 120 + b"\xc0",
        "deep_130": b"\x91" * 130 + b"\xc0",
        "trailing_byte": salt_dumps({"enc": "clear"}) + b"\x00",
        "truncated": salt_dumps({"enc": "clear", "load": job})[:-3],
        "reserved_c1": b"\x92\xc1\x01",
        "empty": b"",
    }


def ext79_chain(levels):
    doc = salt_dumps(None)
    for _ in range(levels):
        doc = salt_dumps(Ext(79, b"\x91" + doc))
    return doc


def event_frames():
    ret = {"cmd": "_return", "id": "a", "fun": "test.ping", "fun_args": [], "jid": JID, "retcode": 0,
           "return": True, "success": True, "_stamp": "2024-01-01T12:00:00.123456"}
    new = {"jid": JID, "tgt": "*", "tgt_type": "glob", "user": "saltdev", "fun": "test.ping", "arg": [],
           "minions": ["a"], "missing": [], "_stamp": "2024-01-01T12:00:00.123456"}
    frames = {
        "job_new": ("salt/job/%s/new" % JID, new),
        "job_ret": ("salt/job/%s/ret/a" % JID, ret),
        "run_new": ("salt/run/%s/new" % JID, {"fun": "runner.manage.up", "jid": JID, "user": "saltdev"}),
        "run_ret": ("salt/run/%s/ret" % JID, {"fun": "runner.manage.up", "jid": JID, "return": ["a"], "success": True}),
        "wheel_ret": ("salt/wheel/%s/ret" % JID, {"fun": "wheel.key.list_all", "return": {"minions": ["a"]}}),
        "auth": ("salt/auth", {"act": "accept", "id": "a", "pub": "-----BEGIN PUBLIC KEY-----\n" + "A" * 300, "result": True}),
        "minion_start": ("minion_start", {"cmd": "_minion_event", "data": "Minion a started", "id": "a"}),
        "medium_ret": ("salt/job/%s/ret/b" % JID, dict(ret, id="b", **{"return": {"out": "x" * 1000}})),
    }
    out = {}
    for name, (tag, data) in frames.items():
        out["bare_" + name] = event_frame(tag, data)
        out["prefixed_" + name] = event_frame(tag, data, prefixed=True)
    # A body over 64 KiB: bin32 (0xc6) and a str32 in the data.
    out["bare_big_ret"] = event_frame("salt/job/%s/ret/c" % JID, dict(ret, id="c", **{"return": "x" * 66000}))
    out["bare_body_first"] = event_frame("salt/job/%s/new" % JID, new, body_first=True)
    out["bare_body_as_str"] = event_frame("minion_start", {"id": "a"}, body_as_str=True)
    out["bare_no_separator"] = packb({"head": {}, "body": b"salt/job/x/new"}, bin_type=True)
    out["bare_map16"] = packb(Raw(b"\xde\x00\x02" + packb("head") + packb({}) + packb("body", bin_type=True)
                                  + packb(b"t\n\n\x80", bin_type=True)))
    out["bare_no_body"] = packb({"head": {}, "tail": b"x\n\n\x80"}, bin_type=True)
    out["prefixed_short"] = struct.pack(">I", 100) + event_frame("t", {})
    out["prefixed_zero"] = struct.pack(">I", 0)
    out["prefixed_huge"] = struct.pack(">I", 0x7FFFFFFF) + b"\x82"
    out["bare_truncated"] = event_frame("salt/auth", {"id": "a"})[:-5]
    out["garbage_c1"] = b"\x82\xa4head\xc1"
    return out


def stream_of(*frames):
    return b"".join(frames)


def map_key_nesting(levels):
    """`levels` one-entry maps, each the key of the next: {{{{"\"": 0}: 0}: 0}: 0}..."""
    return b"\x81" * levels + b"\x81\xa1\x22\x00" + b"\x00" * levels


def float_map():
    """{"a": 1.30918652314081e-309, "b": [-113.22589111328125, 124.23332112876233]}, float64s."""
    f = lambda x: b"\xcb" + struct.pack(">d", x)
    return (b"\x82" + b"\xa1a" + f(1.30918652314081e-309)
            + b"\xa1b" + b"\x92" + f(-113.22589111328125) + f(124.23332112876233))


def regressions():
    begin_empty = fcgi_record(1, 1, b"", pad_to_8=False)
    return {
        # salt::payload: ext 79 decodes its payload with a fresh depth budget, recursively.
        "payload_decode/ext79-chain-5000": ext79_chain(5000),
        # salt::payload::key_string: map keys re-escaped at every level, ~2^30 bytes.
        "payload_decode/map-key-nesting-30": map_key_nesting(30),
        # serde_json without float_roundtrip: 17-digit floats read back one ULP off.
        "payload_decode/float-json-roundtrip": float_map(),
        # tokio-fastcgi 1.3.0 Request::new: BEGIN_REQUEST with no content.
        "fastcgi_records/begin-request-empty": begin_empty,
        "fastcgi_pipeline/begin-request-empty": begin_empty,
        "fastcgi_records/begin-request-1-byte": fcgi_record(1, 1, b"\x00", pad_to_8=False),
        # tokio-fastcgi 1.3.0 again: a BEGIN_REQUEST with no content and its padding cut off
        # (found through RecordCheck, which once handed on a cut record at EOF).
        "fastcgi_records/begin-request-padding-cut": bytes([1, 1, 1, 1, 0, 0, 9, 8]),
        # tokio-fastcgi 1.3.0 add_nv_pairs: buffers allocated from declared lengths (2 x 2 GiB).
        "fastcgi_records/params-declared-4gib": fcgi_record(1, 1, b"\x00\x01\x01" + b"\x00" * 5)
        + fcgi_record(4, 1, b"\xff\xff\xff\xf0" * 2 + b"ab", pad_to_8=False),
    }


def main():
    shutil.rmtree(ROOT, ignore_errors=True)
    shutil.rmtree(REGRESSIONS, ignore_errors=True)
    for name, data in regressions().items():
        path = os.path.join(REGRESSIONS, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    seeds = {t: {} for t in ["lowstate", "payload_decode", "payload_json", "event_frame", "event_stream",
                             "cgi_request", "fastcgi_records", "fastcgi_pipeline"]}

    bodies = {k: (v if isinstance(v, bytes) else v.encode()) for k, v in lowstate_bodies().items()}
    seeds["lowstate"] = bodies

    replies = {k: (v.data if isinstance(v, Raw) else v) for k, v in salt_replies().items()}
    seeds["payload_decode"] = replies

    seeds["payload_json"] = {k: v for k, v in bodies.items() if not k.startswith(("empty", "spaces", "truncated", "trailing", "bad_utf8"))}
    seeds["payload_json"].update({
        "values": b'{"u64":18446744073709551615,"i64":-9223372036854775808,"f":1.7976931348623157e308,"tiny":5e-324,"z":-0.0,"t":true,"n":null}',
        "strings": '["", "\\u0000", "\\ud83d\\ude00", "a\\"b\\\\c", "\u00e9\u2603"]'.encode(),
        "deep_126": b"[" * 126 + b"]" * 126,
        "deep_127": b"[" * 127 + b"\"s\"" + b"]" * 127,
        "scalar": b"42",
    })

    frames = event_frames()
    for name, frame in frames.items():
        sel = b"\x00" if name == "prefixed_huge" else b"\x03"
        seeds["event_frame"][name] = sel + frame
    seeds["event_frame"]["max_64_job_ret"] = b"\x01" + frames["bare_job_ret"]
    seeds["event_frame"]["max_4096_medium"] = b"\x02" + frames["prefixed_medium_ret"]
    seeds["event_frame"]["msgpack_values"] = b"\x03" + replies["numbers"]
    seeds["event_frame"]["msgpack_exts"] = b"\x03" + replies["ext_sizes"]

    streams = {
        "bare_three": stream_of(frames["bare_job_new"], frames["bare_job_ret"], frames["bare_minion_start"]),
        "prefixed_three": stream_of(frames["prefixed_job_new"], frames["prefixed_job_ret"], frames["prefixed_auth"]),
        "prefixed_medium": stream_of(frames["prefixed_run_new"], frames["prefixed_medium_ret"], frames["prefixed_run_ret"]),
        "bare_then_garbage": stream_of(frames["bare_run_new"], frames["garbage_c1"]),
        "prefixed_then_short": stream_of(frames["prefixed_wheel_ret"], frames["prefixed_short"]),
    }
    for name, stream in streams.items():
        for sel, sizes in [(3, b"\x01"), (3, b"\x07\x40\x03"), (2, b"\xff")]:
            seeds["event_stream"]["%s_%d_%d" % (name, sel, len(sizes))] = bytes([sel, len(sizes)]) + sizes + stream

    def cgi(sel, shape, env, body=b""):
        block = "".join("%s=%s\n" % kv for kv in env).encode()
        return bytes([sel, shape]) + block + b"\n" + body

    ping = bodies["local_ping"]
    post = lambda n, ct="application/json": [("REQUEST_METHOD", "POST"), ("CONTENT_TYPE", ct),
                                             ("CONTENT_LENGTH", n), ("PATH_INFO", "/"), ("SCRIPT_NAME", "/salt")]
    seeds["cgi_request"] = {
        "post_ping": cgi(3, 0, post(str(len(ping))), ping),
        "post_ping_short_reads": cgi(3, 5, post(str(len(ping))), ping),
        "post_ping_eintr": cgi(3, 0x80 | 9, post(str(len(ping))), ping),
        "post_charset": cgi(3, 0, post(str(len(ping)), "application/json; charset=utf-8"), ping),
        "post_upper_ct": cgi(3, 0, post(str(len(ping)), "APPLICATION/JSON"), ping),
        "post_text_plain": cgi(3, 0, post("2", "text/plain"), b"[]"),
        "post_no_length": cgi(3, 0, post(""), ping),
        "post_no_length_io_error": cgi(3, 0x40, post(""), ping),
        "post_length_spaces": cgi(3, 0, post(" 2 "), b"[]"),
        "post_length_plus": cgi(3, 0, post("+2"), b"[]"),
        "post_length_negative": cgi(3, 0, post("-1"), b"[]"),
        "post_length_word": cgi(3, 0, post("abc"), b"[]"),
        "post_truncated": cgi(3, 0, post("100"), b"[]"),
        "post_truncated_io_error": cgi(3, 0x40, post("100"), b"[]"),
        "post_extra_bytes": cgi(3, 0, post("2"), b"[]garbage"),
        "post_too_large_declared": cgi(1, 0, post("17"), b"[" + b" " * 15 + b"]"),
        "post_too_large_chunked": cgi(1, 0, post(""), b"[" + b" " * 30 + b"]"),
        "post_max_zero": cgi(0, 0, post("2"), b"[]"),
        "post_empty_list": cgi(2, 0, post("2"), b"[]"),
        "post_two_chunks": cgi(3, 0, post(str(len(bodies["two_chunks"]))), bodies["two_chunks"]),
        "post_bad_json": cgi(3, 0, post("5"), b"[{]}x"),
        "lower_post": cgi(3, 0, [("REQUEST_METHOD", "post"), ("CONTENT_TYPE", "application/json"), ("CONTENT_LENGTH", "2")], b"[]"),
        "get": cgi(3, 0, [("REQUEST_METHOD", "GET"), ("PATH_INFO", "/")]),
        "get_with_length": cgi(3, 0, [("REQUEST_METHOD", "GET"), ("CONTENT_LENGTH", "5")], b"hello"),
        "head": cgi(3, 0, [("REQUEST_METHOD", "HEAD")]),
        "options": cgi(3, 0, [("REQUEST_METHOD", "OPTIONS")]),
        "no_method": cgi(3, 0, [("PATH_INFO", "/x")]),
        "non_utf8_length": bytes([3, 0]) + b"REQUEST_METHOD=POST\nCONTENT_LENGTH=\xff2\nCONTENT_TYPE=application/json\n\n[]",
    }

    body = bodies["local_ping"]
    fcgi = {
        "nginx_post": fcgi_request(1, "POST", body),
        "nginx_post_id2": fcgi_request(2, "POST", body),
        "nginx_get": fcgi_request(1, "GET"),
        "nginx_get_no_keepalive": fcgi_request(1, "GET", keep_conn=False),
        "nginx_keepalive_two": fcgi_request(1, "GET") + fcgi_request(1, "POST", b"[]"),
        "nginx_post_split_stdin": fcgi_request(1, "POST", body, stdin_split=16),
        "nginx_post_big_odd": fcgi_request(3, "POST", b"[" + b" " * 100 + b"]"),
        "nginx_post_no_length": fcgi_request(1, "POST", body, declared=None,
                                             extra=[("CONTENT_LENGTH", "")]),
        "nginx_post_short_body": fcgi_request(1, "POST", b"[]", declared=10),
        "nginx_post_text": fcgi_request(1, "POST", b"[]", content_type="text/plain"),
        "nginx_delete": fcgi_request(1, "DELETE"),
        "nginx_post_two_chunks": fcgi_request(1, "POST", bodies["two_chunks"]),
        "nginx_cookie_long_param": fcgi_request(1, "GET", extra=[("HTTP_COOKIE", "session=" + "c" * 300)]),
        "mod_fcgid_post": fcgi_request(1, "POST", body, keep_conn=False),
        "authorizer": fcgi_request(1, "GET", role=2),
        "filter_with_data": fcgi_request(1, "POST", b"[]", role=3, data=b"file data"),
        "interleaved": (fcgi_record(1, 1, struct.pack(">HB5x", 1, 1)) + fcgi_record(1, 2, struct.pack(">HB5x", 1, 1))
                        + fcgi_record(4, 2, fcgi_params(nginx_params("GET"))) + fcgi_record(4, 1, fcgi_params(nginx_params("POST", 2)))
                        + fcgi_record(4, 1) + fcgi_record(4, 2) + fcgi_record(5, 1, b"[]") + fcgi_record(5, 2)
                        + fcgi_record(5, 1)),
        "get_values": fcgi_record(9, 0, fcgi_params([("FCGI_MAX_CONNS", ""), ("FCGI_MAX_REQS", ""), ("FCGI_MPXS_CONNS", "")]))
                      + fcgi_request(1, "GET"),
        "abort": fcgi_record(1, 1, struct.pack(">HB5x", 1, 1)) + fcgi_record(2, 1) + fcgi_request(1, "GET"),
        "unknown_type": fcgi_record(11, 1, b"\x00" * 8) + fcgi_request(1, "GET"),
        "unpadded": (
            fcgi_record(1, 1, struct.pack(">HB5x", 1, 1), pad_to_8=False)
            + fcgi_record(4, 1, fcgi_params(nginx_params("POST", 2)), pad_to_8=False)
            + fcgi_record(4, 1) + fcgi_record(5, 1, b"[]", pad_to_8=False) + fcgi_record(5, 1)),
        "params_after_done": (fcgi_record(1, 1, struct.pack(">HB5x", 1, 1)) + fcgi_record(4, 1) +
                              fcgi_record(4, 1, fcgi_params([("REQUEST_METHOD", "GET")])) + fcgi_record(5, 1)),
        "stdin_before_begin": fcgi_record(5, 1, b"[]") + fcgi_request(1, "GET"),
        "bad_role": fcgi_record(1, 1, struct.pack(">HB5x", 9, 1)) + fcgi_record(4, 1),
        "bad_version": b"\x02" + fcgi_request(1, "GET")[1:],
        "truncated": fcgi_request(1, "POST", body)[:-20],
        "empty": b"",
    }
    seeds["fastcgi_records"] = fcgi
    seeds["fastcgi_pipeline"] = fcgi

    total = 0
    for target, files in seeds.items():
        d = os.path.join(ROOT, target)
        os.makedirs(d, exist_ok=True)
        for name, data in files.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
            total += len(data)
        print("%-17s %3d files %7d bytes" % (target, len(files), sum(len(v) for v in files.values())))
    print("total %d bytes" % total)


if __name__ == "__main__":
    main()
