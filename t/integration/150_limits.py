#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE.
"""150: session limits and bindings, each with a clear status.

Sessions in total (LemonadeMaxSessions: 503) and per client address
(LemonadeMaxSessionsPerClient: 429), both with Retry-After and logged once
at INFO with the client's address; a session's absolute lifetime; the
optional binding of a session to its client's address; the refusal of
plain HTTP (LemonadeRequireTLS)."""

import http.client
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))

from lemtest import (  # noqa: E402
    CookieJar, Dovecot, Httpd, Test, imap_lines, lemonade_location, post,
    wait_for)

PATH = "/lemonade/imap"


def login(port, jar=None):
    return post(port, PATH, imap_lines("a1 LOGIN demo demo"),
                jar=jar if jar is not None else CookieJar())


def post_from(source, port, body, jar):
    """POST from another loopback address (127.0.0.2, say)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30,
                                      source_address=(source, 0))
    try:
        conn.request("POST", PATH, body=body, headers={
            "Content-Type": "application/vnd.lemonade",
            "Cookie": jar.header()})
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    jar.update(resp.msg.get_all("Set-Cookie") or [])
    return resp.status, data


def per_client_and_total(t, tmp, dc):
    body = "LemonadeMaxSessions 3\n" + lemonade_location(
        dc, extra="LemonadeMaxSessionsPerClient 2")
    with Httpd(tmp, body=body, name="httpd-counts") as h:
        jars = [CookieJar(), CookieJar()]
        for jar in jars:
            login(h.port, jar)
        st, hdrs, out = login(h.port)
        t.ok(st == 429 and hdrs.get("Retry-After"),
             "a third session from one address is a 429 with Retry-After",
             (st, out))
        log = h.error_log()
        t.ok(re.search(r"lemonade:info.*\[client 127\.0\.0\.1:\d+\] "
                       r"LEM0315", log),
             "logged at INFO with the client's address", log[-2000:])
        st, out = post_from("127.0.0.2", h.port,
                            imap_lines("b1 LOGIN demo demo"), CookieJar())
        t.eq(st, 200, "another address still gets one")
        st2, out2 = post_from("127.0.0.3", h.port,
                              imap_lines("c1 LOGIN demo demo"), CookieJar())
        t.ok(st2 == 503 and b"too many sessions" in out2,
             "past LemonadeMaxSessions every new session is a 503",
             (st2, out2))
        post(h.port, PATH, imap_lines("a9 LOGOUT"), jar=jars[0])
        st, _, out = login(h.port)
        t.eq(st, 200, "a LOGOUT frees a slot for the next one")


def lifetime(t, tmp, dc):
    body = lemonade_location(dc, extra="LemonadeSessionMaxLifetime 2")
    with Httpd(tmp, body=body, name="httpd-life") as h:
        jar = CookieJar()
        login(h.port, jar)
        first = jar.cookies["lemonade_session"]
        start = time.time()
        while time.time() - start < 1.5:
            st, _, _ = post(h.port, PATH, imap_lines("n1 NOOP"), jar=jar)
            time.sleep(0.3)
        t.ok(st == 200 and jar.cookies["lemonade_session"] == first,
             "a session in use lives through its lifetime")
        time.sleep(1.0)
        st, _, out = post(h.port, PATH, imap_lines("n2 SELECT INBOX"),
                          jar=jar)
        t.ok(st == 500 and jar.cookies["lemonade_session"] != first,
             "past LemonadeSessionMaxLifetime it is over, used or not",
             out)
        t.ok(wait_for(lambda: dc.connections("demo") <= 1, 5),
             "and its IMAP connection is closed")


def bound_to_address(t, tmp, dc):
    body = lemonade_location(dc, extra="LemonadeSessionBindAddress On")
    with Httpd(tmp, body=body, name="httpd-bind") as h:
        jar = CookieJar()
        login(h.port, jar)
        stolen = CookieJar()
        stolen.cookies.update(jar.cookies)
        st, out = post_from("127.0.0.2", h.port,
                            imap_lines("s1 SELECT INBOX"), stolen)
        t.ok(st == 500 and b"s1 OK" not in out,
             "with LemonadeSessionBindAddress a cookie used from another "
             "address does not reach the session", out)
        st, _, out = post(h.port, PATH, imap_lines("s2 SELECT INBOX"),
                          jar=jar)
        t.eq(st, 200, "its own address still does")


def plain_http_refused(t, tmp, dc):
    body = lemonade_location(dc, extra="LemonadeRequireTLS On")
    with Httpd(tmp, body=body, name="httpd-tls") as h:
        st, hdrs, out = login(h.port)
        t.ok(st == 403 and b"HTTPS" in out,
             "LemonadeRequireTLS refuses plain HTTP with 403", out)
        t.eq(dc.connections("demo"), 0, "and opens no IMAP connection")


with Test("150 limits") as t:
    tmp = t.tmpdir()
    with Dovecot(tmp, users={"demo": "demo"}) as dc:
        per_client_and_total(t, tmp, dc)
        wait_for(lambda: dc.connections() == 0, 10)
        lifetime(t, tmp, dc)
        wait_for(lambda: dc.connections() == 0, 10)
        bound_to_address(t, tmp, dc)
        wait_for(lambda: dc.connections() == 0, 10)
        plain_http_refused(t, tmp, dc)
