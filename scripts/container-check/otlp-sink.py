#!/usr/bin/env python3
"""A stand-in OTLP/HTTP collector for scripts/container-check.sh: answers 200 to every POST and keeps
the bodies, so the check can see that the trace named by a latency exemplar was really exported.

  otlp-sink.py ADDRESS PORT DIR      serves until killed; DIR/N.pb per export (gunzipped)
  otlp-sink.py find DIR TRACE_ID     exit 0 if some export holds the trace id (32 hex digits)

Exemplars are only recorded with tracing on (Tracing:OtlpEndpoint), and an endpoint nobody
answers would fill the logs with export errors; this is the smallest thing that answers.
"""
import gzip
import http.server
import os
import sys


def serve(address, port, folder):
    os.makedirs(folder, exist_ok=True)
    count = [0]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            count[0] += 1
            with open(os.path.join(folder, f"{count[0]}.pb"), "wb") as f:
                f.write(body)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    http.server.ThreadingHTTPServer((address, int(port)), Handler).serve_forever()


def find(folder, trace_id):
    needle = bytes.fromhex(trace_id)  # OTLP protobuf carries trace ids as 16 raw bytes
    for name in os.listdir(folder):
        with open(os.path.join(folder, name), "rb") as f:
            if needle in f.read():
                return 0
    return 1


if __name__ == "__main__":
    if sys.argv[1] == "find":
        sys.exit(find(sys.argv[2], sys.argv[3]))
    serve(*sys.argv[1:4])
