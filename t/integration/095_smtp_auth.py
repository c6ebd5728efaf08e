#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE.
"""095: SMTP AUTH through the binding (draft 2.1.2 in-band, 2.1.4 SMTP),
against a real Postfix that asks Dovecot about every password.

In-band mode carries a whole SASL exchange: AUTH LOGIN's two 334
challenges come back a chunk each and the client's answers go through,
a wrong password is refused with 535 and the session goes on. In-response
mode carries AUTH with its initial response (RFC 4954 4) and answers an
AUTH without one itself, at once. Mail sent after AUTH is delivered byte
for byte; without AUTH, relaying is refused with Postfix's own reply. No
password reaches httpd's error log, even at lemonade:trace8."""

import base64
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))

from lemtest import (  # noqa: E402
    CookieJar, Httpd, InbandClient, Test, lemonade_location, post,
    smtp_lines, wait_for)
from lempostfix import Postfix, SaslDovecot  # noqa: E402

PATH = "/lemonade/smtp"
USER = "demo"
# Not the user name: the log check below must be able to tell them apart.
PASSWORD = "Lem0n-squeezer.7"
WRONG_PASSWORD = "not-the-password"

LOGIN_USERNAME = b"334 VXNlcm5hbWU6\r\n"     # base64 "Username:"
LOGIN_PASSWORD = b"334 UGFzc3dvcmQ6\r\n"     # base64 "Password:"


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


# RFC 4616 2: authzid NUL authcid NUL passwd
PLAIN = b64("\0%s\0%s" % (USER, PASSWORD))


def message(label):
    """A message with every header Postfix would otherwise add, a line
    that starts with a dot and 8-bit text, CRLF-ended."""
    return (b"From: <a@example.org>\r\n"
            b"To: <demo@example.org>\r\n"
            b"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
            b"Message-ID: <%s@client.example>\r\n"
            b"Subject: %s through HTTP\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"\r\n"
            b"first line\r\n"
            b".a line that starts with a dot\r\n"
            b"caf\xc3\xa9 8-bit\r\n") % (label.encode(), label.encode())


def stuffed(body):
    """RFC 5321 4.5.2: a line that starts with "." is sent with one more."""
    return b"\r\n".join(b"." + ln if ln.startswith(b".") else ln
                        for ln in body.split(b"\r\n"))


def transaction(body, rcpt="demo@example.org"):
    return (smtp_lines("MAIL FROM:<a@example.org>", "RCPT TO:<%s>" % rcpt,
                       "DATA") + stuffed(body) + b".\r\n")


def codes(answer):
    """The code of each reply, a multi-line reply counted once."""
    return [int(ln[:3]) for ln in answer.split(b"\r\n")
            if len(ln) >= 4 and ln[3:4] != b"-"]


# Postfix puts these above the message it delivers (and nothing else).
TRACE_HEADERS = (b"Return-Path:", b"X-Original-To:", b"Delivered-To:",
                 b"Received:")


def as_delivered(files, sent):
    """Find the delivered copy of sent (by its Message-ID): is it sent,
    byte for byte, under Postfix's trace headers? (ok, the file)"""
    msgid = re.search(rb"Message-ID: <[^>]*>", sent).group(0)
    copies = [f for f in files if msgid in f]
    if len(copies) != 1:
        return False, "%d copies of %r among %d messages" % (
            len(copies), msgid, len(files))
    got = copies[0]
    want = sent.replace(b"\r\n", b"\n")    # a Maildir file has LF ends
    if not got.endswith(want):
        return False, got
    added = got[:-len(want)].split(b"\n")[:-1]
    ok = all(ln.startswith(TRACE_HEADERS) or ln[:1] in (b" ", b"\t")
             for ln in added)
    return ok, got


def received_with(copy):
    """The protocol of Postfix's Received header: ESMTPA after AUTH."""
    found = re.search(rb"\n\s+by mx\.example\.test \(Postfix\) with (\w+)",
                      copy)
    return found.group(1).decode() if found else None


