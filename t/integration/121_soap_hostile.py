#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE.
"""121: hostile and malformed SOAP requests are Faults, and cost little.

Malformed XML, an entity bomb ("billion laughs"), an external entity,
nesting 100000 deep, 200000 elements, text larger than
LemonadeMaxRequestBody, too many methods, the wrong envelope, a header
block that must be understood: each is answered at once with a Fault
that validates against conf.d/lemonade.xsd, no command reaches the IMAP
server, and the server goes on serving. Media types that are neither
SOAP nor the tunnel are still refused with 415."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))

from lemtest import (  # noqa: E402
    CookieJar, Dovecot, Httpd, Test, lemonade_location, post)
from lemsoap import (  # noqa: E402
    ENV11, Answer, envelope, soap_post, valid)

PATH = "/lemonade/imap"
LIMITS = "LemonadeMaxRequestBody 2M\nLemonadeMaxCommands 10\n"

BOMB = (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n'
        b' <!ENTITY lol "lol">\n'
        + b"".join(b' <!ENTITY lol%d "%s">\n'
                   % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
                   for i in range(1, 10))
        + b"]>\n" + envelope(b"<LOGIN><P>&lol9;</P><P>x</P></LOGIN>")
        .split(b"\n", 1)[1])

EXTERNAL = (b'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY e SYSTEM '
            b'"file:///etc/passwd">]>\n'
            + envelope(b"<LOGIN><P>&e;</P><P>x</P></LOGIN>")
            .split(b"\n", 1)[1])


def deep(n):
    return envelope(b"<SEARCH>" + b"<L>" * n + b"</L>" * n + b"</SEARCH>")


def wide(n):
    return envelope(b"<SEARCH>" + b"<ALL/>" * n + b"</SEARCH>")


def huge_text(n):
    return envelope(b"<LOGIN><P>" + b"a" * n + b"</P><P>x</P></LOGIN>")


CASES = [
    # (what, document, SOAP version, HTTP status, faultcode, faultstring)
    ("malformed XML", b"<soap:Envelope", 11, 500, "soap:Client",
     "malformed XML"),
    ("an entity bomb (billion laughs)", BOMB, 11, 500, "soap:Client",
     "malformed XML: entity declarations are not accepted"),
    ("an external entity naming /etc/passwd", EXTERNAL, 11, 500,
     "soap:Client", "malformed XML: entity declarations"),
    ("elements nested 100000 deep", deep(100000), 11, 500, "soap:Client",
     ("the document has more markup than allowed",
      "malformed XML: The maximum element nesting limit")),
    ("elements nested 40 deep", deep(40), 11, 500, "soap:Client",
     "elements nest deeper than allowed"),
    ("200000 elements", wide(200000), 11, 500, "soap:Client",
     "the document has more markup than allowed"),
    ("text larger than LemonadeMaxRequestBody", huge_text(3 << 20), 11, 500,
     "soap:Client", "the request body is larger than"),
    ("more methods than LemonadeMaxCommands",
     envelope(b"<NOOP/>" * 11), 11, 500, "soap:Client",
     "command 11: more than 10 commands"),
    ("a SOAP 1.2 envelope as text/xml",
     envelope(b"<NOOP/>", 12), 11, 500, "soap:VersionMismatch", ""),
    ("a SOAP 1.1 envelope as application/soap+xml",
     envelope(b"<NOOP/>", 11), 12, 500, "soap:VersionMismatch", ""),
    ("a header block that must be understood",
     ('<soap:Envelope xmlns:soap="%s"><soap:Header><t:Tx xmlns:t="urn:t" '
      'soap:mustUnderstand="1">x</t:Tx></soap:Header><soap:Body><NOOP/>'
      '</soap:Body></soap:Envelope>' % ENV11).encode(), 11, 500,
     "soap:MustUnderstand", "header block Tx is not understood"),
    ("a SOAP 1.2 client fault", b"<x/>", 12, 400, "soap:Sender",
     "the document is not a SOAP Envelope"),
    ("an empty body", b"", 11, 500, "soap:Client", "malformed XML"),
]


def post_doc(port, doc, version, jar=None):
    return soap_post(port, doc, jar=jar, version=version, raw=True,
                     timeout=60)


def hostile_cases(t, port, dc):
    for what, doc, version, status, code, why in CASES:
        started = time.monotonic()
        st, _, body = post_doc(port, doc, version)
        took = time.monotonic() - started
        ok, err = valid(body)
        t.ok(st == status and ok, "%s: %d, and the Fault validates against "
             "lemonade.xsd" % (what, status),
             "status %d\n%s\n%s" % (st, err, body[:2000]))
        doc_ = Answer(body) if ok else None
        t.ok(doc_ is not None and doc_.faultcode() == code
             and doc_.faultstring().startswith(why if isinstance(why, tuple)
                                               else (why,)),
             "%s: faultcode %s" % (what, code),
             doc_ and "%s %s" % (doc_.faultcode(), doc_.faultstring()))
        t.ok(took < 10, "%s: answered in %.1f s" % (what, took))
    t.eq(dc.connections("demo"), 0, "no command reached the IMAP server: "
         "no session was opened")


def other_media_types(t, port):
    st, _, _ = post(port, PATH, envelope(b"<NOOP/>"),
                    content_type="text/xml")
    t.eq(st, 415, "text/xml without a SOAPAction header is not SOAP: 415")
    st, _, _ = post(port, PATH, envelope(b"<NOOP/>"),
                    content_type="application/xml",
                    headers={"SOAPAction": "x"})
    t.eq(st, 415, "application/xml is not SOAP either: 415")


def still_serving(t, port):
    jar = CookieJar()
    st, _, body = soap_post(port, "<LOGIN><P>demo</P><P>demo</P></LOGIN>",
                            jar=jar)
    t.ok(st == 200 and Answer(body).resp("LOGIN") == "OK",
         "after all of it, a LOGIN is answered OK", body[:500])
    big = "b" * (1 << 20)
    st, _, body = soap_post(port, "<LOGIN><P>demo</P><P>%s</P></LOGIN>"
                            % big, jar=CookieJar(), timeout=60)
    t.ok(st == 500 and Answer(body).resp("LOGIN") == "NO",
         "a 1 MB password within the limits goes as a literal and gets NO",
         body[:500])


def run(t, tmp, dc):
    conf = lemonade_location(dc, extra=LIMITS)
    with Httpd(tmp, body=conf) as httpd:
        hostile_cases(t, httpd.port, dc)
        other_media_types(t, httpd.port)
        still_serving(t, httpd.port)
        errors = httpd.log_lines()
    t.ok(not errors, "the error log has no error", "\n".join(errors))


with Test("121 hostile SOAP") as t:
    tmp = t.tmpdir()
    with Dovecot(tmp, users={"demo": "demo"}) as dc:
        run(t, tmp, dc)
