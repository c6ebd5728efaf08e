#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE.
"""070: in-band mode (draft 2.1.2), checked on the wire.

One chunked POST is one IMAP connection: the answer starts with the
greeting, every response is a chunk of its own sent as soon as the server
sends it, commands are framed by IMAP lines whatever the chunks, IDLE
pushes news at once, and the session ends cleanly from either side."""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))

from lemtest import (  # noqa: E402
    DOVEADM_BIN, Dovecot, Httpd, InbandClient, Test, lemonade_location,
    wait_for)
from imaplib import IMAP4  # noqa: E402


def one_response_per_chunk(chunks):
    """Each chunk is one whole response: a single CRLF-ended line, or a
    line announcing a literal, the literal and the rest of its line."""
    for c in chunks:
        if not c.endswith(b"\r\n"):
            return False
        if b"{" not in c and c.count(b"\r\n") != 1:
            return False
    return True


def append_elsewhere(dc, text=b"Subject: pushed\r\n\r\nnews\r\n"):
    imap = IMAP4("127.0.0.1", dc.port)
    imap.login("demo", "demo")
    imap.append("INBOX", None, None, text)
    imap.logout()


def session_on_the_wire(t, port, dc):
    c = InbandClient(port)
    greeting = c.next_chunk()
    t.eq(c.status, 200, "the answer starts at once with 200")
    t.eq(c.header("Transfer-Encoding"), "chunked", "it is chunked")
    t.eq(c.header("Content-Type"), "text/plain", "of type text/plain")
    t.ok("private" in (c.header("Cache-Control") or "")
         and "no-store" in (c.header("Cache-Control") or ""),
         "Cache-Control says private and no-store", c.head)
    t.eq(c.header("Set-Cookie"), None, "no cookie: the connection is the "
         "session")
    t.ok(greeting and greeting.startswith(b"* OK"),
         "the first chunk is the server's greeting", greeting)

    # a command split over two chunks, two commands in one chunk
    c.send("a1 LOGIN demo demo\r\na2 SEL")
    c.send("ECT INBOX\r\n")
    got, ok = c.until_tagged("a2")
    t.ok(ok and got[0].startswith(b"a1 OK"),
         "commands are framed by lines, not by chunks", got)
    t.ok(one_response_per_chunk(got), "every response is a chunk of its "
         "own", got)

    # IDLE: news is pushed without the client asking
    c.send("a3 IDLE\r\n")
    got, ok = c.until(lambda ch: ch.startswith(b"+"))
    t.ok(ok, "IDLE's continuation comes through", got)
    start = time.time()
    append_elsewhere(dc)
    got, ok = c.until(lambda ch: ch.endswith(b"EXISTS\r\n"), timeout=5)
    took = time.time() - start
    t.ok(ok and took < 3, "an EXISTS is pushed while the client is silent "
         "(%.2f s after the APPEND)" % took, got)
    c.send("DONE\r\n")
    got, ok = c.until_tagged("a3")
    t.ok(ok, "DONE ends IDLE with the tagged OK", got)

    # a synchronizing literal through a real continuation
    c.send("a4 APPEND INBOX {12}\r\n")
    got, ok = c.until(lambda ch: ch.startswith(b"+"))
    t.ok(ok, "a synchronizing literal gets the server's continuation", got)
    c.send("Subject: x\r\n")
    c.send("\r\n")
    got, ok = c.until_tagged("a4")
    t.ok(ok and got[-1].startswith(b"a4 OK"), "and the APPEND completes",
         got)
    c.send("a5 FETCH 4 BODY[]\r\n")
    got, ok = c.until_tagged("a5")
    t.ok(ok and b"{12}\r\nSubject: x\r\n)" in b"".join(got),
         "the literal arrived byte for byte", got)
    t.ok(one_response_per_chunk(got), "a response with a literal is one "
         "chunk", got)

    c.send("a6 LOGOUT\r\n")
    got, ok = c.until(lambda ch: ch == b"", timeout=5)
    t.ok(b"* BYE" in b"".join(got) and c.ended,
         "LOGOUT ends the answer with BYE and the last chunk", got)
    c.close()
    t.ok(wait_for(lambda: dc.connections("demo") == 0, 5),
         "and the IMAP connection is closed")