def next_disconnect(mx, since, timeout=5.0):
    """Postfix's summary of the next session to end after log offset
    since: "disconnect from ... ehlo=1 auth=0/1 quit=1 commands=2/3"."""
    found = []

    def ended():
        found[:] = re.findall(r"disconnect from \S+ (.*)",
                              mx.log()[since:])
        return bool(found)

    wait_for(ended, timeout)
    return found[0] if found else ""


# --- in-band (draft 2.1.2) --------------------------------------------------

def greet_and_ehlo(t, c, label):
    greeting = c.next_chunk(10)
    t.ok(c.status == 200 and greeting and greeting.startswith(b"220 "),
         "%s: the first chunk is Postfix's 220 greeting" % label, greeting)
    c.send("EHLO client.example\r\n")
    got, ok = c.until(lambda ch: re.search(rb"(^|\r\n)250 ", ch), 10)
    return ok and len(got) == 1, got[0] if got else b""


def inband_auth_login(t, h, mx):
    c = InbandClient(h.port, path=PATH, timeout=20)
    try:
        one, ehlo = greet_and_ehlo(t, c, "in-band")
        offers = ehlo.split(b"\r\n")
        t.ok(one and ehlo.startswith(b"250-")
             and any(ln[4:].startswith(b"AUTH ") and b"LOGIN" in ln
                     for ln in offers),
             "in-band: the EHLO reply is one chunk and offers AUTH LOGIN",
             ehlo)
        pipelining = b"250-PIPELINING" in offers

        c.send("AUTH LOGIN\r\n")
        t.eq(c.next_chunk(10), LOGIN_USERNAME, "in-band: AUTH LOGIN is "
             "answered by the 334 asking for the user name, a chunk alone")
        c.send(b64(USER) + "\r\n")
        t.eq(c.next_chunk(10), LOGIN_PASSWORD, "in-band: the user name "
             "goes through and the 334 asking for the password comes back")
        c.send(b64(PASSWORD) + "\r\n")
        done = c.next_chunk(15)
        t.ok(done and done.startswith(b"235 ") and done.count(b"\r\n") == 1,
             "in-band: the password goes through and AUTH LOGIN completes "
             "with 235", done)

        commands = ["MAIL FROM:<a@example.org>\r\n",
                    "RCPT TO:<demo@example.org>\r\n", "DATA\r\n"]
        if pipelining:
            c.send("".join(commands))
            got, ok = c.until(lambda ch: ch.startswith(b"354"), 10)
        else:
            got = []
            for cmd in commands:
                c.send(cmd)
                got.append(c.next_chunk(10) or b"")
            ok = got[-1].startswith(b"354")
        t.ok(ok and [g[:4] for g in got] == [b"250 ", b"250 ", b"354 "]
             and all(g.count(b"\r\n") == 1 for g in got),
             "in-band: MAIL, RCPT and DATA%s get a chunk per reply, DATA "
             "its 354" % (" in one chunk" if pipelining else ""), got)

        sent = message("inband-login")
        c.send(stuffed(sent)[:40])
        c.send(stuffed(sent)[40:] + b".\r\n")
        got = c.next_chunk(10)
        t.ok(got and got.startswith(b"250 "),
             "in-band: the message is accepted with 250", got)

        c.send("QUIT\r\n")
        got, _ = c.until(lambda ch: ch == b"", 10)
        t.ok(len(got) == 2 and got[0].startswith(b"221 ") and c.ended,
             "in-band: QUIT is answered by 221 and the last chunk", got)
    finally:
        c.close()

    ok, copy = as_delivered(mx.wait_messages(USER, 1), sent)
    t.ok(ok, "in-band: the message is in demo's Maildir byte for byte, "
         "under Postfix's trace headers", copy)
    t.eq(received_with(copy) if ok else None, "ESMTPA",
         "in-band: Postfix received it from an authenticated client")
    t.ok(wait_for(lambda: "sasl_method=LOGIN, sasl_username=%s" % USER
                  in mx.log(), 5),
         "in-band: Postfix logged the LOGIN as demo's", mx.log())


