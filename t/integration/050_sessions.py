#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE.
"""050: sessions (draft 2.1.1: "a session-id is passed in the cookie").

A session outlives the process that opened it (prefork with
MaxConnectionsPerChild 1 serves every request in a new child), holds one
backend connection, ends with LOGOUT or an idle timeout, is never chosen
by the client, and is used by one request at a time."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))

from lemtest import (  # noqa: E402
    CookieJar, Dovecot, Httpd, Test, imap_lines, lemonade_location, post,
    wait_for)
from fakeimap import FakeImap  # noqa: E402

PATH = "/lemonade/imap"


def batch(port, jar, *lines, timeout=30):
    return post(port, PATH, imap_lines(*lines), jar=jar, timeout=timeout)


def sessions_span_processes(t, tmp, dc, mpm):
    with Httpd(tmp, mpm=mpm, body=lemonade_location(dc)) as httpd:
        jar = CookieJar()
        st, _, body = batch(httpd.port, jar, "a1 LOGIN demo demo")
        t.eq(st, 200, "%s: LOGIN opens a session" % mpm)
        st, _, body = batch(httpd.port, jar, "a2 SELECT INBOX")
        t.ok(st == 200 and b"a2 OK" in body,
             "%s: the next request is still logged in" % mpm, body)
        st, _, body = batch(httpd.port, jar, "a3 FETCH 1 (FLAGS)")
        t.ok(st == 200 and b"* 1 FETCH" in body,
             "%s: and the mailbox is still selected" % mpm, body)
        t.eq(dc.connections("demo"), 1,
             "%s: the three requests used one IMAP connection" % mpm)

        st, hdrs, body = batch(httpd.port, jar, "a4 LOGOUT")
        cookies = hdrs.get_all("Set-Cookie") or []
        t.ok(st == 200 and b"* BYE" in body and b"a4 OK" in body,
             "%s: LOGOUT is answered with BYE and OK" % mpm, body)
        t.ok(any("Max-Age=0" in c for c in cookies),
             "%s: LOGOUT expires the cookie" % mpm, cookies)
        t.ok(wait_for(lambda: dc.connections("demo") == 0, 10),
             "%s: LOGOUT closes the IMAP connection" % mpm)
        httpd.stop()
        t.ok("exit signal" not in httpd.error_log(),
             "%s: no child crashed" % mpm, httpd.error_log())


def client_never_chooses_its_id(t, tmp, dc):
    with Httpd(tmp, body=lemonade_location(dc)) as httpd:
        jar = CookieJar()
        st, _, out = batch(httpd.port, jar, "a1 LOGIN demo demo")
        t.ok(st == 200 and b"a1 OK" in out, "a session logs in", out)
        real = jar.cookies["lemonade_session"]
        forged = CookieJar()
        # the right slot, the wrong 128 bits
        forged.cookies["lemonade_session"] = \
            "0" * 32 + "-" + real.split("-")[1]
        st, hdrs, body = batch(httpd.port, forged, "f1 SELECT INBOX")
        t.ok(st == 500 and b"f1 OK" not in body,
             "a forged id does not reach the session it names", body)
        t.ok(forged.cookies.get("lemonade_session") not in (None, real),
             "it gets a fresh session with a new id", hdrs)
        st, _, body = batch(httpd.port, jar, "a2 SELECT INBOX")
        t.ok(st == 200, "the real session is untouched", body)

        old = CookieJar()
        old.cookies["lemonade_session"] = real
        batch(httpd.port, jar, "a3 LOGOUT")
        st, _, body = batch(httpd.port, old, "a4 SELECT INBOX")
        t.ok(st == 500 and "lemonade_session" in old.cookies
             and old.cookies["lemonade_session"] != real,
             "an id that was logged out is not served again", body)


def idle_sessions_close(t, tmp, dc):
    body = lemonade_location(dc, extra="LemonadeSessionIdleTimeout 2")
    with Httpd(tmp, body=body, name="httpd-idle") as httpd:
        jar = CookieJar()
        batch(httpd.port, jar, "a1 LOGIN demo demo")
        first = jar.cookies["lemonade_session"]
        start = time.time()
        t.eq(dc.connections("demo"), 1, "a logged-in session holds one "
             "IMAP connection")
        closed = wait_for(lambda: dc.connections("demo") == 0, 10)
        took = time.time() - start
        t.ok(closed and took >= 1.5,
             "an idle session's IMAP connection is closed after its "
             "timeout (%.1f s)" % took)
        st, _, out = batch(httpd.port, jar, "a2 SELECT INBOX")
        t.ok(st == 500 and jar.cookies.get("lemonade_session") != first,
             "the next request starts afresh, not authenticated", out)


def one_request_at_a_time(t, tmp, dc):
    with Httpd(tmp, mpm="event", body=lemonade_location(dc),
               name="httpd-conc") as httpd:
        jar = CookieJar()
        batch(httpd.port, jar, "a1 LOGIN demo demo", "a2 SELECT INBOX")
        results = {}

        def run(i):
            lines = ["r%d-%d NOOP" % (i, j) for j in range(20)]
            results[i] = batch(httpd.port, jar, *lines)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        good = 0
        for i, (st, _, body) in sorted(results.items()):
            tags = [ln.split(b" ")[0] for ln in body.split(b"\r\n")
                    if ln and not ln.startswith(b"*")]
            want = [("r%d-%d" % (i, j)).encode() for j in range(20)]
            good += (st == 200 and tags == want)
        t.eq(good, 8, "8 concurrent batches on one session each get "
             "exactly their own 20 answers, in order")
        t.eq(dc.connections("demo"), 1, "and they shared one IMAP "
             "connection")


def busy_session_is_bounded(t, tmp):
    with FakeImap() as fake:
        body = lemonade_location(fake.url(), extra="LemonadeSessionWait 1")
        with Httpd(tmp, body=body, name="httpd-busy") as httpd:
            jar = CookieJar()
            batch(httpd.port, jar, "a1 NOOP")
            slow = {}
            th = threading.Thread(target=lambda: slow.update(
                r=batch(httpd.port, jar, "a2 WAIT 3")))
            th.start()
            time.sleep(0.5)
            start = time.time()
            st, hdrs, out = batch(httpd.port, jar, "a3 NOOP")
            took = time.time() - start
            t.ok(st == 503 and hdrs.get("Retry-After"),
                 "a second request waits at most LemonadeSessionWait, then "
                 "gets 503 with Retry-After", (st, out))
            t.ok(took < 2.5, "within the wait (%.1f s)" % took)
            th.join(30)
            t.ok(slow.get("r", (0,))[0] == 200,
                 "the request holding the session is answered")

        body = lemonade_location(fake.url(), extra="LemonadeSessionWait 10")
        with Httpd(tmp, body=body, name="httpd-turn") as httpd:
            jar = CookieJar()
            batch(httpd.port, jar, "b1 NOOP")
            th = threading.Thread(target=batch,
                                  args=(httpd.port, jar, "b2 WAIT 2"))
            th.start()
            time.sleep(0.5)
            st, _, out = batch(httpd.port, jar, "b3 NOOP")
            t.ok(st == 200 and b"b3 OK" in out and b"b2" not in out,
                 "within the wait it is served in its turn", out)
            th.join(30)


def cookie_name_is_configurable(t, tmp, dc):
    body = lemonade_location(dc, extra="LemonadeSessionCookie mail_sid")
    with Httpd(tmp, body=body, name="httpd-cookie") as httpd:
        jar = CookieJar()
        st, hdrs, _ = batch(httpd.port, jar, "a1 LOGIN demo demo")
        t.ok("mail_sid" in jar.cookies and "lemonade_session"
             not in jar.cookies, "LemonadeSessionCookie names the cookie",
             hdrs.get_all("Set-Cookie"))
        st, _, out = batch(httpd.port, jar, "a2 SELECT INBOX")
        t.eq(st, 200, "and that cookie carries the session")
        batch(httpd.port, jar, "a3 LOGOUT")


with Test("050 sessions") as t:
    tmp = t.tmpdir()
    with Dovecot(tmp, users={"demo": "demo"}) as dc:
        dc.deliver("demo", "Subject: one\r\n\r\nfirst message\r\n")
        for mpm in ("prefork", "event"):
            sessions_span_processes(t, tmp, dc, mpm)
        client_never_chooses_its_id(t, tmp, dc)
        idle_sessions_close(t, tmp, dc)
        one_request_at_a_time(t, tmp, dc)
        cookie_name_is_configurable(t, tmp, dc)
    busy_session_is_bounded(t, tmp)
