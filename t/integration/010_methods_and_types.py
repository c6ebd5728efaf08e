#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE.
"""010: the HTTP face of the lemonade handler (draft 2.1, 2.1.1, 3).

OPTIONS says what the URL is bound to; every method but POST and OPTIONS
is refused with 405; a POST whose Content-Type is not
application/vnd.lemonade is refused with 415; and every answer, refusals
included, tells caches to keep nothing (draft 3). Run under prefork and
event."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))

from lemtest import (  # noqa: E402
    Dovecot, Httpd, Test, imap_lines, lemonade_location, post, raw_exchange,
    request)

PATH = "/lemonade/imap"
ALLOW = "POST, OPTIONS"
CACHE_CONTROL = "no-cache, no-store, must-revalidate"

# Methods other than POST and OPTIONS: each one is refused.
#   method, why
REFUSED_METHODS = [
    ("GET", 'draft 2.1: "A server MUST reject a HTTP GET request"'),
    ("HEAD", "draft 2.1: GET is refused, so HEAD is too (RFC 9110 9.3.2)"),
    ("PUT", "draft 2.1: commands go in the body of a POST"),
    ("DELETE", "draft 2.1: commands go in the body of a POST"),
]

# Content-Type of a POST, and whether the handler takes it.
#   value (None: no header), accepted, why
CONTENT_TYPES = [
    ("application/vnd.lemonade", True,
     'draft 2.1: Content-Type "MUST be set to application/vnd.lemonade"'),
    ("application/vnd.lemonade; charset=us-ascii", True,
     "RFC 9110 8.3.1: a media type may carry parameters"),
    ("Application/VND.Lemonade", True,
     "RFC 9110 8.3.1: type and subtype are case-insensitive"),
    ("application/vnd.lemonade ;charset=US-ASCII", True,
     "RFC 9110 8.3.1: whitespace may come before the parameters"),
    (None, False, "draft 2.1: the Content-Type header MUST be sent"),
    ("text/plain", False, "draft 2.1: only application/vnd.lemonade"),
    ("application/x-www-form-urlencoded", False,
     "draft 3: a firewall filters on the type: a form post is not IMAP"),
    ("application/vnd.lemonadex", False,
     "draft 2.1: a longer subtype is another type"),
    ("application/vnd", False,
     "draft 2.1: a prefix of the type is another type"),
    ("", False, "draft 2.1: an empty Content-Type is no type"),
]


def no_cache(headers):
    """True when the answer tells every cache to keep nothing (draft 3)."""
    return (headers.get("Cache-Control") == CACHE_CONTROL
            and headers.get("Pragma") == "no-cache")


def one_line(body):
    """True for a body of exactly one non-empty CRLF-ended line."""
    return (body.endswith(b"\r\n") and len(body) > 2
            and b"\n" not in body[:-2] and b"\r" not in body[:-2])


def head_on_the_wire(port):
    """Raw bytes of a HEAD exchange: (head, whatever follows the head)."""
    raw = raw_exchange(port, b"HEAD " + PATH.encode() + b" HTTP/1.1\r\n"
                       b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")
    head, _, rest = raw.partition(b"\r\n\r\n")
    return head, rest


def options_is_a_probe(t, port, mpm):
    status, headers, body = request(port, PATH, method="OPTIONS")
    t.eq(status, 204, "%s: OPTIONS is answered 204" % mpm)
    t.eq(headers.get("Allow"), ALLOW,
         "%s: OPTIONS lists POST and OPTIONS in Allow" % mpm)
    t.eq(headers.get("Lemonade-Protocol"), "IMAP",
         "%s: OPTIONS says the URL is bound to IMAP" % mpm)
    t.eq(headers.get("Lemonade-Modes"), "in-response, in-band, long-poll",
         "%s: OPTIONS offers in-response (2.1.1), in-band (2.1.2) and "
         "long-poll modes" % mpm)
    t.eq(body, b"", "%s: OPTIONS has no body" % mpm)
    t.ok(no_cache(headers), "%s: OPTIONS forbids caching (draft 3)" % mpm,
         str(headers))


def other_methods_are_refused(t, port, mpm):
    for method, why in REFUSED_METHODS:
        status, headers, body = request(port, PATH, method=method)
        t.eq(status, 405, "%s: %s is refused with 405 (%s)"
             % (mpm, method, why))
        t.eq(headers.get("Allow"), ALLOW,
             "%s: the 405 for %s lists POST and OPTIONS in Allow"
             % (mpm, method))
        t.ok(no_cache(headers), "%s: the 405 for %s forbids caching"
             % (mpm, method), str(headers))
        t.eq((headers.get("Content-Type") or "").split(";")[0],
             "text/plain", "%s: the 405 for %s is text/plain"
             % (mpm, method))
        if method == "HEAD":
            head, rest = head_on_the_wire(port)
            t.ok(head.startswith(b"HTTP/1.1 405 "),
                 "%s: HEAD on the wire is a 405 too" % mpm, head)
            t.eq(rest, b"", "%s: the 405 for HEAD has no body on the wire"
                 % mpm)
        else:
            t.ok(one_line(body), "%s: the 405 for %s has a one-line body"
                 % (mpm, method), repr(body))

    status, headers, _ = request(
        port, PATH, imap_lines("a1 NOOP"), method="GET",
        headers={"Content-Type": "application/vnd.lemonade"})
    t.eq(status, 405, "%s: a GET is refused even with the lemonade type "
         "and a batch" % mpm)


def content_types_are_checked(t, port, mpm):
    batch = imap_lines("a1 NOOP")
    for value, accepted, why in CONTENT_TYPES:
        shown = "no Content-Type" if value is None else repr(value)
        headers = {} if value is None else {"Content-Type": value}
        status, hdrs, body = request(port, PATH, batch, headers)
        if accepted:
            t.eq(status, 200, "%s: a POST with %s is served (%s)"
                 % (mpm, shown, why))
            t.ok(body.startswith(b"a1 OK"), "%s: and its NOOP is relayed"
                 % mpm, repr(body))
            continue
        t.eq(status, 415, "%s: a POST with %s is refused with 415 (%s)"
             % (mpm, shown, why))
        t.ok(no_cache(hdrs), "%s: the 415 for %s forbids caching"
             % (mpm, shown), str(hdrs))
        t.ok((hdrs.get("Content-Type") or "").startswith("text/plain")
             and one_line(body), "%s: the 415 for %s is one line of "
             "text/plain" % (mpm, shown), "%s %r" % (hdrs, body))


def every_answer_forbids_caching(t, port, mpm):
    # 200: a NOOP is fine before LOGIN (RFC 3501 6.1.2).
    status, headers, _ = post(port, PATH, imap_lines("a1 NOOP"))
    t.eq(status, 200, "%s: a lone NOOP is answered 200" % mpm)
    t.ok(no_cache(headers), "%s: the 200 forbids caching" % mpm,
         str(headers))
    t.eq((headers.get("Content-Type") or "").split(";")[0], "text/plain",
         "%s: the 200 is text/plain (draft 2.1)" % mpm)

    # 500: SELECT before LOGIN is refused by the IMAP server.
    status, headers, _ = post(port, PATH, imap_lines("a1 SELECT INBOX"))
    t.eq(status, 500, "%s: a SELECT before LOGIN is answered 500" % mpm)
    t.ok(no_cache(headers), "%s: the 500 forbids caching" % mpm,
         str(headers))

    # 400: a batch the handler will not relay.
    status, headers, body = post(port, PATH, b"a1 NOOP \xe9\r\n")
    t.eq(status, 400, "%s: an 8-bit command is answered 400" % mpm)
    t.ok(no_cache(headers), "%s: the 400 forbids caching" % mpm,
         str(headers))
    t.ok((headers.get("Content-Type") or "").startswith("text/plain")
         and one_line(body), "%s: the 400 is one line of text/plain" % mpm,
         "%s %r" % (headers, body))


def run(t, tmp, dc, mpm):
    with Httpd(tmp, mpm=mpm, body=lemonade_location(dc)) as httpd:
        options_is_a_probe(t, httpd.port, mpm)
        other_methods_are_refused(t, httpd.port, mpm)
        content_types_are_checked(t, httpd.port, mpm)
        every_answer_forbids_caching(t, httpd.port, mpm)
        errors = httpd.log_lines()
    t.ok(not errors, "%s: the error log has no error" % mpm,
         "\n".join(errors))


with Test("010 methods and types") as t:
    tmp = t.tmpdir()
    with Dovecot(tmp, users={"demo": "demo"}) as dc:
        for mpm in ("prefork", "event"):
            run(t, tmp, dc, mpm)
