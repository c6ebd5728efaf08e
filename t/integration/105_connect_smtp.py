#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE.
"""105: lemonade-connect carries SMTP clients over the binding (draft
2.1.4), in-band and in in-response mode.

swaks submits through lemonade-connect to Postfix's smtp-sink, pipelined,
and the message arrives byte for byte, dot-stuffing undone, 8-bit intact,
in both modes and behind a buffering proxy that forces the fallback. In
in-response mode DATA gets one reply for the message (the server's 354 is
not passed on twice), and AUTH PLAIN and LOGIN without an initial
response become one AUTH PLAIN, which a recording SMTP peer checks. A
dropped HTTP connection gives the client a 421 and a close."""

import base64
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))

from lemtest import (  # noqa: E402
    Httpd, SmtpSink, Test, lemonade_location)
from lemconnect import (  # noqa: E402
    Connect, proxy_conf, read_until_close)

PATH = "/lemonade/smtp"

# swaks ends the data with CRLF "." CRLF and stuffs leading dots itself;
# what arrives is this with CRLF at its end (RFC 5321 4.5.2)
DATA = (b"From: a@example.org\r\nTo: b@example.org\r\n"
        b"Subject: through lemonade-connect\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
        b"first line\r\n.a line that starts with a dot\r\n.\r\n..\r\n"
        b"caf\xc3\xa9 8-bit\r\n" + b"0123456789" * 200 + b"\r\nlast line")


def big_data():
    lines = [b"Subject: big\r\n"]
    lines += [b"%06d " % i + b"y" * 70 + b"\r\n" for i in range(13000)]
    return b"".join(lines) + b"the end"


def swaks(port, data_file, *extra):
    res = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % port,
                          "--from", "a@example.org", "--to", "b@example.org",
                          "--data", "@" + data_file, "--pipeline"]
                         + list(extra), capture_output=True, text=True,
                         timeout=60, stdin=subprocess.DEVNULL)
    return res.returncode, res.stdout + res.stderr


def arrived(sink, data, count):
    """The newest of `count` dumps ends with the message, LF-ended, and
    smtp-sink's one extra newline."""
    msgs = sink.messages()
    want = (data + b"\r\n").replace(b"\r\n", b"\n") + b"\n"
    return len(msgs) == count and msgs[-1].endswith(want), \
        msgs[-1][-300:] if msgs else "no message"


def message_part(dump):
    """A dump without smtp-sink's envelope lines and Received header."""
    lines = dump.split(b"\nReceived: ", 1)[1].split(b"\n")
    i = 1
    while lines[i].startswith(b"\t"):
        i += 1
    return b"\n".join(lines[i:])


def submit(t, tmp, sink, url, label, args, count):
    path = os.path.join(tmp, "message-%s" % label)
    with open(path, "wb") as f:
        f.write(DATA)
    with Connect(tmp, url, args, name="connect-" + label) as lc:
        rc, out = swaks(lc.port, path)
        t.ok(rc == 0, "%s: swaks submits through lemonade-connect" % label,
             out + lc.log())
        ok, dump = arrived(sink, DATA, count)
        t.ok(ok, "%s: the message arrives byte for byte" % label, dump)
        t.eq(out.count("<-  354"), 1, "%s: DATA gets one 354, the "
             "message one reply" % label)
        return lc.log(), out


def modes(t, tmp):
    with SmtpSink(tmp) as sink, \
            Httpd(tmp, mpm="event", name="httpd-smtp",
                  body=lemonade_location(sink.url(), path=PATH)) as h:
        log, out = submit(t, tmp, sink, h.url(PATH), "in-band", [], 1)
        t.ok("SMTP in-band" in log and "220 smtp-sink" in out,
             "in-band: the client is greeted by the server itself", log)

        log, out = submit(t, tmp, sink, h.url(PATH), "in-response",
                          ["--mode", "in-response"], 2)
        t.ok("SMTP in-response" in log and "220 lemonade-connect" in out,
             "in-response: the greeting is lemonade-connect's", log)

        path = os.path.join(tmp, "big")
        with open(path, "wb") as f:
            f.write(big_data())
        # (swaks adds blank lines at the end of a file this size: the
        # reference is what it delivers directly)
        swaks(sink.port, path, "--suppress-data")
        with Connect(tmp, h.url(PATH), ["--mode", "in-response"],
                     name="connect-big") as lc:
            rc, out = swaks(lc.port, path, "--suppress-data")
        msgs = sink.messages()
        t.ok(rc == 0 and len(msgs) == 4 and len(msgs[-1]) > 1000000
             and message_part(msgs[-1]) == message_part(msgs[-2]),
             "in-response: a 1 MB message arrives as swaks delivers it "
             "directly", out[-2000:])

        with Httpd(tmp, mpm="event", name="httpd-proxy",
                   body=proxy_conf(h.port)) as proxy:
            log, out = submit(t, tmp, sink, proxy.url(PATH), "proxied",
                              ["--inband-wait", "2"], 5)
            t.ok("using in-response mode" in log and "SMTP in-response"
                 in log, "behind a buffering proxy the fallback engages",
                 log)


