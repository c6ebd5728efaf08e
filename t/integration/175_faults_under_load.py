#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE.
"""175: faults under load end cleanly, and no APPEND answered OK is lost.

Several clients APPEND without pause while Apache is restarted gracefully
and hard; every request ends in an HTTP answer or a closed connection
within a bounded time, every message answered OK is in the mailbox
afterwards, no child crashes and no IMAP connection is left over. A
client that hangs up in the middle of its request, or sends it slowly,
and an IMAP server process killed in the middle of a long poll, end
cleanly too."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))

from lemtest import (  # noqa: E402
    HTTPD_BIN, CookieJar, Dovecot, Httpd, Test, imap_lines,
    lemonade_location, post, proc_descendants, proc_name, read_text,
    wait_for)

PATH = "/lemonade/imap"
CLIENTS = 6


def appender(port, n, stop, results):
    """Log in, then APPEND messages marked n-k until told to stop."""
    jar, k = CookieJar(), 0
    ok, errors, slowest = [], 0, 0.0
    while not stop.is_set():
        marker = "m%d-%d" % (n, k)
        msg = ("Subject: %s\r\n\r\nunder load\r\n" % marker).encode()
        body = b""
        if not jar:
            body += imap_lines("l%d LOGIN demo demo" % k)
        body += b"a%d APPEND INBOX {%d+}\r\n" % (k, len(msg)) + msg + b"\r\n"
        start = time.time()
        try:
            st, _, out = post(port, PATH, body, jar=jar, timeout=30)
            if b"a%d OK" % k in out:
                ok.append(marker)
            elif st != 200:
                errors += 1
        except OSError:
            errors += 1         # the session lives on: keep its cookie
        slowest = max(slowest, time.time() - start)
        k += 1
    try:
        post(port, PATH, imap_lines("z LOGOUT"), jar=jar, timeout=10)
    except OSError:
        pass
    results[n] = (ok, errors, slowest, k)


def mailbox_subjects(dc):
    subjects = set()
    for sub in ("new", "cur"):
        d = os.path.join(dc.maildir("demo"), sub)
        for name in os.listdir(d):
            for line in read_text(os.path.join(d, name)).splitlines():
                if line.startswith("Subject: "):
                    subjects.add(line[9:].strip())
    return subjects


def restarts_under_load(t, tmp, dc):
    with Httpd(tmp, mpm="event", body=lemonade_location(dc),
               name="httpd-load") as h:
        stop, results = threading.Event(), {}
        threads = [threading.Thread(target=appender,
                                    args=(h.port, n, stop, results))
                   for n in range(CLIENTS)]
        for th in threads:
            th.start()
        time.sleep(2)
        for how in ("graceful", "restart", "graceful"):
            subprocess.run([HTTPD_BIN, "-f", h.conf, "-k", how],
                           timeout=30, check=False)
            time.sleep(2)
        stop.set()
        for th in threads:
            th.join(60)
        answered = [m for ok, _, _, _ in results.values() for m in ok]
        sent = sum(r[3] for r in results.values())
        slowest = max(r[2] for r in results.values())
        errors = sum(r[1] for r in results.values())
        t.ok(len(results) == CLIENTS and len(answered) > 50,
             "%d clients sent %d APPENDs through two graceful restarts and "
             "a hard one; %d answered OK, %d cut off" % (
                 CLIENTS, sent, len(answered), errors))
        t.ok(slowest < 30, "every request ended within a bounded time "
             "(slowest %.1f s)" % slowest)
        present = mailbox_subjects(dc)
        lost = [m for m in answered if m not in present]
        t.eq(lost, [], "no APPEND answered OK is missing from the mailbox")
        t.ok(wait_for(lambda: dc.connections("demo") == 0, 10),
             "every client logged out: no IMAP connection is left",
             dc.connections("demo"))
        h.stop()
        log = h.error_log()
        t.ok("exit signal" not in log, "no child crashed", log[-2000:])


def rude_clients(t, tmp, dc):
    with Httpd(tmp, mpm="event", body=lemonade_location(dc),
               name="httpd-rude") as h:
        jar = CookieJar()
        post(h.port, PATH, imap_lines("a1 LOGIN demo demo"), jar=jar)
        for _ in range(5):
            with socket.create_connection(("127.0.0.1", h.port), 5) as s:
                s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: "
                           "application/vnd.lemonade\r\nContent-Length: "
                           "100\r\nCookie: %s\r\n\r\nb1 NOOP\r\nb2 NO"
                           % (PATH, jar.header())).encode())
        st, _, out = post(h.port, PATH, imap_lines("c1 NOOP"), jar=jar)
        t.ok(st == 200 and b"c1 OK" in out,
             "clients that hang up mid-request leave the session usable",
             out)

        body = imap_lines("d1 NOOP", "d2 NOOP")
        with socket.create_connection(("127.0.0.1", h.port), 30) as s:
            s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: "
                       "application/vnd.lemonade\r\nContent-Length: %d\r\n"
                       "Cookie: %s\r\nConnection: close\r\n\r\n"
                       % (PATH, len(body), jar.header())).encode())
            for i in range(len(body)):
                s.sendall(body[i:i + 1])
                time.sleep(0.05)
            answer = b""
            while True:
                got = s.recv(65536)
                if not got:
                    break
                answer += got
        t.ok(b"200 OK" in answer and b"d2 OK" in answer,
             "a client that sends its batch a byte at a time is served",
             answer[-200:])
        h.stop()
        t.ok("exit signal" not in h.error_log(), "no child crashed")


def imap_process_killed(t, tmp, dc):
    with Httpd(tmp, mpm="event", body=lemonade_location(
            dc, extra="LemonadeHeartbeat 20"), name="httpd-kill") as h:
        jar = CookieJar()
        post(h.port, PATH, imap_lines("a1 LOGIN demo demo",
                                      "a2 SELECT INBOX"), jar=jar)
        result = {}

        def poll():
            start = time.time()
            result["r"] = post(h.port, PATH, imap_lines("p1 IDLE"),
                               jar=jar, timeout=30)
            result["took"] = time.time() - start

        th = threading.Thread(target=poll)
        th.start()
        time.sleep(1.5)
        victims = [p for p, _ in proc_descendants(dc.pid)
                   if proc_name(p) == "imap"]
        for p in victims:
            os.kill(p, signal.SIGKILL)
        th.join(30)
        st, _, out = result.get("r", (0, None, b""))
        t.ok(victims and st == 502 and b"p1 NO [UNAVAILABLE]" in out
             and result["took"] < 10,
             "an IMAP server process killed during a long poll ends the "
             "request with a 502 and a NO for the command (%.1f s)"
             % result.get("took", -1), out)
        t.ok(not jar, "and the session with it")


with Test("175 faults under load") as t:
    tmp = t.tmpdir()
    with Dovecot(tmp, users={"demo": "demo"}) as dc:
        restarts_under_load(t, tmp, dc)
        rude_clients(t, tmp, dc)
        imap_process_killed(t, tmp, dc)
