"""A recording HTTP server on 127.0.0.1 for the tests of butlerd's outbound
calls (Slack, New Relic): it runs in a thread, records every request (method,
path, headers, body) and answers with what answer() returns. A subclass
overrides answer(); returning HANG holds the request without an answer until
release is set (at most 30 s), for the timeout tests."""

import http.server
import threading

HANG = object()


class Receiver:
    def __init__(self):
        self.requests = []
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, req):
        """(status, reason or None, [(header, value)], body) for the recorded
        request REQ, or HANG. Called under no lock."""
        return 200, None, [("Content-Length", "0")], b""

    def _handler(self):
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _any(self):
                n = int(self.headers.get("Content-Length", "0"))
                req = {"method": self.command, "path": self.path,
                       "headers": dict(self.headers), "header_list": list(self.headers.items()),
                       "body": self.rfile.read(n)}
                with rec.lock:
                    rec.requests.append(req)
                got = rec.answer(req)
                if got is HANG:
                    rec.release.wait(30)
                    self.close_connection = True
                    return
                status, reason, headers, data = got
                self.send_response(status, reason)
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_GET = do_PUT = _any

        return Handler

    def take(self):
        """The requests recorded since the last take(), oldest first."""
        with self.lock:
            out, self.requests = self.requests, []
        return out

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
