#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE.
"""110: behind a buffering reverse proxy, lemonade-connect falls back to
in-response mode, and the clients do not notice.

The proxy (mod_proxy_http, as in 080) holds an in-band answer back until
the request ends, so the greeting never comes (draft 2.1.2: proxies
"might not forward the requests chunk by chunk"). lemonade-connect sees
that within --inband-wait, says so once, and carries the same sessions
as batches (draft 2.1.1): mbsync's sync still matches a direct one, IDLE
still gets its EXISTS through long polls, a synchronizing literal and
AUTHENTICATE without an initial response still work, and a gateway that
goes away still gives the client a BYE and a close."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))

from lemtest import (  # noqa: E402
    Httpd, Test, lemonade_location, wait_for)
from lemconnect import (  # noqa: E402
    Connect, IdleDovecot, change_locally, idle_news, imap_logged_in,
    maildir_state, mbsync, populate, proxy_conf, read_until_close,
    state_diff)
from imaplib import IMAP4  # noqa: E402

PATH = "/lemonade/imap"
FALLBACK = "using in-response mode from now on"


def sync_matches(t, tmp, dc, lc):
    start = time.time()
    rc, out, through = mbsync(tmp, "through", lc.port)
    t.ok(rc == 0, "mbsync syncs through lemonade-connect behind the proxy "
         "(%.1f s)" % (time.time() - start), out + lc.log())
    t.eq(lc.log().count(FALLBACK), 1, "the fallback engaged, and the log "
         "says so once")
    rc, out, direct = mbsync(tmp, "direct", dc.port)
    a, b = maildir_state(direct), maildir_state(through)
    t.ok(rc == 0 and len(a) == 4, "a direct sync has the four folders",
         out)
    t.ok(a == b, "the Maildir synced in in-response mode is identical: "
         "folders, flags, contents", state_diff(a, b))

    change_locally(through)
    rc, out, _ = mbsync(tmp, "through", lc.port)
    t.ok(rc == 0, "local changes go up in in-response mode", out)
    rc, out, _ = mbsync(tmp, "direct", dc.port)
    a, b = maildir_state(direct), maildir_state(through)
    t.ok(rc == 0 and a == b, "and a direct sync finds them on the server",
         state_diff(a, b))


def idle(t, dc, lc):
    cont, exists, tagged, took, stray = idle_news(lc.port, dc)
    t.ok(cont.startswith(b"+"), "IDLE gets a continuation at once", cont)
    # within a long poll when the server pushes it, at the next one (one
    # --heartbeat, 5 s, later) at worst
    t.ok(exists and took < 7, "an APPEND elsewhere comes as EXISTS within "
         "a long poll (%s s)" % (took and "%.2f" % took), exists)
    t.ok(tagged.split(b" ")[1:2] == [b"OK"] and not stray,
         "DONE gets the tagged OK, and only one", (tagged, stray))


def continuations(t, lc):
    imap = IMAP4("127.0.0.1", lc.port, timeout=30)
    t.ok(imap.welcome.startswith(b"* OK"), "the client is greeted",
         imap.welcome)
    plain = lambda challenge: b"\0demo\0demo"  # noqa: E731
    typ, data = imap.authenticate("PLAIN", plain)
    t.eq(typ, "OK", "AUTHENTICATE PLAIN without an initial response logs "
         "in (our \"+\", the answer sent as one)")
    imap.select("INBOX")
    typ, data = imap.append("INBOX", "(\\Flagged)", None,
                            b"Subject: literal\r\n\r\n" + b"y" * 5000
                            + b"\r\n")
    t.eq(typ, "OK", "an APPEND with a synchronizing literal completes")
    typ, data = imap.uid("SEARCH", None, "SUBJECT", "literal")
    t.ok(typ == "OK" and data[0].strip(), "and the message is there", data)
    imap.logout()


def dropped(t, tmp, dc, module, lc):
    sock, got = imap_logged_in(lc.port)
    t.ok(b"d1 OK" in got, "a client logs in behind the proxy", got)
    module.stop()
    start = time.time()
    sock.sendall(b"d2 NOOP\r\n")
    data, closed = read_until_close(sock, 20)
    sock.close()
    t.ok(b"* BYE" in data and closed, "with the gateway gone, the next "
         "command gets a BYE and a close (%.1f s)" % (time.time() - start),
         data)


def expired(t, tmp, dc):
    body = lemonade_location(dc, extra="LemonadeSessionIdleTimeout 2")
    with Httpd(tmp, name="httpd-expiry", body=body) as h, \
            Connect(tmp, h.url(PATH), ["--mode", "in-response"],
                    name="connect-expiry") as lc:
        sock, got = imap_logged_in(lc.port)
        wait_for(lambda: dc.connections("demo") == 0, 10)
        sock.sendall(b"d2 SELECT INBOX\r\n")
        data, closed = read_until_close(sock, 20)
        sock.close()
        t.ok(b"d1 OK" in got and b"* BYE" in data and b"expired" in data
             and closed, "a session the gateway let expire ends with a BYE "
             "that says so, not with a stranger's session", data)


with Test("110 lemonade-connect falls back") as t:
    tmp = t.tmpdir()
    with IdleDovecot(tmp, users={"demo": "demo"}) as dc:
        populate(dc)
        with Httpd(tmp, mpm="event", name="httpd-module",
                   body=lemonade_location(dc)) as module, \
                Httpd(tmp, mpm="event", name="httpd-proxy",
                      body=proxy_conf(module.port)) as proxy, \
                Connect(tmp, proxy.url(PATH), ["--inband-wait", "2"]) as lc:
            sync_matches(t, tmp, dc, lc)
            idle(t, dc, lc)
            continuations(t, lc)
            t.ok("IMAP in-response" in lc.log() and "IMAP in-band"
                 not in lc.log(), "every session ran in in-response mode",
                 lc.log())
            dropped(t, tmp, dc, module, lc)
            t.ok(lc.alive(), "lemonade-connect goes on serving", lc.log())
        expired(t, tmp, dc)
