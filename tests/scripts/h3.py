"""HTTP/3 over QUIC with aioquic, for the namespace lab.

    h3.py serve ADDR PORT CERT KEY        answer every HTTP/3 request with 200 "h3 ok"
    h3.py get ADDR PORT NAME [ALPN]       one request to ADDR:PORT, SNI and :authority NAME;
                                          exit 0 on a 200 (or, for an ALPN other than h3,
                                          on a finished handshake), 1 otherwise

The client does not check the server's certificate: the lab's servers are self-signed, and
what the tests look at is what the gateway sees and does, not who the server is.
"""

import asyncio
import ssl
import sys

from aioquic.asyncio import connect, serve
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ProtocolNegotiated

TIMEOUT = 3.0


class Server(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._h3 = None

    def quic_event_received(self, event):
        if isinstance(event, ProtocolNegotiated) and event.alpn_protocol in H3_ALPN:
            self._h3 = H3Connection(self._quic)
        if self._h3 is None:
            return
        for e in self._h3.handle_event(event):
            if isinstance(e, HeadersReceived) and e.stream_ended:
                self._h3.send_headers(
                    e.stream_id, [(b":status", b"200"), (b"content-type", b"text/plain")]
                )
                self._h3.send_data(e.stream_id, b"h3 ok\n", end_stream=True)
        self.transmit()


class Client(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.status = None
        self.done = asyncio.get_running_loop().create_future()

    def quic_event_received(self, event):
        for e in self.h3.handle_event(event):
            if isinstance(e, HeadersReceived):
                self.status = dict(e.headers).get(b":status")
            if isinstance(e, (HeadersReceived, DataReceived)) and e.stream_ended:
                if not self.done.done():
                    self.done.set_result(self.status)


async def run_server(addr, port, cert, key):
    config = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
    config.load_cert_chain(cert, key)
    await serve(addr, int(port), configuration=config, create_protocol=Server)
    await asyncio.Future()


async def get(addr, port, name, alpn):
    config = QuicConfiguration(
        is_client=True, alpn_protocols=[alpn], server_name=name, verify_mode=ssl.CERT_NONE
    )
    async with connect(addr, int(port), configuration=config, create_protocol=Client) as c:
        if alpn not in H3_ALPN:
            return True
        stream = c._quic.get_next_available_stream_id()
        c.h3.send_headers(
            stream,
            [
                (b":method", b"GET"),
                (b":scheme", b"https"),
                (b":authority", name.encode()),
                (b":path", b"/"),
            ],
            end_stream=True,
        )
        c.transmit()
        return await c.done == b"200"


def main(argv):
    if len(argv) == 5 and argv[0] == "serve":
        asyncio.run(run_server(*argv[1:]))
        return 0
    if len(argv) in (4, 5) and argv[0] == "get":
        alpn = argv[4] if len(argv) == 5 else H3_ALPN[0]
        try:
            ok = asyncio.run(asyncio.wait_for(get(argv[1], argv[2], argv[3], alpn), TIMEOUT))
        except (asyncio.TimeoutError, ConnectionError, OSError) as e:
            print(f"h3: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
        return 0 if ok else 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
