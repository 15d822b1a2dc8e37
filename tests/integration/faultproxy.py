"""A small TCP proxy on 127.0.0.1 whose behaviour a test switches at run time, to inject network
faults between a worker and its master. Python 3 standard library only.

    p = FaultProxy(target_port=master_port).start()     # listens on 127.0.0.1:p.port
    worker dials 127.0.0.1:p.port
    p.cut()          # RST every connection, and every new one while in this mode
    p.blackhole()    # accept, read and discard, never forward nor answer; existing ones go silent
    p.drop_replies() # forward what the client sends, discard what the target answers
    p.delay(200)     # hold every chunk 200 ms before forwarding it
    p.cut_after("down", 1 << 20)  # once: reset the first connection that passes 1 MiB more
    p.pass_()        # forward everything again (new connections; see below for old ones)
    p.stats()        # counters: connections, refusals, resets, faults by kind, bytes
    p.close()

Modes, precisely:
- pass: a new connection is connected to the target and bytes flow both ways unchanged. If the
  target refuses (master down), the client's connection is reset.
- cut: every current connection is reset on both sides (SO_LINGER 0, then close: the peers get an
  RST, not a FIN); while the mode lasts, every new connection is accepted and reset at once.
- blackhole: every current connection goes silent: whatever either side sends is read and
  discarded, data not yet forwarded is dropped, and nothing is answered. A new connection is
  accepted (the client's connect succeeds) but never connected to the target; what it sends is
  read and discarded. A connection that went silent stays silent for good, also after the mode
  goes back to pass (bytes were dropped, so its stream could not be resumed): the endpoints must
  notice by their own timeouts, as after a real partition that lost state. A side that closes
  its end of a silent connection is closed by the proxy too; the other side hears nothing.
- drop_replies: like blackhole in one direction only: the client's bytes still reach the target,
  the target's bytes are discarded. Such connections stay one-way silent for good.
- delay(ms): every chunk read after the switch is forwarded ms milliseconds after it was read,
  in order (in each direction). Existing and new connections alike.

- cut_after(direction, n): in any mode, a one-shot trigger: the first connection that forwards n
  more bytes in that direction ("up": client to target, "down": target to client) from the moment
  it is set is reset on both sides as by cut, with whatever of its last chunk passed the mark
  dropped; the trigger is then spent (counted as cut_after). Other connections are untouched.

Everything runs on one selector thread with non-blocking sockets, so that a reset is performed
by the thread that owns the socket (a close from another thread would not interrupt a blocked
recv and would not send the RST until that recv returned). Mode switches are handed to that
thread and set_mode() returns once it applied them (an event with a deadline, not a sleep).
"""

import collections
import errno
import selectors
import socket
import struct
import threading
import time

PASS = "pass"
CUT = "cut"
BLACKHOLE = "blackhole"
DROP_REPLIES = "drop_replies"
DELAY = "delay"
MODES = (PASS, CUT, BLACKHOLE, DROP_REPLIES, DELAY)

CHUNK = 64 * 1024
HIGH_WATER = 4 << 20  # bytes queued towards one side before the other side is no longer read
LOW_WATER = 1 << 20
APPLY_TIMEOUT = 10.0  # a mode switch not applied by the loop within this raises


