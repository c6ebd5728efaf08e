# Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE.
"""A scripted IMAP peer, for the faults a real server will not show on cue.

Tests use Dovecot wherever they can; this stands in only where a backend
must misbehave: greet with BYE, never greet, take its time, drop the
connection in the middle of a batch or answer garbage. It runs in a thread
of the test process on its own loopback port.

After its greeting ("greeting" argument; None for a silent server) it
answers each command line by its name:
    tag WAIT n     waits n seconds, then "tag OK waited"
    tag DROP       closes the connection without a word
    tag GARBAGE    sends a line with a bare LF, then waits for a hang-up
    tag LOGOUT     "* BYE", "tag OK", close
    anything else  "tag OK done"
"""

import socket
import threading
import time


class FakeImap:
    def __init__(self, greeting=b"* OK fake IMAP ready\r\n"):
        self.greeting = greeting
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.open = 0
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping = True
        self.sock.close()
        return False

    def url(self):
        return "imap://127.0.0.1:%d" % self.port

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                self.open += 1
            threading.Thread(target=self._serve, args=(conn,),
                             daemon=True).start()

    def _serve(self, conn):
        try:
            conn.settimeout(60)
            if self.greeting is None:
                time.sleep(60)
                return
            conn.sendall(self.greeting)
            if self.greeting.startswith(b"* BYE"):
                return
            buf = b""
            while not self.stopping:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
                while b"\r\n" in buf:
                    line, buf = buf.split(b"\r\n", 1)
                    if not self._answer(conn, line):
                        return
        except OSError:
            pass
        finally:
            conn.close()
            with self.lock:
                self.open -= 1

    def _answer(self, conn, line):
        words = line.split(b" ")
        tag, name = words[0], (words[1].upper() if len(words) > 1 else b"")
        if name == b"WAIT":
            time.sleep(float(words[2]))
            conn.sendall(tag + b" OK waited\r\n")
        elif name == b"DROP":
            return False
        elif name == b"GARBAGE":
            conn.sendall(b"* this line ends badly\n")
            conn.recv(1)        # until the gateway hangs up
            return False
        elif name == b"LOGOUT":
            conn.sendall(b"* BYE bye\r\n" + tag + b" OK bye\r\n")
            return False
        else:
            conn.sendall(tag + b" OK done\r\n")
        return True
