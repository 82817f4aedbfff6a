#!/usr/bin/env python3
"""Receives Switchboard's lifecycle events (the standalone server's `[events]` webhook).

Standard library only. It checks the signature and the replay window, drops the events it has
already seen (by `id`: delivery is at least once), and records the others, one JSON object a
line, to a file or stdout.

    python3 webhook_receiver.py --port 8000 --secret "$SWITCHBOARD_EVENTS_SECRET" --out events.jsonl

With --control (for tests and experiments, never in production) it also serves
`POST /_control` to make it fail for a while and `GET /_stats` with its counters.
"""

import argparse
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SIGNATURE_HEADER = "Switchboard-Signature"
MAX_BODY = 16 * 1024 * 1024


def verify(secret: bytes, header: str, body: bytes, tolerance: float, now: float) -> str | None:
    """Checks `Switchboard-Signature: t=SECONDS,v1=HEX[,v1=HEX…]` against the raw body.

    Returns None when the signature is valid and recent, else why not. The signed text is the
    timestamp, a dot, and the body exactly as received (verify before parsing the JSON).
    """
    t, signatures = None, []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            t = value
        elif name == "v1":
            signatures.append(value)
    if t is None or not t.isdigit() or not signatures:
        return "malformed signature header"
    if abs(now - int(t)) > tolerance:
        return "timestamp outside the replay window"
    expected = hmac.new(secret, t.encode() + b"." + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, s) for s in signatures):
        return "signature mismatch"
    return None


class Receiver:
    """What the backend keeps: the ids seen, each key's last sequence number, counters."""

    def __init__(self, secret: bytes, tolerance: float, out):
        self.secret = secret
        self.tolerance = tolerance
        self.out = out
        self.lock = threading.Lock()
        # A real backend keeps the ids in its database (a unique key), in the same transaction
        # as what it does with the event.
        self.seen: set[str] = set()
        self.last_seq: dict[str, int] = {}
        self.stats = {"requests": 0, "batches": 0, "events": 0, "unique": 0, "duplicates": 0,
                      "out_of_order": 0, "bad_signature": 0, "bad_body": 0, "failed_on_purpose": 0}
        # Failing on purpose (--control): until `fail_until` (monotonic) or for `fail_requests`
        # more requests, answer `fail_status`; `fail_record`: record the events first (as a
        # backend that stored them but could not answer: the retries are duplicates).
        self.fail_status = 0
        self.fail_until = 0.0
        self.fail_requests = 0
        self.fail_record = False

    def failing(self) -> int:
        if self.fail_status and (time.monotonic() < self.fail_until or self.fail_requests > 0):
            if self.fail_requests > 0:
                self.fail_requests -= 1
            return self.fail_status
        return 0

    def take(self, events: list) -> None:
        for event in events:
            if not isinstance(event, dict) or not isinstance(event.get("id"), str):
                continue
            self.stats["events"] += 1
            if event["id"] in self.seen:
                self.stats["duplicates"] += 1
                continue
            self.seen.add(event["id"])
            self.stats["unique"] += 1
            key, seq = event.get("key"), event.get("seq")
            if isinstance(seq, int):
                if key in self.last_seq and seq <= self.last_seq[key]:
                    self.stats["out_of_order"] += 1
                self.last_seq[key] = seq
            self.out.write(json.dumps(event, separators=(",", ":")) + "\n")
        self.out.flush()

    def handle(self, headers, body: bytes) -> tuple[int, dict]:
        """The answer to one POSTed batch."""
        with self.lock:
            self.stats["requests"] += 1
            why = verify(self.secret, headers.get(SIGNATURE_HEADER, ""), body, self.tolerance, time.time())
            if why is not None:
                self.stats["bad_signature"] += 1
                print(f"webhook_receiver: refused a request: {why}", file=sys.stderr, flush=True)
                return 401, {"error": why}
            try:
                events = json.loads(body)["events"]
                if not isinstance(events, list):
                    raise ValueError("events is not a list")
            except (ValueError, KeyError, TypeError) as e:
                self.stats["bad_body"] += 1
                return 400, {"error": f"not a batch of events: {e}"}
            status = self.failing()
            if status:
                self.stats["failed_on_purpose"] += 1
                if self.fail_record:
                    self.take(events)
                return status, {"error": "failing on purpose (/_control)"}
            self.stats["batches"] += 1
            self.take(events)
            return 200, {"ok": True}


def make_handler(receiver: Receiver, control: bool):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self, status: int, value) -> None:
            data = json.dumps(value).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def body(self) -> bytes | None:
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                return None
            if length < 0 or length > MAX_BODY:
                return None
            return self.rfile.read(length)

        def do_GET(self):  # noqa: N802 (http.server's naming)
            if control and self.path == "/_stats":
                with receiver.lock:
                    return self.answer(200, dict(receiver.stats))
            self.answer(404, {"error": "not found"})

        def do_POST(self):  # noqa: N802
            body = self.body()
            if body is None:
                self.close_connection = True
                return self.answer(413, {"error": "no body, or too large"})
            if self.path == "/_control":
                if not control:
                    return self.answer(404, {"error": "not found"})
                try:
                    asked = json.loads(body or b"{}")
                    status = int(asked.get("status", 0))
                    with receiver.lock:
                        receiver.fail_status = 0 if status in (0, 200) else status
                        receiver.fail_until = time.monotonic() + float(asked.get("seconds", 0))
                        receiver.fail_requests = int(asked.get("requests", 0))
                        receiver.fail_record = bool(asked.get("record", False))
                except (ValueError, TypeError, AttributeError) as e:
                    return self.answer(400, {"error": str(e)})
                return self.answer(200, {"ok": True})
            status, value = receiver.handle(self.headers, body)
            self.answer(status, value)

        def log_message(self, format, *args):  # noqa: A002 (http.server's signature)
            pass  # quiet: the events themselves are the log

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free one")
    parser.add_argument("--secret", default=os.environ.get("SWITCHBOARD_EVENTS_SECRET"),
                        help="events.secret of the server (default: $SWITCHBOARD_EVENTS_SECRET)")
    parser.add_argument("--tolerance", type=float, default=300,
                        help="replay window: the largest age (and clock skew) of a signature, seconds")
    parser.add_argument("--out", help="append events here, one JSON object a line (default: stdout)")
    parser.add_argument("--control", action="store_true",
                        help="serve POST /_control and GET /_stats (tests only)")
    args = parser.parse_args()
    if not args.secret:
        parser.error("give --secret or SWITCHBOARD_EVENTS_SECRET")
    out = open(args.out, "a", encoding="utf-8") if args.out else sys.stdout
    receiver = Receiver(args.secret.encode(), args.tolerance, out)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(receiver, args.control))
    host, port = server.server_address[:2]
    print(f"listening on {host}:{port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
