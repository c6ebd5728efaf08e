#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE.
"""060: backend and keeper faults end in a clear answer, never a hang.

An IMAP server that cannot be reached is a 502, one that does not answer
in time a 504; one that drops the connection mid-batch still lets every
command of the batch be accounted for; a session whose connection went
away is replaced by a fresh one; the keeper of the sessions is restarted
when it dies; Apache's restarts keep the sessions."""

import os
import signal
import subprocess
import sys
import re
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))

from lemtest import (  # noqa: E402
    DOVEADM_BIN, HTTPD_BIN, CookieJar, Dovecot, Httpd, Test, free_port,
    imap_lines, lemonade_location, post, wait_for)
from fakeimap import FakeImap  # noqa: E402

PATH = "/lemonade/imap"


def batch(port, jar, *lines):
    start = time.time()
    st, hdrs, body = post(port, PATH, imap_lines(*lines), jar=jar,
                          timeout=30)
    return st, hdrs, body, time.time() - start


def unreachable_backends(t, tmp):
    url = "imap://127.0.0.1:%d" % free_port()
    with Httpd(tmp, body=lemonade_location(url), name="httpd-down") as h:
        st, hdrs, body, _ = batch(h.port, CookieJar(), "a1 NOOP")
        t.eq(st, 502, "a backend nobody listens on is a 502")
        t.ok(body.count(b"\r\n") == 1 and b"cannot be reached" in body,
             "with a one-line explanation", body)
        t.ok(hdrs.get("Cache-Control") == "no-cache, no-store, "
             "must-revalidate", "and the no-cache headers")
        t.ok(re.search(r"lemonade:error.*LEM0603.*cannot be reached",
                       h.error_log()),
             "the error log names the backend fault at ERR level")

    with FakeImap(greeting=None) as fake:
        body = lemonade_location(fake.url(),
                                 extra="LemonadeBackendTimeout 1")
        with Httpd(tmp, body=body, name="httpd-silent") as h:
            st, _, out, took = batch(h.port, CookieJar(), "a1 NOOP")
            t.ok(st == 504 and took < 5, "a backend that never greets is a "
                 "504 after LemonadeBackendTimeout (%.1f s)" % took, out)

    with FakeImap(greeting=b"* BYE too busy\r\n") as fake:
        with Httpd(tmp, body=lemonade_location(fake.url()),
                   name="httpd-bye") as h:
            st, _, out, _ = batch(h.port, CookieJar(), "a1 NOOP")
            t.ok(st == 502 and b"refused" in out,
                 "a backend that greets with BYE is a 502", out)


def faults_mid_batch(t, tmp):
    with FakeImap() as fake:
        body = lemonade_location(fake.url(),
                                 extra="LemonadeBackendTimeout 1")
        with Httpd(tmp, body=body, name="httpd-midbatch") as h:
            jar = CookieJar()
            st, hdrs, out, took = batch(h.port, jar, "a1 NOOP", "a2 DROP",
                                        "a3 NOOP")
            t.eq(st, 502, "a connection dropped mid-batch is a 502")
            t.ok(b"a1 OK" in out and b"* BYE [UNAVAILABLE]" in out
                 and b"a2 NO [UNAVAILABLE]" in out
                 and b"a3 NO [UNAVAILABLE]" in out,
                 "the answer keeps what was done and says NO for the rest",
                 out)
            t.ok(not jar, "and expires the session cookie",
                 hdrs.get_all("Set-Cookie"))

            st, _, out, took = batch(h.port, CookieJar(), "b1 WAIT 3",
                                     "b2 NOOP")
            t.ok(st == 504 and took < 3 and b"b1 NO [UNAVAILABLE]" in out
                 and b"b2 NO [UNAVAILABLE]" in out,
                 "a backend slower than LemonadeBackendTimeout is a 504 "
                 "(%.1f s)" % took, out)

            st, _, out, took = batch(h.port, CookieJar(), "c1 GARBAGE")
            t.ok(st == 502 and took < 3 and b"c1 NO" in out,
                 "a malformed response is a 502 (%.1f s)" % took, out)
            t.ok(wait_for(lambda: fake.open == 0, 10),
                 "no connection to the backend is left open")
        t.ok("exit signal" not in h.error_log(), "no child crashed")


def keeper_pid(httpd, nth=-1):
    found = re.findall(r"keeper: started, pid (\d+)", httpd.error_log())
    return int(found[nth]) if found else None


def session_survives(t, h, jar, what):
    st, _, out, _ = batch(h.port, jar, "s1 FETCH 1 (FLAGS)")
    t.ok(st == 200 and b"* 1 FETCH" in out,
         "the session is still logged in and selected after %s" % what,
         out)


def restarts_and_kicks(t, tmp, dc):
    with Httpd(tmp, body=lemonade_location(dc), name="httpd-restart") as h:
        jar = CookieJar()
        batch(h.port, jar, "a1 LOGIN demo demo", "a2 SELECT INBOX")
        for how in ("graceful", "restart"):
            subprocess.run([HTTPD_BIN, "-f", h.conf, "-k", how],
                           timeout=30, check=False)
            time.sleep(1.5)
            session_survives(t, h, jar, "apachectl " + how)
        t.eq(len(re.findall("keeper: started", h.error_log())), 1,
             "restarts leave the one keeper running")

        # the backend drops an idle session: the next request is fresh
        subprocess.run([DOVEADM_BIN, "-c", dc.conf, "kick", "demo"],
                       capture_output=True, timeout=30)
        t.ok(wait_for(lambda: dc.connections("demo") == 0, 10),
             "doveadm kick closed the IMAP connection")
        before = jar.cookies["lemonade_session"]
        st, _, out, took = batch(h.port, jar, "k1 SELECT INBOX")
        t.ok(st == 500 and b"k1 OK" not in out and took < 5,
             "after the backend dropped it, the client learns from the "
             "next answer that it is not authenticated", out)
        t.ok(jar.cookies.get("lemonade_session") not in (None, before),
             "and gets a new session cookie")

        # the keeper dies: the parent starts another
        batch(h.port, jar, "m1 LOGIN demo demo")
        first = keeper_pid(h)
        os.kill(first, signal.SIGKILL)
        t.ok(wait_for(lambda: keeper_pid(h) not in (None, first), 10),
             "a killed keeper is started again")
        t.ok("LEM0203" in h.error_log(), "and the error log says so")
        t.ok(wait_for(lambda: dc.connections("demo") == 0, 10),
             "its IMAP connections went with it")
        st, _, out, _ = batch(h.port, jar, "m2 SELECT INBOX")
        t.ok(st == 500 and b"m2 OK" not in out,
             "its sessions start afresh", out)
        st, _, out, _ = batch(h.port, jar, "m3 LOGIN demo demo",
                              "m4 SELECT INBOX")
        t.eq(st, 200, "and the new keeper serves new sessions")
        h.stop()
        t.ok("exit signal" not in h.error_log(), "no child crashed")


with Test("060 backend faults") as t:
    tmp = t.tmpdir()
    unreachable_backends(t, tmp)
    faults_mid_batch(t, tmp)
    with Dovecot(tmp, users={"demo": "demo"}) as dc:
        dc.deliver("demo", "Subject: one\r\n\r\nfirst message\r\n")
        restarts_and_kicks(t, tmp, dc)
