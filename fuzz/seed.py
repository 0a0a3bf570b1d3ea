#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into fuzz/corpus/<target>/seed-*: the golden
dnode messages of the Go reference and kite.js (tests/interop/golden), the hostile-input
table of core/tests/hostile.rs, the reference kite key and token (core/src/auth/testdata),
and hand-written hostile frames, payloads, tokens and queries. Run from anywhere:
`python3 fuzz/seed.py`; the output is committed."""

import base64
import glob
import json
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "corpus")


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def golden_messages():
    out = []
    for path in sorted(glob.glob(os.path.join(ROOT, "tests/interop/golden/*/*.json"))):
        peer = os.path.basename(os.path.dirname(path))
        name = os.path.basename(path)[: -len(".json")]
        with open(path, encoding="utf-8") as f:
            out.append((f"{peer}-{name}", f.read()))
    return out


def hostile_messages():
    """The literal messages of hostile.rs's table (r#"…"# strings that are JSON objects)."""
    with open(os.path.join(ROOT, "core/tests/hostile.rs"), encoding="utf-8") as f:
        text = f.read()
    found = re.findall(r'\("([^"]+)",\s*r#"(\{.*?\})"#', text)
    return [(re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-"), m) for label, m in found]


def sockjs_quote(s):
    return json.dumps(s, ensure_ascii=False)


def main():
    messages = golden_messages()
    hostile = hostile_messages()
    assert len(messages) > 20 and len(hostile) > 10, (len(messages), len(hostile))
    deep = "[" * 200 + "1" + "]" * 200

    # dnode messages and call options: the same inputs.
    for target in ("dnode_message", "call_options"):
        for name, m in messages:
            write(target, "golden-" + name, m)
        for name, m in hostile:
            write(target, "hostile-" + name, m)
        extra = {
            "lone-surrogate": '{"method":"square","arguments":[{"withArgs":["x\\ud83d"],"responseCallback":"[Function]"}],"callbacks":{"1":[0,"responseCallback"]}}',
            "duplicate-method": '{"method":"a","method":"b","arguments":[]}',
            "duplicate-callback": '{"method":"a","arguments":[[1]],"callbacks":{"1":[0,0],"1":[0]}}',
            "escaped-key": '{"meth\\u006fd":"a","arguments":[]}',
            "string-index": '{"method":"a","arguments":[[0,1]],"callbacks":{"2":["0","+1"]}}',
            "huge-index": '{"method":"a","arguments":[[0]],"callbacks":{"2":[0,18446744073709551615]}}',
            "float-args": '{"method":"a","arguments":[{"withArgs":[0.1,1e-7,123456789.123456789,-0.0,5e-324]}]}',
            "deep": '{"method":"a","arguments":[' + deep + "]}",
            "null-everything": '{"method":"a","arguments":null,"callbacks":null}',
            "kite-null": '{"method":"a","arguments":[{"kite":null,"withArgs":1}]}',
            "auth-wrong-type": '{"method":"a","arguments":[{"authentication":{"type":1,"key":2}}]}',
        }
        for name, m in extra.items():
            write(target, name, m)

    # SockJS client payloads.
    for name, m in messages:
        write("sockjs_payload", "golden-" + name, "[" + sockjs_quote(m) + "]")
    payloads = {
        "two": '["a","b"]',
        "empty-array": "[]",
        "single-string": '"hello"',
        "escapes": '["\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude80"]',
        "lone-high": '["x\\ud83d"]',
        "lone-low": '["\\ude80x"]',
        "raw-control": '["a\x01b"]',
        "spaces": '[ "a" , "b" ]',
        "not-strings": '[1,true,null]',
        "unterminated": '["abc',
        "trailing": '["a"]x',
        "nested": '[["a"]]',
        "deep": deep,
        "bad-utf8": b'["\xff\xfe"]',
        "empty": b"",
        "u2028": '["a\\u2028b\xe2\x80\xa8"]',
    }
    for name, p in payloads.items():
        write("sockjs_payload", name, p)

    # SockJS frames a client reads.
    for name, m in messages:
        write("sockjs_frame", "golden-" + name, "a[" + sockjs_quote(m) + "]")
    frames = {
        "open": "o",
        "heartbeat": "h\n",
        "close": 'c[3000,"Go away!"]',
        "close-big-code": 'c[70000,"x"]',
        "close-negative": 'c[-1,"x"]',
        "message": 'm"hello"',
        "array-two": 'a["a","b"]',
        "array-escapes": 'a["\\u200c\\u2028\\ufff0\\ud83d\\ude80"]',
        "array-lone": 'a["\\ud800"]',
        "array-broken": 'a["a",',
        "unknown": "x[]",
        "empty": "",
        "multibyte-kind": "\u00e9[]",
    }
    for name, f in frames.items():
        write("sockjs_frame", name, f)

    # JWTs: mode byte 0 = the token as is; 1 = overwrite the reference kite key.
    testdata = os.path.join(ROOT, "core/src/auth/testdata")
    with open(os.path.join(testdata, "golden_kite.key")) as f:
        kite_key = f.read().strip()
    with open(os.path.join(testdata, "golden_token.jwt")) as f:
        token = f.read().strip()
    b64 = lambda v: base64.urlsafe_b64encode(json.dumps(v).encode()).decode().rstrip("=")
    header, payload, signature = kite_key.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    tokens = {
        "kite-key": kite_key,
        "token": token,
        "kite-key-padded": header + "=." + payload + "." + signature,
        "alg-none": b64({"alg": "none", "typ": "JWT"}) + "." + payload + ".",
        "hs256": b64({"alg": "HS256", "typ": "JWT"}) + "." + payload + "." + signature,
        "ps256": b64({"alg": "PS256", "typ": "JWT"}) + "." + payload + "." + signature,
        "claims-changed": header + "." + b64(dict(claims, sub="root")) + "." + signature,
        "expired": header + "." + b64(dict(claims, exp=1)) + "." + signature,
        "no-kontrol-key": header + "." + b64({k: v for k, v in claims.items() if k != "kontrolKey"}) + "." + signature,
        "two-segments": header + "." + payload,
        "four-segments": kite_key + ".x",
        "not-base64": "!!.??.**",
        "null-claims": header + "." + b64({"sub": None, "exp": None, "kontrolKey": None}) + ".x",
        "huge-numbers": header + "." + b64({"exp": 1e300, "iat": -1e300}) + ".x",
    }
    for name, t in tokens.items():
        write("jwt", name, b"\x00" + t.encode())
    for at in (0, len(header) + 3, len(header) + len(payload) // 2, len(kite_key) - 5):
        write("jwt", f"splice-{at}", b"\x01" + at.to_bytes(2, "little") + b"A")

    # Kontrol queries: JSON, or fields separated by 0xff.
    queries = {
        "one": {"username": "bench", "environment": "prod", "name": "svc-7", "version": "1.0.0", "region": "eu", "hostname": "host-1"},
        "name": {"username": "bench", "environment": "prod", "name": "svc-7"},
        "user": {"username": "bench"},
        "constraint": {"username": "u", "environment": "e", "name": "math", "version": ">= 1.0, < 1.4"},
        "tilde": {"username": "u", "environment": "e", "name": "m", "version": "~1.2", "region": "r"},
        "x-range": {"username": "u", "environment": "e", "name": "m", "version": "1.x"},
        "bad-constraint": {"username": "u", "environment": "e", "name": "m", "version": ">= banana"},
        "gap": {"username": "u", "name": "math"},
        "empty": {},
        "id": {"username": "u", "environment": "e", "name": "n", "version": "1.0.0", "region": "r", "hostname": "h", "id": "7e2a4f5c-1b2d-4c3e-9f00-0123456789ab"},
        "unicode": {"username": "\u00e9\u2028", "environment": "/"},
    }
    for name, q in queries.items():
        write("kontrol_query", "json-" + name, json.dumps(q, ensure_ascii=False))
    fields = {
        "one": ["bench", "prod", "svc-7", "1.0.0", "eu", "host-1"],
        "constraint": ["u", "e", "m", ">=1.0,<2", "r"],
        "v-prefix": ["u", "e", "m", "v1.2.3"],
        "gap": ["u", "", "m"],
        "operators": ["u", "e", "m", "!= 1.0, ^2, > 3.x, <= 4.0.0-rc.1+b"],
    }
    for name, f in fields.items():
        write("kontrol_query", "fields-" + name, b"\xff".join(x.encode() for x in f))


if __name__ == "__main__":
    main()
