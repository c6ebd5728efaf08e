#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE.
"""155: secrets stay out of the logs, at every level up to trace8.

A session logs in with a known password in every way the binding carries
(LOGIN, AUTHENTICATE PLAIN, in-band, SMTP AUTH), APPENDs a literal with a
known marker, and every log file of httpd is then searched for the
password, the AUTHENTICATE and AUTH payloads, the session cookie's value
and the literal's contents."""

import base64
import glob
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))

from lemtest import (  # noqa: E402
    CookieJar, Dovecot, Httpd, InbandClient, SmtpSink, Test, imap_lines,
    lemonade_location, post)

PASSWORD = "Zq7-lemonade-secret"
MARKER = b"LiteralMarker-9f1c"


with Test("155 secrets") as t:
    tmp = t.tmpdir()
    plain = base64.b64encode(b"\0demo\0" + PASSWORD.encode()).decode()
    with Dovecot(tmp, users={"demo": PASSWORD}) as dc, \
            SmtpSink(tmp) as sink, \
            Httpd(tmp, mpm="event", loglevel="trace8",
                  body=lemonade_location(dc)
                  + lemonade_location(sink.url(), path="/lemonade/smtp")
                  ) as h:
        jar = CookieJar()
        st, _, out = post(h.port, "/lemonade/imap", imap_lines(
            "a1 LOGIN demo %s" % PASSWORD,
            "a2 APPEND INBOX {%d+}" % (len(MARKER) + 4))
            + b"\r\n\r\n" + MARKER + b"\r\n", jar=jar)
        t.eq(st, 200, "LOGIN and an APPEND are answered")
        st, _, out = post(h.port, "/lemonade/imap", imap_lines(
            "b1 AUTHENTICATE PLAIN %s" % plain))
        t.eq(st, 200, "AUTHENTICATE PLAIN with its initial response too")
        st, _, out = post(h.port, "/lemonade/imap",
                          b"c1 LOGIN {4}\r\ndemo {%d}\r\n%s\r\n"
                          % (len(PASSWORD), PASSWORD.encode()))
        t.eq(st, 200, "a LOGIN whose password is a literal too")
        c = InbandClient(h.port)
        c.next_chunk()
        c.send("d1 AUTHENTICATE PLAIN\r\n")
        c.until(lambda ch: ch.startswith(b"+"))
        c.send(plain + "\r\n")
        got, ok = c.until_tagged("d1")
        t.ok(ok and got[-1].startswith(b"d1 OK"),
             "an in-band AUTHENTICATE with its response on a line of its own",
             got)
        c.send("d2 LOGOUT\r\n")
        c.until(lambda ch: ch == b"")
        c.close()
        st, _, out = post(h.port, "/lemonade/smtp", b"EHLO me\r\nAUTH PLAIN "
                          + plain.encode() + b"\r\nQUIT\r\n")
        t.eq(st, 200, "an SMTP AUTH PLAIN passes")
        h.stop()

        logs = glob.glob(os.path.join(h.dir, "*.log"))
        text = b"".join(open(p, "rb").read() for p in logs)
        traced = [ln for ln in text.splitlines() if b":trace" in ln]
        t.ok(len(text) > 10000 and len(traced) > 100,
             "the logs were written at trace level (%d bytes in %d files, "
             "%d trace lines)" % (len(text), len(logs), len(traced)))
        for what, secret in (("the password", PASSWORD.encode()),
                             ("the AUTH payload", plain.encode()),
                             ("the literal's contents", MARKER)):
            t.ok(secret not in text, "%s is in no log file" % what)
        # httpd's own http module traces every header at trace4 and up,
        # Cookie and Set-Cookie included: the module's lines must not
        cookie = jar.cookies["lemonade_session"].encode()
        ours = b"\n".join(ln for ln in text.splitlines()
                          if b"[lemonade:" in ln)
        t.ok(len(ours) > 1000 and cookie not in ours,
             "the session cookie's value is in none of the module's lines")