def client_ends(t, port, dc):
    c = InbandClient(port)
    c.next_chunk()
    c.send("b1 LOGIN demo demo\r\nb2 SELECT INBOX\r\n")
    c.finish()
    got, ok = c.until(lambda ch: ch == b"", timeout=5)
    t.ok(any(ch.startswith(b"b2 OK") for ch in got) and c.ended,
         "after the client's last chunk every command is answered, then "
         "the answer ends", got)
    c.close()
    t.ok(wait_for(lambda: dc.connections("demo") == 0, 5),
         "the client's last chunk closes the IMAP connection")

    c = InbandClient(port)
    c.next_chunk()
    c.send("c1 LOGIN demo demo\r\nc2 SELECT INBOX\r\nc3 IDLE\r\n")
    c.until(lambda ch: ch.startswith(b"+"))
    t.eq(dc.connections("demo"), 1, "an idling in-band session holds one "
         "IMAP connection")
    c.close()
    t.ok(wait_for(lambda: dc.connections("demo") == 0, 5),
         "a client that vanishes frees its IMAP connection at once")


def server_ends(t, port, dc):
    c = InbandClient(port)
    c.next_chunk()
    c.send("d1 LOGIN demo demo\r\n")
    c.until_tagged("d1")
    subprocess.run([DOVEADM_BIN, "-c", dc.conf, "kick", "demo"],
                   capture_output=True, timeout=30)
    got, ok = c.until(lambda ch: ch == b"", timeout=5)
    t.ok(b"* BYE" in b"".join(got) and c.ended,
         "a server that goes away ends the answer with BYE and the last "
         "chunk", got)
    c.close()

    c = InbandClient(port)
    c.next_chunk()
    c.send(b"e1 NOOP \xe9\r\n")
    got, ok = c.until(lambda ch: ch == b"", timeout=5)
    t.ok(b"* BYE [CLIENTBUG]" in b"".join(got) and c.ended,
         "an 8-bit command ends the session with a clear BYE", got)
    c.close()
    t.ok(wait_for(lambda: dc.connections("demo") == 0, 5),
         "no IMAP connection is left behind")


def stop_with_idling_session(t, tmp, dc):
    h = Httpd(tmp, mpm="event", name="httpd-stop",
              body=lemonade_location(dc))
    h.start()
    c = InbandClient(h.port)
    c.next_chunk()
    c.send("f1 LOGIN demo demo\r\nf2 SELECT INBOX\r\nf3 IDLE\r\n")
    c.until(lambda ch: ch.startswith(b"+"))
    start = time.time()
    clean = h.stop()
    took = time.time() - start
    c.close()
    t.ok(clean and took < 5, "httpd stops at once although an in-band "
         "session idles (%.1f s)" % took)


with Test("070 in-band") as t:
    tmp = t.tmpdir()
    with Dovecot(tmp, users={"demo": "demo"}) as dc:
        dc.deliver("demo", "Subject: one\r\n\r\nfirst\r\n")
        dc.deliver("demo", "Subject: two\r\n\r\nsecond\r\n")
        for mpm in ("event", "prefork"):
            with Httpd(tmp, mpm=mpm, body=lemonade_location(dc)) as h:
                t.diag("MPM %s" % mpm)
                if mpm == "event":
                    session_on_the_wire(t, h.port, dc)
                client_ends(t, h.port, dc)
                server_ends(t, h.port, dc)
                h.stop()
                t.ok("exit signal" not in h.error_log(), "%s: no child "
                     "crashed" % mpm)
        stop_with_idling_session(t, tmp, dc)
