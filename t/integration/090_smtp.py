#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE.
"""090: the SMTP binding, selected by URL (draft 2.1.4), against Postfix's
smtp-sink.

A batch of SMTP commands (RFC 2442 batch SMTP) goes to the server in
order, pipelined where it offers PIPELINING (RFC 2920) and one at a time
where it does not; the message arrives byte for byte with its envelope;
every reply comes back; a refusal is a 500 with the server's exact reply
and no message goes into a failed transaction; a cookie keeps the SMTP
session between requests; in-band mode carries an interactive session."""

import os
import socket
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))

from lemtest import (  # noqa: E402
    CookieJar, Httpd, InbandClient, SmtpSink, Test, free_port,
    lemonade_location, post, request, smtp_lines)

PATH = "/lemonade/smtp"

# RFC 5321 4.5.2: a line that starts with "." is sent with one more
BODY = (b"Subject: through HTTP\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"\r\n"
        b"first line\r\n"
        b".a line that starts with a dot\r\n"
        b"caf\xc3\xa9 8-bit\r\n")


def stuffed(body):
    return b"\r\n".join(b"." + ln if ln.startswith(b".") else ln
                        for ln in body.split(b"\r\n"))


def transaction(body=BODY, rcpts=("b@example.org", "c@example.org",
                                  "d@example.org")):
    return (smtp_lines("MAIL FROM:<a@example.org>")
            + smtp_lines(*["RCPT TO:<%s>" % r for r in rcpts])
            + smtp_lines("DATA") + stuffed(body) + b".\r\n")


def codes(answer):
    """The code of each reply, a multi-line reply counted once."""
    out = []
    for line in answer.split(b"\r\n"):
        if len(line) >= 4 and line[3:4] != b"-":
            out.append(int(line[:3]))
    return out


def arrived(sink, body, rcpts):
    msgs = sink.messages()
    if len(msgs) != 1:
        return False, "%d messages" % len(msgs)
    dump = msgs[0]
    want = body.replace(b"\r\n", b"\n")
    envelope = dump.split(b"\nReceived:")[0].decode("latin-1")
    # smtp-sink ends each dump with one more newline
    ok = (dump.endswith(want + b"\n") and "X-Mail-Args: <a@example.org>" in envelope
          and all("<%s>" % r in envelope for r in rcpts))
    return ok, dump


def batches(t, tmp, sink_options, label):
    with SmtpSink(tmp, sink_options, name="sink-" + label) as sink, \
            Httpd(tmp, name="httpd-" + label,
                  body=lemonade_location(sink.url(), path=PATH)) as h:
        jar = CookieJar()
        st, _, out = post(h.port, PATH, smtp_lines("EHLO client.example")
                          + transaction() + smtp_lines("QUIT"), jar=jar)
        t.eq(st, 200, "%s: a whole submission in one batch is a 200" % label)
        t.eq(codes(out), [250, 250, 250, 250, 250, 354, 250, 221],
             "%s: every reply comes back, in order" % label)
        ok, dump = arrived(sink, BODY, ("b@example.org", "c@example.org",
                                        "d@example.org"))
        t.ok(ok, "%s: the message arrives byte for byte, with its envelope "
             "and three recipients" % label, dump)


def sessions(t, tmp):
    with SmtpSink(tmp, name="sink-session") as sink, \
            Httpd(tmp, name="httpd-session",
                  body=lemonade_location(sink.url(), path=PATH)) as h:
        jar = CookieJar()
        st, _, out = post(h.port, PATH, smtp_lines("EHLO c.example"),
                          jar=jar)
        t.ok(st == 200 and jar, "EHLO opens a session with a cookie", out)
        st, _, out = post(h.port, PATH, transaction(), jar=jar)
        t.ok(st == 200 and codes(out) == [250, 250, 250, 250, 354, 250],
             "the next request sends a message in the same session", out)
        big = (b"Subject: big\r\n\r\n"
               + b"".join(b"%08d " % i + b"x" * 90 + b"\r\n"
                          for i in range(100000)))
        st, _, out = post(h.port, PATH, transaction(big, ("e@example.org",)),
                          jar=jar, timeout=60)
        t.ok(st == 200 and codes(out)[-1] == 250,
             "a 10 MB message goes through", out)
        msgs = sink.messages()
        t.ok(len(msgs) == 2
             and msgs[1].endswith(big.replace(b"\r\n", b"\n") + b"\n"),
             "and arrives byte for byte", len(msgs))
        st, hdrs, out = post(h.port, PATH, smtp_lines("QUIT"), jar=jar)
        t.ok(st == 200 and out.startswith(b"221") and not jar,
             "QUIT ends the session and expires the cookie", out)

        st, _, out = post(h.port, PATH, smtp_lines(
            "EHLO c.example", "MAIL FROM:<a@example.org>",
            "RCPT TO:<b@example.org>") + b"BDAT 5 LAST\r\nhello"
            + smtp_lines("RSET"), timeout=10)
        t.ok(st == 500 and b"503 5.5.1 BDAT needs CHUNKING" in out
             and codes(out)[-1] == 250,
             "BDAT to a server without CHUNKING is answered 503 by the "
             "gateway, its chunk unsent (RFC 3030 2)", out)

        st, hdrs, _ = request(h.port, PATH, method="OPTIONS")
        t.eq(hdrs.get("Lemonade-Protocol"), "SMTP", "OPTIONS says the URL "
             "is bound to SMTP")

        st, _, out = post(h.port, PATH, b"EHLO caf\xc3\xa9\r\n")
        t.eq(st, 400, "an 8-bit command line is a 400")
        st, _, out = post(h.port, PATH, smtp_lines("EHLO x", "MAIL FROM:<a@"
                          "example.org>", "RCPT TO:<b@example.org>", "DATA")
                          + b"no end of data\r\n")
        t.eq(st, 400, "a message without its end-of-data line is a 400")
        t.eq(len(sink.messages()), 2, "and nothing of either was sent")


