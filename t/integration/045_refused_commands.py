#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE.
"""045: commands that cannot work in in-response mode are refused at once.

Draft 2.1.1: "Other commands that use a continuation response cannot be
issued unless the LITERAL+ extension is supported." Each command of
REFUSED is answered with a tagged BAD by the gateway, well within 5 s and
without a hang, and the command after it in the same batch is still
relayed and answered OK. AUTHENTICATE with an initial response (RFC 4959)
needs no continuation and logs in. (IDLE, which the draft also rules out
here, is served as a long poll instead: 075 tests it.)"""

import base64
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))

from lemtest import (  # noqa: E402
    CookieJar, Dovecot, Httpd, Test, imap_lines, lemonade_location, post)

PATH = "/lemonade/imap"
DEADLINE = 5.0      # seconds an answer may take before it counts as a hang

# Commands the gateway refuses in in-response mode.
#   command line after the tag, needs a logged-in session, source
REFUSED = [
    ("starttls", False, "RFC 3501 9: command names are case-insensitive"),
    ("STARTTLS", False, "draft 2.1: use HTTPS; STARTTLS waits for a "
     "handshake (RFC 3501 6.2.1)"),
    ("COMPRESS DEFLATE", True, "RFC 4978 3: the stream changes after the "
     "OK, which one HTTP answer cannot carry"),
    ("AUTHENTICATE PLAIN", False, "draft 2.1.1: it needs a continuation "
     "(RFC 3501 6.2.2)"),
    ("AUTHENTICATE LOGIN", False, "draft 2.1.1: LOGIN has no initial "
     "response, so it needs continuations"),
]


def plain_ir(user, password):
    """A SASL PLAIN initial response (RFC 4616), base64 (RFC 4959)."""
    return base64.b64encode(b"\0" + user.encode() + b"\0"
                            + password.encode()).decode()


def timed_post(port, body, jar=None):
    """POST with a DEADLINE: (status, body, seconds), or None on a hang."""
    start = time.monotonic()
    try:
        status, _, answer = post(port, PATH, body, jar=jar,
                                 timeout=DEADLINE)
    except (socket.timeout, TimeoutError):
        return None, b"", time.monotonic() - start
    return status, answer, time.monotonic() - start


def tagged_lines(body):
    return [ln for ln in body.split(b"\r\n")
            if ln and not ln.startswith(b"* ") and not ln.startswith(b"+")]


def logged_in_jar(t, port, why):
    jar = CookieJar()
    status, _, _ = post(port, PATH, imap_lines("a0 LOGIN demo demo"),
                        jar=jar)
    t.eq(status, 200, "a session logs in for %s" % why)
    return jar


def refused_in_a_batch(t, port, line, logged_in, source):
    jar = logged_in_jar(t, port, line) if logged_in else None
    status, body, took = timed_post(
        port, imap_lines("r1 " + line, "r2 NOOP"), jar)
    t.ok(status is not None and took < DEADLINE,
         "%s is answered within %.0f s, no hang (%s)"
         % (line, DEADLINE, source), "took %.1f s" % took)
    tagged = tagged_lines(body)
    t.ok(len(tagged) >= 1 and tagged[0].startswith(b"r1 BAD "),
         "  with a tagged BAD for it, first", repr(body))
    t.ok(len(tagged) == 2 and tagged[1].startswith(b"r2 OK "),
         "  and the NOOP after it in the batch is answered OK, second",
         repr(body))
    t.eq(status, 500, "  and the answer is 500 (draft 2.1: BAD means 500)")
    t.ok(not any(ln.startswith(b"+") for ln in body.split(b"\r\n")),
         "  and no continuation request shows in the answer", repr(body))
    if logged_in:
        status, body, _ = timed_post(port, imap_lines("r3 NOOP"), jar)
        t.ok(status == 200 and body.startswith(b"r3 OK"),
             "  and the session is still usable by the next request",
             "%s %r" % (status, body))


def refused_keeps_its_place(t, port):
    # draft 2.1.1: the answer holds "all the responses to all the
    # commands", in the order of the commands.
    jar = logged_in_jar(t, port, "a mixed batch")
    status, body, took = timed_post(port, imap_lines(
        "o1 NOOP", "o2 STARTTLS", 'o3 LIST "" INBOX', "o4 COMPRESS DEFLATE",
        "o5 AUTHENTICATE PLAIN", "o6 NOOP"), jar)
    t.ok(status is not None and took < DEADLINE,
         "a batch mixing refused and relayed commands is answered within "
         "%.0f s" % DEADLINE, "took %.1f s" % took)
    tags = [ln.split(b" ", 2)[:2] for ln in tagged_lines(body)]
    t.eq(tags, [[b"o1", b"OK"], [b"o2", b"BAD"], [b"o3", b"OK"],
                [b"o4", b"BAD"], [b"o5", b"BAD"], [b"o6", b"OK"]],
         "  and each refused command's BAD keeps its place among the "
         "relayed ones' OKs")


def authenticate_with_initial_response(t, port):
    jar = CookieJar()
    status, body, took = timed_post(port, imap_lines(
        "s1 AUTHENTICATE PLAIN " + plain_ir("demo", "demo"),
        "s2 SELECT INBOX"), jar)
    t.eq(status, 200, "AUTHENTICATE PLAIN with an initial response logs in "
         "(RFC 4959: SASL-IR)")
    tagged = tagged_lines(body)
    t.ok(len(tagged) == 2 and tagged[0].startswith(b"s1 OK ")
         and tagged[1].startswith(b"s2 OK "),
         "  and the SELECT after it in the batch is answered OK",
         repr(body))
    status, body, _ = timed_post(port, imap_lines("s3 NOOP"), jar)
    t.ok(status == 200 and body.startswith(b"s3 OK"),
         "  and the cookie keeps that login for the next request",
         "%s %r" % (status, body))

    status, body, took = timed_post(port, imap_lines(
        "s4 AUTHENTICATE PLAIN " + plain_ir("demo", "wrong"), "s5 NOOP"))
    t.ok(status is not None and took < DEADLINE,
         "AUTHENTICATE PLAIN with a wrong password is answered within "
         "%.0f s" % DEADLINE, "took %.1f s" % took)
    tagged = tagged_lines(body)
    t.ok(status == 500 and len(tagged) == 2
         and tagged[0].startswith(b"s4 NO ")
         and tagged[1].startswith(b"s5 OK "),
         "  with a tagged NO, a 500, and the NOOP after it answered",
         "%s %r" % (status, body))


def run(t, tmp, dc):
    with Httpd(tmp, body=lemonade_location(dc)) as httpd:
        for line, logged_in, source in REFUSED:
            refused_in_a_batch(t, httpd.port, line, logged_in, source)
        refused_keeps_its_place(t, httpd.port)
        authenticate_with_initial_response(t, httpd.port)
        errors = httpd.log_lines()
    t.ok(not errors, "the error log has no error", "\n".join(errors))


with Test("045 refused commands") as t:
    tmp = t.tmpdir()
    with Dovecot(tmp, users={"demo": "demo"}) as dc:
        run(t, tmp, dc)
