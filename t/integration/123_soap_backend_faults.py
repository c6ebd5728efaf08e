#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE.
"""123: a failing IMAP server is a SOAP Server fault, never a hang.

An IMAP server nobody listens on, one that never greets, one that drops
the connection in the middle of a request and one slower than
LemonadeBackendTimeout: each answer is a Server fault (SOAP 1.2:
Receiver), HTTP 500, that validates against conf.d/lemonade.xsd; when
commands had run, its detail still holds their answers, and a NO for
every command that got none."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))

from lemtest import (  # noqa: E402
    CookieJar, Httpd, Test, free_port, lemonade_location)
from fakeimap import FakeImap  # noqa: E402
from lemsoap import Answer, soap_post, valid  # noqa: E402


class SoapFake(FakeImap):
    """FakeImap, with its tricks on commands a SOAP client can send:
    EXPUNGE drops the connection, CHECK takes three seconds."""

    def _answer(self, conn, line):
        words = line.split(b" ")
        name = words[1].upper() if len(words) > 1 else b""
        if name == b"EXPUNGE":
            return False
        if name == b"CHECK":
            time.sleep(3)
        return FakeImap._answer(self, conn, line)


def fault(t, port, body, what, version=11, jar=None):
    started = time.monotonic()
    st, _, data = soap_post(port, body, jar=jar or CookieJar(),
                            version=version)
    took = time.monotonic() - started
    ok, why = valid(data)
    t.ok(st == 500 and ok, "%s: 500, and the Fault validates against "
         "lemonade.xsd (%.1f s)" % (what, took),
         "status %d\n%s\n%s" % (st, why, data[:2000]))
    return Answer(data) if ok else None, took


def unreachable(t, tmp):
    url = "imap://127.0.0.1:%d" % free_port()
    with Httpd(tmp, body=lemonade_location(url), name="httpd-down") as h:
        doc, _ = fault(t, h.port, "<NOOP/>", "an IMAP server nobody "
                       "listens on")
        t.ok(doc and doc.faultcode() == "soap:Server"
             and "cannot be reached" in doc.faultstring(),
             "is a Server fault saying so", doc and doc.faultstring())
        doc, _ = fault(t, h.port, "<NOOP/>", "the same in SOAP 1.2",
                       version=12)
        t.eq(doc and doc.faultcode(), "soap:Receiver",
             "is a Receiver fault")

    with SoapFake(greeting=None) as fake:
        body = lemonade_location(fake.url(),
                                 extra="LemonadeBackendTimeout 1")
        with Httpd(tmp, body=body, name="httpd-silent") as h:
            doc, took = fault(t, h.port, "<NOOP/>", "an IMAP server that "
                              "never greets")
            t.ok(doc and doc.faultcode() == "soap:Server" and took < 5,
                 "is a Server fault after LemonadeBackendTimeout",
                 doc and doc.faultstring())


def mid_request(t, tmp):
    with SoapFake() as fake:
        body = lemonade_location(fake.url(),
                                 extra="LemonadeBackendTimeout 1")
        with Httpd(tmp, body=body, name="httpd-midway") as h:
            jar = CookieJar()
            doc, _ = fault(t, h.port, "<NOOP/><EXPUNGE/><NOOP/>",
                           "a connection dropped in the middle", jar=jar)
            t.ok(doc and doc.faultcode() == "soap:Server"
                 and doc.faultstring() == "the IMAP server closed the "
                 "connection", "is a Server fault saying so",
                 doc and doc.faultstring())
            t.eq(doc and [doc.resp("NOOP"), doc.resp("EXPUNGE"),
                          doc.resp("NOOP", 1)], ["OK", "NO", "NO"],
                 "its detail keeps what was done and has a NO for the rest")
            t.ok(not jar, "and the session cookie is expired")

            doc, took = fault(t, h.port, "<CHECK/>", "an IMAP server "
                              "slower than LemonadeBackendTimeout")
            t.ok(doc and doc.faultstring() == "the IMAP server did not "
                 "answer in time" and took < 3,
                 "is a Server fault saying so", doc and doc.faultstring())
        t.ok("exit signal" not in h.error_log(), "no child crashed")


with Test("123 SOAP backend faults") as t:
    tmp = t.tmpdir()
    unreachable(t, tmp)
    mid_request(t, tmp)
