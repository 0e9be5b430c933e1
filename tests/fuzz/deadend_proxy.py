"""A proxy that refuses everything, on a free loopback port.

The service under fuzzing gets it as HTTPS_PROXY: the always-allowed
https://api.openai.com/v1 (the default base URL of fuzzed connections) is then answered
here with 403, and no request of the run leaves this machine. Each refused target is logged
to stderr. Prints `listening http://127.0.0.1:PORT` once bound; stops on SIGTERM.
"""

from __future__ import annotations

import signal
import socketserver
import sys


class Refuse(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        line = self.rfile.readline(8192).decode("latin-1").strip()
        print(f"refused: {line}", file=sys.stderr, flush=True)
        self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main() -> None:
    server = Server(("127.0.0.1", 0), Refuse)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"listening http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