def _rst(sock):
    """Closes sock so that its peer gets a TCP RST (SO_LINGER on with a zero timeout)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class _Side:
    """One socket of a proxied connection and the bytes queued to be written to it."""

    def __init__(self, sock, label):
        self.sock = sock
        self.label = label          # "client" or "target"
        self.out = collections.deque()  # (release time, bytes) to write to this socket
        self.out_bytes = 0
        self.eof_in = False         # the peer of this socket half-closed (recv returned b"")
        self.shut_out = False       # we half-closed towards this socket
        self.closed = False
        self.events = 0             # what the selector watches on this socket now


class _Conn:
    def __init__(self, cid, client):
        self.id = cid
        self.client = _Side(client, "client")
        self.target = None          # a _Side once a target connection exists
        self.connecting = False
        self.silent_up = False      # client -> target bytes are discarded
        self.silent_down = False    # target -> client bytes are discarded
        self.moved = {"up": 0, "down": 0}  # bytes forwarded since the cut_after trigger was set
        self.moved_gen = 0          # ... the trigger of that number

    def sides(self):
        return [s for s in (self.client, self.target) if s is not None]

    def other(self, side):
        return self.target if side is self.client else self.client


class FaultProxy:
    def __init__(self, target_port, listen_port=0, name="proxy", target_host="127.0.0.1"):
        self.name = name
        self.target = (target_host, target_port)
        self._listen_port = listen_port
        self._mode = PASS
        self._delay = 0.0
        self._sel = None
        self._lsock = None
        self._wake_r = self._wake_w = None
        self._thread = None
        self._lock = threading.Lock()
        self._commands = collections.deque()  # (mode, delay_ms, threading.Event)
        self._conns = {}
        self._next_id = 1
        self._stop = False
        self.error = None           # an exception that ended the loop, if any
        self.counts = collections.Counter()   # see stats()
        self.faults = collections.Counter()   # switches into a fault mode, by mode
        self.port = None
        self._cut_after = None  # (direction, bytes) of the armed one-shot trigger
        self._cut_gen = 0       # how many times it was armed

    # ---- life

    def start(self):
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self._listen_port))
        ls.listen(128)
        ls.setblocking(False)
        self._lsock = ls
        self.port = ls.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(ls, selectors.EVENT_READ, ("listen", None, None))
        self._sel.register(self._wake_r, selectors.EVENT_READ, ("wake", None, None))
        self._thread = threading.Thread(target=self._run, name="faultproxy-%s" % self.name,
                                        daemon=True)
        self._thread.start()
        return self

    def close(self):
        """Stops the loop and closes every socket (connections are reset). Idempotent."""
        if self._thread is None:
            return
        self._stop = True
        self._wake()
        self._thread.join(APPLY_TIMEOUT)
        self._thread = None

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    @property
    def mode(self):
        return self._mode

    # ---- switching

    def set_mode(self, mode, delay_ms=0):
        """Switches the mode; returns once the proxy thread has applied it."""
        if mode not in MODES:
            raise ValueError("unknown mode %r" % (mode,))
        if self._thread is None or not self._thread.is_alive():
            raise RuntimeError("proxy %s is not running (%r)" % (self.name, self.error))
        done = threading.Event()
        with self._lock:
            self._commands.append((mode, delay_ms, done))
        self._wake()
        if not done.wait(APPLY_TIMEOUT):
            raise RuntimeError("proxy %s did not apply mode %s within %.0f s (%r)"
                               % (self.name, mode, APPLY_TIMEOUT, self.error))

    def pass_(self):
        self.set_mode(PASS)

    def cut(self):
        self.set_mode(CUT)

    def blackhole(self):
        self.set_mode(BLACKHOLE)

    def drop_replies(self):
        self.set_mode(DROP_REPLIES)

    def delay(self, ms):
        self.set_mode(DELAY, ms)

    def cut_after(self, direction, nbytes):
        """Arms the one-shot trigger (see the module's text); returns at once."""
        if direction not in ("up", "down"):
            raise ValueError("direction: up or down")
        with self._lock:
            self._cut_gen += 1
            self._cut_after = (direction, nbytes)

    def stats(self):
        """A snapshot: accepted (connections accepted), active (open now), refused (reset at
        accept in cut mode), target_failed (target refused: client reset), reset (connections
        reset by a cut), silenced (connections made silent, old or new), bytes_up / bytes_down
        (forwarded to the target / to the client), discarded (bytes read and dropped),
        delayed_chunks, and faults {mode: number of switches into it}."""
        with self._lock:
            d = dict(self.counts)
            d["active"] = len(self._conns)
            d["faults"] = dict(self.faults)
            d["mode"] = self._mode
        for k in ("accepted", "refused", "target_failed", "reset", "silenced", "bytes_up",
                  "bytes_down", "discarded", "delayed_chunks"):
            d.setdefault(k, 0)
        return d

    def _wake(self):
        try:
            self._wake_w.send(b"x")
        except (BlockingIOError, OSError):
            pass  # the pipe is full: the loop is awake anyway

    # ---- the loop

    def _run(self):
        try:
            while not self._stop:
                timeout = self._next_release_in()
                for key, ev in self._sel.select(timeout):
                    kind, conn, side = key.data
                    if kind == "listen":
                        self._accept()
                    elif kind == "wake":
                        self._drain_wake()
                    elif conn.id in self._conns and not side.closed:
                        if ev & selectors.EVENT_WRITE:
                            self._on_writable(conn, side)
                        if ev & selectors.EVENT_READ and conn.id in self._conns and \
                                not side.closed:
                            self._on_readable(conn, side)
                self._apply_commands()
                self._flush_due()
        except Exception as e:  # recorded for the test; the loop must not die silently
            self.error = e
            raise
        finally:
            for conn in list(self._conns.values()):
                self._reset_conn(conn, count=False)
            for s in (self._lsock, self._wake_r, self._wake_w):
                try:
                    s.close()
                except OSError:
                    pass
            self._sel.close()
            with self._lock:
                for _, _, done in self._commands:
                    done.set()
                self._commands.clear()

    def _next_release_in(self):
        """Seconds until the earliest delayed chunk is due (None: nothing is waiting)."""
        soonest = None
        for conn in self._conns.values():
            for side in conn.sides():
                if side.out and not side.closed:
                    t = side.out[0][0]
                    soonest = t if soonest is None else min(soonest, t)
        if soonest is None:
            return None
        return max(0.0, soonest - time.monotonic())

    def _drain_wake(self):
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _apply_commands(self):
        while True:
            with self._lock:
                if not self._commands:
                    return
                mode, delay_ms, done = self._commands.popleft()
            self._switch(mode, delay_ms)
            done.set()

    def _switch(self, mode, delay_ms):
        with self._lock:
            self._mode = mode
            self._delay = delay_ms / 1000.0 if mode == DELAY else 0.0
            if mode != PASS:
                self.faults[mode] += 1
        if mode == CUT:
            for conn in list(self._conns.values()):
                self._reset_conn(conn)
        elif mode in (BLACKHOLE, DROP_REPLIES):
            for conn in list(self._conns.values()):
                self._silence(conn, up=(mode == BLACKHOLE), down=True)

    # ---- connections

    def _count(self, key, n=1):
        with self._lock:
            self.counts[key] += n

    def _watch(self, conn, side, events):
        """Sets what the selector watches on side's socket."""
        if side.closed or side.events == events:
            return
        if side.events == 0:
            self._sel.register(side.sock, events, ("conn", conn, side))
        elif events == 0:
            self._sel.unregister(side.sock)
        else:
            self._sel.modify(side.sock, events, ("conn", conn, side))
        side.events = events

    def _update_interest(self, conn):
        for side in conn.sides():
            if side.closed:
                continue
            ev = 0
            other = conn.other(side)
            # read unless the bytes would pile up towards the other side
            if not side.eof_in and (other is None or other.closed or
                                    other.out_bytes < HIGH_WATER or
                                    self._silent_from(conn, side)):
                ev |= selectors.EVENT_READ
            if (side is conn.target and conn.connecting) or \
                    (side.out and side.out[0][0] <= time.monotonic()):
                ev |= selectors.EVENT_WRITE
            self._watch(conn, side, ev)

    def _silent_from(self, conn, side):
        """Whether bytes read from side are discarded."""
        return conn.silent_up if side is conn.client else conn.silent_down

    def _accept(self):
        while True:
            try:
                sock, _ = self._lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ECONNABORTED):
                    return
                raise
            sock.setblocking(False)
            self._count("accepted")
            mode = self._mode
            if mode == CUT:
                self._count("refused")
                _rst(sock)
                continue
            conn = _Conn(self._next_id, sock)
            self._next_id += 1
            with self._lock:
                self._conns[conn.id] = conn
            if mode in (BLACKHOLE, DROP_REPLIES):
                self._silence(conn, up=(mode == BLACKHOLE), down=True)
            if not conn.silent_up:
                self._dial_target(conn)
            self._update_interest(conn)

    def _dial_target(self, conn):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.setblocking(False)
        rc = t.connect_ex(self.target)
        if rc not in (0, errno.EINPROGRESS):
            t.close()
            self._count("target_failed")
            self._reset_conn(conn, count=False)
            return
        conn.target = _Side(t, "target")
        conn.connecting = rc != 0

    def _silence(self, conn, up, down):
        was = conn.silent_up or conn.silent_down
        if up:
            conn.silent_up = True
            if conn.target is not None:
                self._drop_queue(conn.target)
        if down:
            conn.silent_down = True
            self._drop_queue(conn.client)
        if not was:
            self._count("silenced")
        self._update_interest(conn)

    def _drop_queue(self, side):
        if side.out_bytes:
            self._count("discarded", side.out_bytes)
        side.out.clear()
        side.out_bytes = 0

    def _reset_conn(self, conn, count=True):
        """RST both sides and forget the connection."""
        for side in conn.sides():
            self._close_side(side, rst=True)
        with self._lock:
            self._conns.pop(conn.id, None)
        if count:
            self._count("reset")

    def _close_side(self, side, rst=False):
        if side.closed:
            return
        if side.events:
            try:
                self._sel.unregister(side.sock)
            except (KeyError, ValueError):
                pass
            side.events = 0
        side.closed = True
        if rst:
            _rst(side.sock)
        else:
            try:
                side.sock.close()
            except OSError:
                pass

    def _maybe_forget(self, conn):
        if all(s.closed for s in conn.sides()):
            with self._lock:
                self._conns.pop(conn.id, None)

    def _on_readable(self, conn, side):
        other = conn.other(side)
        try:
            data = side.sock.recv(CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            # reset (or another error) from this side: the other side is reset as well, unless
            # this direction is silent, where nothing may reach it
            if self._silent_from(conn, side) or other is None:
                self._close_side(side, rst=True)
                self._maybe_forget(conn)
            else:
                self._reset_conn(conn, count=False)
            return
        if not data:
            side.eof_in = True
            if self._silent_from(conn, side) or other is None or other.closed:
                # nothing can be passed on: drop this side quietly
                self._close_side(side)
                self._maybe_forget(conn)
                return
            self._maybe_shut(conn, other)
            self._update_interest(conn)
            return
        if self._silent_from(conn, side) or other is None or other.closed:
            self._count("discarded", len(data))
            return
        if self._trips(conn, "up" if side is conn.client else "down", len(data)):
            self._count("cut_after")
            self._reset_conn(conn, count=False)
            return
        delay = self._delay
        if delay > 0:
            self._count("delayed_chunks")
        other.out.append((time.monotonic() + delay, data))
        other.out_bytes += len(data)
        if delay <= 0:
            self._write(conn, other)
        self._update_interest(conn)

    def _trips(self, conn, direction, n):
        """Counts n bytes forwarded in direction; True (and the trigger spent) when they pass
        the armed mark."""
        with self._lock:
            if conn.moved_gen != self._cut_gen:
                conn.moved = {"up": 0, "down": 0}
                conn.moved_gen = self._cut_gen
            conn.moved[direction] += n
            armed = self._cut_after
            if armed is None or armed[0] != direction or conn.moved[direction] < armed[1]:
                return False
            self._cut_after = None
            return True

    def _on_writable(self, conn, side):
        if side is conn.target and conn.connecting:
            err = side.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._count("target_failed")
                self._reset_conn(conn, count=False)
                return
            conn.connecting = False
        self._write(conn, side)
        self._update_interest(conn)

    def _write(self, conn, side):
        """Writes side's due bytes; half-closes towards it once its peer's EOF is passed on."""
        if side is conn.target and conn.connecting:
            return
        now = time.monotonic()
        while side.out and side.out[0][0] <= now:
            t, data = side.out[0]
            try:
                n = side.sock.send(data)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._reset_conn(conn, count=False)
                return
            self._count("bytes_up" if side is conn.target else "bytes_down", n)
            side.out_bytes -= n
            if n < len(data):
                side.out[0] = (t, data[n:])
                return
            side.out.popleft()
        self._maybe_shut(conn, side)

    def _maybe_shut(self, conn, side):
        """Passes a half-close on: once the bytes queued towards side are written and side's
        peer (the other socket) sent EOF, side gets a FIN."""
        if conn.id not in self._conns or side.closed or side.shut_out or side.out:
            return
        if not conn.other(side).eof_in:
            return
        if side is conn.target and conn.connecting:
            return
        try:
            side.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        side.shut_out = True
        if all(s.eof_in and s.shut_out for s in conn.sides()):
            for s in conn.sides():
                self._close_side(s)
            self._maybe_forget(conn)

    def _flush_due(self):
        now = time.monotonic()
        for conn in list(self._conns.values()):
            if conn.id not in self._conns:
                continue
            for side in conn.sides():
                if side.out and not side.closed and side.out[0][0] <= now:
                    self._write(conn, side)
                    if conn.id not in self._conns:
                        break
            if conn.id in self._conns:
                self._update_interest(conn)
