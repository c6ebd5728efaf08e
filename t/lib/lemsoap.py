# Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE.
"""SOAP helpers for the 12x tests of the SOAP binding (draft 2.2).

    status, headers, body = soap_post(port, "<LOGIN><P>demo</P>...")
    doc = Answer(body)               # parsed, with the binding's names
    doc.resp("LOGIN")                # "OK", "NO", "BAD"
    ok, why = valid(body)            # against conf.d/lemonade.xsd

Standard library only; the schema check runs xmllint (libxml2-utils).
"""

import os
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET

from lemtest import ROOT, post

NS = "urn:mod-lemonade:soap"
ENV11 = "http://schemas.xmlsoap.org/soap/envelope/"
ENV12 = "http://www.w3.org/2003/05/soap-envelope"
SCHEMA = os.path.join(ROOT, "conf.d", "lemonade.xsd")
XMLLINT = shutil.which("xmllint") or "/usr/bin/xmllint"

CT11 = "text/xml; charset=utf-8"
CT12 = "application/soap+xml; charset=utf-8"


def envelope(body, version=11):
    """A SOAP document whose Body holds `body` (str or bytes)."""
    if isinstance(body, str):
        body = body.encode()
    ns = ENV12 if version == 12 else ENV11
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n'
            b'<soap:Envelope xmlns:soap="' + ns.encode() + b'">'
            b"<soap:Body>" + body + b"</soap:Body></soap:Envelope>")


def soap_post(port, body, path="/lemonade/imap", jar=None, version=11,
              raw=False, headers=None, timeout=30):
    """POST a SOAP request; `body` is the Body's content (or, with raw,
    the whole document)."""
    data = body if raw else envelope(body, version)
    hdrs = {}
    if version == 11:
        hdrs["SOAPAction"] = '"urn:mod-lemonade:soap"'
    hdrs.update(headers or {})
    return post(port, path, data, headers=hdrs, jar=jar,
                content_type=CT12 if version == 12 else CT11,
                timeout=timeout)


def valid(body):
    """(True, "") when `body` validates against conf.d/lemonade.xsd."""
    if not os.path.exists(XMLLINT):
        return False, "xmllint is missing: install libxml2-utils"
    with tempfile.NamedTemporaryFile(suffix=".xml") as f:
        f.write(body)
        f.flush()
        res = subprocess.run([XMLLINT, "--noout", "--schema", SCHEMA, f.name],
                             capture_output=True, text=True, timeout=60)
    return res.returncode == 0, res.stderr[-2000:]


def q(name):
    return "{%s}%s" % (NS, name)


class Answer:
    """A parsed answer: its answer elements, or its Fault."""

    def __init__(self, body):
        self.root = ET.fromstring(body)
        env = self.root.tag.split("}")[0][1:]
        self.body = self.root.find("{%s}Body" % env)
        self.fault = self.body.find("{%s}Fault" % env)
        self.v12 = env == ENV12
        holder = self.body
        if self.fault is not None:
            detail = (self.fault.find("{%s}Detail" % ENV12) if self.v12
                      else self.fault.find("detail"))
            holder = detail if detail is not None else ET.Element("none")
        self.answers = list(holder)

    def faultcode(self):
        if self.fault is None:
            return None
        if self.v12:
            code = self.fault.find("{%s}Code" % ENV12)
            value = code.find("{%s}Value" % ENV12).text
            sub = code.find("{%s}Subcode/{%s}Value" % (ENV12, ENV12))
            return value + ("/" + sub.text if sub is not None else "")
        return self.fault.find("faultcode").text

    def faultstring(self):
        if self.fault is None:
            return None
        if self.v12:
            return self.fault.find("{%s}Reason/{%s}Text"
                                   % (ENV12, ENV12)).text
        return self.fault.find("faultstring").text

    def answer(self, method, n=0):
        found = [a for a in self.answers if a.tag == q(method + "Response")]
        return found[n] if len(found) > n else None

    def resp(self, method, n=0):
        """The status word of a method's tagged completion, or None."""
        a = self.answer(method, n)
        r = a.find(q("RESP")) if a is not None else None
        return r[0].tag.split("}")[1] if r is not None and len(r) else None

    def untagged(self, method, name, n=0):
        """The untagged data elements called `name` of a method."""
        a = self.answer(method, n)
        if a is None:
            return []
        return [u[0] for u in a.findall(q("U")) if u[0].tag == q(name)]

    def code(self, method, name, n=0):
        """The element `name` in the code of a method's completion."""
        a = self.answer(method, n)
        if a is None:
            return None
        return a.find("%s/*/%s/%s" % (q("RESP"), q("CODE"), q(name)))
