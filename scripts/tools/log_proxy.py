"""Loopback HTTP logging proxy: shows the exact MCP wire exchange between a client and a server.

    python3 scripts/tools/log_proxy.py LISTEN_PORT http://127.0.0.1:UPSTREAM_PORT [LOGFILE]

Point the client at http://127.0.0.1:LISTEN_PORT/<path>; every request (method, path, headers,
body) and response (status, headers, body chunks as they stream) is appended to LOGFILE
(default stderr). Responses are relayed close-delimited (`Connection: close`), so SSE streams
flow through unbuffered. Dev aid only (stdlib, loopback only).
"""

import http.client
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

LISTEN = int(sys.argv[1])
UP = urlsplit(sys.argv[2])
OUT = open(sys.argv[3], "a", buffering=1) if len(sys.argv) > 3 else sys.stderr
LOCK = threading.Lock()
HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection", "upgrade"}


def log(text: str) -> None:
    with LOCK:
        OUT.write(text + "\n")


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _relay(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        tag = f"[{threading.get_ident() % 10000:04d}]"
        hdrs = "".join(f"{k}: {v}\n" for k, v in self.headers.items())
        log(f"{tag} >>> {self.command} {self.path}\n{hdrs}\n{body.decode(errors='replace')}\n")
        up = http.client.HTTPConnection(UP.hostname, UP.port, timeout=300)
        fwd = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        up.request(self.command, self.path, body=body or None, headers=fwd)
        resp = up.getresponse()
        rh = "".join(f"{k}: {v}\n" for k, v in resp.getheaders())
        log(f"{tag} <<< {resp.status} {resp.reason}\n{rh}")
        self.send_response_only(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in HOP:
                self.send_header(k, v)
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        while chunk := resp.read1(65536):
            log(f"{tag} <<< {chunk.decode(errors='replace')}")
            self.wfile.write(chunk)
            self.wfile.flush()
        log(f"{tag} <<< (end of body)\n")
        up.close()

    do_GET = do_POST = do_DELETE = do_PUT = _relay

    def log_message(self, *args: object) -> None:  # silence default access log
        pass


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", LISTEN), Proxy).serve_forever()
