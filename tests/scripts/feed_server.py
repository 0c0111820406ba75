"""A list publisher's HTTPS server, for the namespace lab: CPython's static file server with
TLS, ETags and conditional GET, as the sites that publish blocklists answer.

    feed_server.py ADDR PORT DIR CERT KEY

Serves the files under DIR. Each response carries an ETag (the file's size and modification
time) and Last-Modified; a request whose If-None-Match names the current ETag, or whose
If-Modified-Since is not older than the file, is answered 304. Every request is logged to
stderr as "METHOD PATH STATUS".
"""

import http.server
import os
import ssl
import sys


class Handler(http.server.SimpleHTTPRequestHandler):
    def send_head(self):
        path = self.translate_path(self.path)
        if os.path.isfile(path):
            st = os.stat(path)
            etag = '"%x-%x"' % (st.st_size, st.st_mtime_ns)
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return None
            self._etag = etag
        return super().send_head()

    def end_headers(self):
        etag = getattr(self, "_etag", None)
        if etag:
            self.send_header("ETag", etag)
        super().end_headers()

    def log_request(self, code="-", size="-"):
        sys.stderr.write("%s %s %s\n" % (self.command, self.path, getattr(code, "value", code)))
        sys.stderr.flush()


def main():
    addr, port, root, cert, key = sys.argv[1:6]
    os.chdir(root)
    server = http.server.ThreadingHTTPServer((addr, int(port)), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
