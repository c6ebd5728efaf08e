#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE.
"""020: how a batch is answered in in-response mode (draft 2.1, 2.1.1).

Every response of every command comes back in order, the untagged ones
before the tagged one they belong to; the status is 200 when every tagged
response is OK and 500 when one is NO or BAD; the first answer sets the
session cookie, and the cookie brings later requests back to the same
IMAP session. Run under prefork (every request in a new process) and
event."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))

from lemtest import (  # noqa: E402
    CookieJar, Dovecot, Httpd, Test, imap_lines, lemonade_location, post)

PATH = "/lemonade/imap"
COOKIE = re.compile(r"^lemonade_session=[0-9a-f]{32}-[0-9]+; "
                    r"Path=/lemonade/imap; HttpOnly; SameSite=Strict$")
LITERAL_AT_END = re.compile(rb"~?\{([0-9]+)\+?\}$")


def responses(body):
    """Split an answer into IMAP responses, literals kept inside them."""
    found, pos = [], 0
    while pos < len(body):
        start = pos
        while True:
            eol = body.find(b"\r\n", pos)
            if eol < 0:
                found.append(body[start:])
                return found
            m = LITERAL_AT_END.search(body, pos, eol)
            if not m:
                break
            pos = eol + 2 + int(m.group(1))
        found.append(body[start:eol])
        pos = eol + 2
    return found


def grouped(body):
    """[(tag, status, [untagged...])] in the order of the tagged lines.

    Untagged responses are given to the tagged response that follows them;
    a trailing group with tag None holds any left after the last one.
    """
    groups, pending = [], []
    for resp in responses(body):
        if resp.startswith(b"* ") or resp.startswith(b"+ "):
            pending.append(resp)
            continue
        words = resp.split(b" ", 2)
        status = words[1].upper() if len(words) > 1 else b""
        groups.append((words[0].decode("latin-1"), status.decode("latin-1"),
                       pending))
        pending = []
    if pending:
        groups.append((None, None, pending))
    return groups


def tags_and_status(body):
    return [(tag, status) for tag, status, _ in grouped(body)]


def untagged_of(body, tag):
    for g_tag, _, untagged in grouped(body):
        if g_tag == tag:
            return untagged
    return None


def login_list_select_in_one_batch(t, port, mpm, jar):
    status, headers, body = post(port, PATH, imap_lines(
        "a1 LOGIN demo demo", 'a2 LIST "" "*"', "a3 SELECT INBOX"), jar=jar)
    t.eq(status, 200, "%s: LOGIN, LIST and SELECT in one batch are "
         "answered 200 (draft 2.1: normal execution)" % mpm)
    t.eq((headers.get("Content-Type") or "").split(";")[0], "text/plain",
         "%s: the answer is text/plain (draft 2.1)" % mpm)
    t.ok(body.endswith(b"\r\n"), "%s: the answer ends with CRLF" % mpm,
         repr(body[-40:]))
    t.eq(tags_and_status(body),
         [("a1", "OK"), ("a2", "OK"), ("a3", "OK")],
         "%s: one tagged OK per command, in the order sent (draft 2.1.1)"
         % mpm)

    lists = untagged_of(body, "a2") or []
    t.ok(any(u.startswith(b"* LIST ") and u.endswith(b"INBOX")
             for u in lists),
         "%s: the LIST of INBOX comes before a2's tagged line" % mpm,
         repr(body))
    select = untagged_of(body, "a3") or []
    t.ok(any(u.startswith(b"* FLAGS ") for u in select)
         and any(u.endswith(b" EXISTS") for u in select),
         "%s: SELECT's FLAGS and EXISTS come before a3's tagged line" % mpm,
         repr(body))
    t.ok(not any(g[0] is None for g in grouped(body)),
         "%s: no untagged response comes after the last tagged one" % mpm,
         repr(body))
    return headers


def cookie_is_set_with_its_attributes(t, headers, mpm):
    cookies = headers.get_all("Set-Cookie") or []
    t.eq(len(cookies), 1, "%s: the first answer sets one cookie "
         "(draft 2.1.1: a session-id is passed in the cookie)" % mpm)
    t.ok(cookies and COOKIE.match(cookies[0]),
         "%s: the cookie is lemonade_session=<32 hex>-<slot>; "
         "Path=/lemonade/imap; HttpOnly; SameSite=Strict" % mpm,
         repr(cookies))
    t.ok(cookies and "secure" not in cookies[0].lower(),
         "%s: over plain HTTP the cookie is not marked Secure" % mpm,
         repr(cookies))


def cookie_carries_the_session(t, port, mpm, jar):
    # The mailbox selected in the first request is still selected.
    status, _, body = post(port, PATH, imap_lines(
        "b1 FETCH 1 (FLAGS)", "b2 NOOP"), jar=jar)
    t.eq(status, 200, "%s: with the cookie, FETCH without LOGIN or SELECT "
         "is answered 200 (draft 2.1.1: same session)" % mpm)
    t.eq(tags_and_status(body), [("b1", "OK"), ("b2", "OK")],
         "%s: and both commands are answered OK" % mpm)
    t.ok(any(u.startswith(b"* 1 FETCH ")
             for u in untagged_of(body, "b1") or []),
         "%s: the FETCH returns message 1 of the selected INBOX" % mpm,
         repr(body))

    status, headers, body = post(port, PATH, imap_lines("c1 SELECT INBOX"))
    t.eq(status, 500, "%s: without the cookie, SELECT is answered 500 "
         "(a new session, not logged in)" % mpm)
    t.ok(tags_and_status(body) and tags_and_status(body)[-1][0] == "c1"
         and tags_and_status(body)[-1][1] in ("NO", "BAD"),
         "%s: and its tagged response is NO or BAD" % mpm, repr(body))
    other = CookieJar()
    other.update(headers.get_all("Set-Cookie") or [])
    t.ok(other and other.cookies != jar.cookies,
         "%s: that new session gets a cookie of its own" % mpm,
         "%r vs %r" % (other.cookies, jar.cookies))


def a_no_makes_a_500(t, port, mpm, jar):
    status, _, body = post(port, PATH, imap_lines(
        "d1 NOOP", "d2 SELECT Nosuch", 'd3 LIST "" INBOX'), jar=jar)
    t.eq(status, 500, "%s: a SELECT of a missing mailbox makes the answer "
         "500 (draft 2.1: NO means 500)" % mpm)
    t.eq(tags_and_status(body),
         [("d1", "OK"), ("d2", "NO"), ("d3", "OK")],
         "%s: the commands around the NO are answered too, in order" % mpm)
    t.ok(any(u.startswith(b"* LIST ")
             for u in untagged_of(body, "d3") or []),
         "%s: the LIST after the NO still carries its untagged line" % mpm,
         repr(body))


def a_bad_makes_a_500(t, port, mpm, jar):
    status, _, body = post(port, PATH, imap_lines(
        "e1 FROBNICATE", "e2 NOOP"), jar=jar)
    t.eq(status, 500, "%s: an unknown command makes the answer 500 "
         "(draft 2.1: BAD means 500)" % mpm)
    t.eq(tags_and_status(body), [("e1", "BAD"), ("e2", "OK")],
         "%s: the unknown command is answered BAD and the next one OK"
         % mpm)

    status, _, body = post(port, PATH, imap_lines('f1 LIST "" INBOX'),
                           jar=jar)
    t.eq(status, 200, "%s: after a NO and a BAD the session is still "
         "logged in" % mpm)


def an_unreadable_tag_is_answered(t, port, mpm, jar):
    # RFC 3501 9 allows "]" in a tag; Dovecot cannot read it back and
    # answers untagged, so the gateway answers the command itself
    start = time.monotonic()
    status, _, body = post(port, PATH, imap_lines("x] NOOP", "y1 NOOP"),
                           jar=jar, timeout=10)
    took = time.monotonic() - start
    t.ok(status == 500 and took < 3 and b"x] BAD" in body
         and b"y1 OK" in body,
         "%s: a command the server answers untagged gets a BAD at once, "
         "and the batch goes on (%.2f s)" % (mpm, took), body)


def run(t, tmp, dc, mpm):
    with Httpd(tmp, mpm=mpm, body=lemonade_location(dc)) as httpd:
        jar = CookieJar()
        headers = login_list_select_in_one_batch(t, httpd.port, mpm, jar)
        cookie_is_set_with_its_attributes(t, headers, mpm)
        cookie_carries_the_session(t, httpd.port, mpm, jar)
        a_no_makes_a_500(t, httpd.port, mpm, jar)
        a_bad_makes_a_500(t, httpd.port, mpm, jar)
        an_unreadable_tag_is_answered(t, httpd.port, mpm, jar)
        errors = httpd.log_lines()
    t.ok(not errors, "%s: the error log has no error" % mpm,
         "\n".join(errors))


with Test("020 batch answers") as t:
    tmp = t.tmpdir()
    with Dovecot(tmp, users={"demo": "demo"}) as dc:
        dc.deliver("demo", "Subject: one\r\n\r\nThe first message.\r\n")
        for mpm in ("prefork", "event"):
            run(t, tmp, dc, mpm)