def inband_wrong_password(t, h, mx):
    c = InbandClient(h.port, path=PATH, timeout=30)
    try:
        greet_and_ehlo(t, c, "in-band, wrong password")
        c.send("AUTH LOGIN\r\n")
        first = c.next_chunk(10)
        c.send(b64(USER) + "\r\n")
        second = c.next_chunk(10)
        t.ok(first == LOGIN_USERNAME and second == LOGIN_PASSWORD,
             "in-band, wrong password: AUTH LOGIN asks for user name and "
             "password", [first, second])
        c.send(b64(WRONG_PASSWORD) + "\r\n")
        # Dovecot answers a failure after auth_failure_delay (2 s)
        refused = c.next_chunk(15)
        t.ok(refused and refused.startswith(b"535 ")
             and refused.count(b"\r\n") == 1,
             "in-band: a wrong password is refused with 535, a chunk alone",
             refused)

        c.send("AUTH PLAIN %s\r\n" % PLAIN)
        # ... and the next attempt from the same address after a penalty
        again = c.next_chunk(20)
        t.ok(again and again.startswith(b"235 "),
             "in-band: the session goes on, AUTH PLAIN with the right "
             "password then passes", again)
        c.send("QUIT\r\n")
        got, _ = c.until(lambda ch: ch == b"", 10)
        t.ok(got and got[0].startswith(b"221 ") and c.ended,
             "in-band, wrong password: QUIT ends the answer", got)
    finally:
        c.close()


# --- in-response (draft 2.1.1) ----------------------------------------------

def batch_auth_plain(t, h, mx, before):
    sent = message("batch-plain")
    jar = CookieJar()
    st, _, out = post(h.port, PATH, smtp_lines(
        "EHLO client.example", "AUTH PLAIN %s" % PLAIN)
        + transaction(sent) + smtp_lines("QUIT"), jar=jar, timeout=30)
    t.ok(st == 200 and codes(out) == [250, 235, 250, 250, 354, 250, 221],
         "in-response: AUTH PLAIN with its initial response, then a "
         "message and QUIT, in one batch: 200 and every reply", out)
    ok, copy = as_delivered(mx.wait_messages(USER, before + 1), sent)
    t.ok(ok and received_with(copy) == "ESMTPA",
         "in-response: the message is delivered byte for byte, received "
         "after AUTH", copy)


def batch_bdat(t, h, mx, before):
    # RFC 3030: the message in chunks, no dot-stuffing, to a server that
    # offers CHUNKING (Postfix does)
    sent = message("batch-bdat")
    half = len(sent) // 2
    st, _, out = post(h.port, PATH, smtp_lines(
        "EHLO client.example", "AUTH PLAIN %s" % PLAIN,
        "MAIL FROM:<a@example.org>", "RCPT TO:<demo@example.org>")
        + b"BDAT %d\r\n" % half + sent[:half]
        + b"BDAT %d LAST\r\n" % (len(sent) - half) + sent[half:]
        + smtp_lines("QUIT"), timeout=30)
    t.ok(st == 200 and codes(out) == [250, 235, 250, 250, 250, 250, 221],
         "in-response: a message in two BDAT chunks is accepted", out)
    ok, copy = as_delivered(mx.wait_messages(USER, before + 1), sent)
    t.ok(ok, "in-response: and delivered byte for byte", copy)