def rejections(t, tmp):
    cases = [
        # (smtp-sink options, what is refused, the reply)
        (["-f", "RCPT"], "5xx at RCPT", b"500 5.3.0"),
        (["-r", "MAIL"], "4xx at MAIL", b"450 4.3.0"),
        (["-f", "DATA"], "5xx at DATA", b"500 5.3.0"),
        (["-r", "."], "4xx at the end of data", b"450 4.3.0"),
    ]
    for options, what, reply in cases:
        label = what.replace(" ", "-")
        with SmtpSink(tmp, options, name="sink-" + label) as sink, \
                Httpd(tmp, name="httpd-" + label,
                      body=lemonade_location(sink.url(), path=PATH)) as h:
            st, _, out = post(h.port, PATH, smtp_lines("EHLO c.example")
                              + transaction() + smtp_lines("RSET"))
            t.ok(st == 500 and reply in out,
                 "%s comes back as a 500 with the exact reply" % what, out)
            t.eq(codes(out)[-1], 250, "%s: the batch goes on (RSET is "
                 "answered)" % what)
            if options[1] != ".":
                # (smtp-sink dumps a message even when it refuses its end)
                t.eq(len(sink.messages()), 0, "%s: no message is delivered"
                     % what)
            if options[1] in ("RCPT", "MAIL"):
                t.ok(b"554 5.5.1" in out and b"354" not in out,
                     "%s: DATA and the message are not sent into the "
                     "failed transaction" % what, out)


def inband(t, tmp):
    with SmtpSink(tmp, name="sink-inband") as sink, \
            Httpd(tmp, mpm="event", name="httpd-inband",
                  body=lemonade_location(sink.url(), path=PATH)) as h:
        c = InbandClient(h.port, path=PATH)
        greeting = c.next_chunk()
        t.ok(c.status == 200 and greeting.startswith(b"220"),
             "in-band: the first chunk is the server's 220", greeting)
        c.send("EHLO c.example\r\n")
        got, ok = c.until(lambda ch: b"\r\n250 " in ch)
        t.ok(ok and len(got) == 1 and got[0].startswith(b"250-"),
             "in-band: a multi-line reply is one chunk", got)
        c.send("AUTH PLAIN AHVzZXIAc2VjcmV0\r\n")
        got, ok = c.until(lambda ch: ch[:1] in (b"2", b"5"))
        t.ok(ok and got[-1].startswith(b"2"),
             "in-band: AUTH PLAIN with its initial response passes", got)
        c.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n"
               "DATA\r\n")
        got, ok = c.until(lambda ch: ch.startswith(b"354"))
        t.ok(ok and [g[:3] for g in got] == [b"250", b"250", b"354"],
             "in-band: pipelined commands get a chunk per reply", got)
        c.send(stuffed(BODY)[:20])
        c.send(stuffed(BODY)[20:] + b".\r\n")
        got, ok = c.until(lambda ch: ch.startswith(b"250"))
        t.ok(ok, "in-band: the message is accepted", got)
        c.send("QUIT\r\n")
        got, ok = c.until(lambda ch: ch == b"")
        t.ok(got and got[0].startswith(b"221") and c.ended,
             "in-band: QUIT ends the answer", got)
        c.close()
        ok, dump = arrived(sink, BODY, ("b@example.org",))
        t.ok(ok, "in-band: the message arrives byte for byte", dump)


def garbage_server(greeting, answer):
    """A peer that greets, then answers any line with `answer` and keeps
    the connection: a server no real one would be."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conn.sendall(greeting)
            try:
                while conn.recv(4096):
                    conn.sendall(answer)
            except OSError:
                pass

    threading.Thread(target=serve, daemon=True).start()
    return srv


def faults(t, tmp):
    down = "smtp://127.0.0.1:%d" % free_port()
    bad = garbage_server(b"220 hi\r\n", b"this is no reply\r\n")
    refusing = garbage_server(b"554 5.3.2 not now\r\n", b"")
    body = (lemonade_location(down, path="/down")
            + lemonade_location("smtp://127.0.0.1:%d" % bad.getsockname()[1],
                                path="/garbage", extra="LemonadeBackendTimeout 3")
            + lemonade_location("smtp://127.0.0.1:%d"
                                % refusing.getsockname()[1], path="/refusing"))
    with Httpd(tmp, name="httpd-faults", body=body) as h:
        st, _, out = post(h.port, "/down", smtp_lines("EHLO me"))
        t.ok(st == 502 and b"SMTP server" in out,
             "an SMTP server nobody listens on is a 502", out)
        st, _, out = post(h.port, "/refusing", smtp_lines("EHLO me"))
        t.ok(st == 502 and b"refused" in out,
             "one that greets with 554 is a 502", out)
        st, _, out = post(h.port, "/garbage", smtp_lines("EHLO me", "NOOP"))
        t.ok(st == 502 and out.count(b"421 4.4.2") == 2,
             "a reply the gateway cannot parse is a 502, with a 421 for "
             "each command", out)
    bad.close()
    refusing.close()


with Test("090 SMTP") as t:
    tmp = t.tmpdir()
    batches(t, tmp, [], "pipelining")
    batches(t, tmp, ["-p"], "one-at-a-time")
    sessions(t, tmp)
    rejections(t, tmp)
    inband(t, tmp)
    faults(t, tmp)