# --- AUTH, checked against a peer that records it ---------------------------

class RecordingSmtp:
    """An SMTP server that takes any AUTH PLAIN with an initial response
    (235), says 250 to anything else, and records every AUTH line."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.auth = []
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self):
        return "smtp://127.0.0.1:%d" % self.port

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,),
                             daemon=True).start()

    def _serve(self, conn):
        f = conn.makefile("rb")
        conn.sendall(b"220 recorder ESMTP\r\n")
        for line in f:
            verb = line.split(b" ", 1)[0].strip().upper()
            if verb == b"EHLO":
                conn.sendall(b"250-recorder\r\n250 AUTH PLAIN LOGIN\r\n")
            elif verb == b"AUTH":
                self.auth.append(line)
                conn.sendall(b"235 2.7.0 ok\r\n" if line.count(b" ") >= 2
                             else b"535 5.7.8 no\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                break
            else:
                conn.sendall(b"250 ok\r\n")
        conn.close()

    def close(self):
        self.sock.close()


def converse(port, lines):
    """Send each line, read one reply after each; the replies' codes."""
    codes = []
    with socket.create_connection(("127.0.0.1", port), 15) as s:
        f = s.makefile("rb")

        def reply():
            while True:
                line = f.readline()
                if not line or line[3:4] != b"-":
                    return line[:3]
        codes.append(reply())
        for line in lines:
            s.sendall(line + b"\r\n")
            codes.append(reply())
    return codes


def auth(t, tmp):
    b64 = lambda b: base64.b64encode(b)  # noqa: E731
    plain = b"AUTH PLAIN " + b64(b"\0user\0secret") + b"\r\n"
    rec = RecordingSmtp()
    try:
        with Httpd(tmp, mpm="event", name="httpd-auth",
                   body=lemonade_location(rec.url(), path=PATH)) as h, \
                Connect(tmp, h.url(PATH), ["--mode", "in-response"],
                        name="connect-auth") as lc:
            codes = converse(lc.port, [b"EHLO c", b"AUTH LOGIN", b64(b"user"),
                                       b64(b"secret"), b"QUIT"])
            t.eq(codes, [b"220", b"250", b"334", b"334", b"235", b"221"],
                 "AUTH LOGIN: our two 334s, then the server's 235")
            t.ok(plain in rec.auth, "and the server got one AUTH PLAIN "
                 "with the same credentials", rec.auth)
            codes = converse(lc.port, [b"EHLO c", b"AUTH PLAIN",
                                       b64(b"\0user\0secret"), b"QUIT"])
            t.eq(codes, [b"220", b"250", b"334", b"235", b"221"],
                 "AUTH PLAIN without an initial response: our 334, then "
                 "the server's 235")
            codes = converse(lc.port, [b"EHLO c", b"AUTH LOGIN", b"*",
                                       b"QUIT"])
            t.eq(codes, [b"220", b"250", b"334", b"501", b"221"],
                 "a cancelled AUTH gets a 501 and sends nothing")
            t.eq(len(rec.auth), 2, "the server saw only the two real AUTHs")
            t.ok("secret" not in lc.log() and b64(b"user").decode()
                 not in lc.log(), "no credential is logged", lc.log())
    finally:
        rec.close()


def dropped(t, tmp):
    with SmtpSink(tmp, name="sink-drop") as sink, \
            Httpd(tmp, mpm="prefork", name="httpd-drop",
                  body=lemonade_location(sink.url(), path=PATH)) as h, \
            Connect(tmp, h.url(PATH), name="connect-drop") as lc:
        sock = socket.create_connection(("127.0.0.1", lc.port), 15)
        greeting = sock.recv(4096)
        sock.sendall(b"EHLO c\r\n")
        time.sleep(0.5)
        sock.recv(4096)
        start = time.time()
        h.stop()
        data, closed = read_until_close(sock, 20)
        sock.close()
        t.ok(greeting.startswith(b"220") and data.startswith(b"421")
             and closed, "stopping the httpd gives the client a 421 and a "
             "close (%.1f s)" % (time.time() - start), data)


with Test("105 lemonade-connect, SMTP") as t:
    tmp = t.tmpdir()
    modes(t, tmp)
    auth(t, tmp)
    dropped(t, tmp)