def batch_relay_refused(t, h, mx):
    since = len(mx.log())
    st, _, out = post(h.port, PATH, smtp_lines("EHLO client.example")
                      + transaction(message("batch-relay"),
                                    rcpt="someone@elsewhere.example")
                      + smtp_lines("QUIT"), timeout=30)
    refusal = (b"554 5.7.1 <someone@elsewhere.example>: Relay access "
               b"denied\r\n")
    t.ok(st == 500 and refusal in out,
         "in-response: without AUTH, RCPT to another domain is a 500 "
         "with Postfix's exact 554 reply", out)
    t.eq(codes(out), [250, 250, 554, 554, 221], "in-response: DATA and "
         "the message are not sent after the refused RCPT, QUIT is")
    summary = next_disconnect(mx, since)
    t.ok("rcpt=0/1" in summary and "data=" not in summary,
         "in-response: Postfix saw the RCPT refused and no DATA", summary)


def batch_auth_without_response(t, h, mx):
    since = len(mx.log())
    started = time.monotonic()
    st, _, out = post(h.port, PATH, smtp_lines(
        "EHLO client.example", "AUTH LOGIN", "QUIT"), timeout=15)
    took = time.monotonic() - started
    t.ok(st == 500 and re.search(rb"(^|\r\n)501 5\.5\.2 [^\r\n]*\r\n", out)
         and codes(out) == [250, 501, 221],
         "in-response: AUTH LOGIN without an initial response is answered "
         "by the gateway with 501 5.5.2 and a 500", out)
    t.ok(took < 5, "in-response: and at once (%.1f s)" % took)
    summary = next_disconnect(mx, since)
    t.ok("ehlo=1" in summary and "quit=1" in summary
         and "auth=" not in summary,
         "in-response: that AUTH never reached Postfix", summary)


def batch_challenge_cancelled(t, h, mx):
    since = len(mx.log())
    started = time.monotonic()
    st, _, out = post(h.port, PATH, smtp_lines(
        "EHLO client.example", "AUTH LOGIN %s" % b64(USER), "QUIT"),
        timeout=15)
    took = time.monotonic() - started
    t.ok(st == 500 and LOGIN_PASSWORD in out
         and codes(out) == [250, 334, 501, 221] and took < 10,
         "in-response: a 334 challenge the batch cannot answer is "
         "cancelled (RFC 4954 4), the server's 501 comes back, QUIT runs "
         "(%.1f s)" % took, out)
    summary = next_disconnect(mx, since)
    t.ok("auth=0/1" in summary and "quit=1" in summary,
         "in-response: Postfix saw one AUTH, not completed", summary)


# --- the log ----------------------------------------------------------------

def no_secret_in_log(t, h):
    log = h.error_log()
    secrets = {
        "the password": PASSWORD,
        "the password in base64": b64(PASSWORD),
        "the wrong password": WRONG_PASSWORD,
        "the wrong password in base64": b64(WRONG_PASSWORD),
        "the AUTH PLAIN response": PLAIN,
    }
    found = [what for what, text in secrets.items() if text in log]
    t.ok(log and not found, "httpd's error log at lemonade:trace8 holds "
         "no password, plain or base64", ", ".join(found) or
         "(the log is empty)")


with Test("095 SMTP AUTH") as t:
    tmp = t.tmpdir()
    with SaslDovecot(tmp, users={USER: PASSWORD}) as dc, \
            Postfix(tmp, dc) as mx, \
            Httpd(tmp, mpm="event", loglevel="info lemonade:trace8",
                  body=lemonade_location(mx.url(), path=PATH)) as h:
        inband_auth_login(t, h, mx)
        inband_wrong_password(t, h, mx)
        batch_auth_plain(t, h, mx, len(mx.messages(USER)))
        batch_bdat(t, h, mx, len(mx.messages(USER)))
        batch_relay_refused(t, h, mx)
        batch_auth_without_response(t, h, mx)
        batch_challenge_cancelled(t, h, mx)
        time.sleep(0.5)       # anything queued by mistake is delivered
        t.eq(len(mx.messages(USER)), 3, "demo got the three messages sent "
             "after AUTH and nothing else")
        no_secret_in_log(t, h)
