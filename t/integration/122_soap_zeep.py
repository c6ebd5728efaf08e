#!/usr/bin/env python3
# Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE.
"""122: a real SOAP toolkit reads and writes mail through the WSDL.

Debian's python3-zeep (installed here with apt-get when it is missing)
is pointed at the shipped conf.d/lemonade.wsdl and nothing else: over the
SOAP 1.1 binding and then the SOAP 1.2 one, it logs in, selects INBOX,
appends a message, fetches it back by UID, and gets a NO as a
zeep Fault. zeep runs under Debian's own /usr/bin/python3 (the python3
first in PATH may be a build without Debian's packages); every answer it
received is checked against conf.d/lemonade.xsd."""

import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))

from lemtest import ROOT, Dovecot, Httpd, Test, lemonade_location  # noqa
from lemsoap import valid  # noqa: E402

DEBIAN_PYTHON = "/usr/bin/python3"
CONTRACT = ["lemonade.wsdl", "lemonade.xsd", "lemonade-envelope-1.1.xsd",
            "lemonade-envelope-1.2.xsd"]

# The client, run by Debian's python3 with zeep: argv is the WSDL, the
# endpoint, the binding's local name and a directory for the answers.
CLIENT = r'''
import json, os, sys
import zeep
from lxml import etree
from zeep import xsd
from zeep.exceptions import Fault

wsdl, url, binding, dump = sys.argv[1:5]
NS = "urn:mod-lemonade:soap"
seen = []


class Keep(zeep.Plugin):
    """Every answer as it came, for the schema check."""
    def ingress(self, envelope, http_headers, operation):
        seen.append(etree.tostring(envelope, xml_declaration=True,
                                   encoding="UTF-8"))
        return envelope, http_headers


client = zeep.Client(wsdl, plugins=[Keep()])
svc = client.create_service("{%s}%s" % (NS, binding), url)
P, T, SEQ = (client.get_element("{%s}%s" % (NS, n))
             for n in ("P", "T", "SEQUENCE"))


def el(name, *kids):
    e = etree.Element("{%s}%s" % (NS, name))
    for k in kids:
        e.append(k)
    return e


def items(answer):
    """zeep's answer (a choice of U, C, RESP) as (name, element) pairs."""
    out = []
    for entry in answer or []:
        for name in ("U", "C", "RESP"):
            value = entry.get(name) if isinstance(entry, dict) \
                else getattr(entry, name, None)
            if value is not None:
                out.append((name, value))
    return out


def status(answer):
    for name, value in items(answer):
        if name == "RESP":
            for word in ("OK", "NO", "BAD"):
                if getattr(value, word, None) is not None:
                    return word
    return None


def found(value, local):
    """Elements called `local` anywhere in what zeep made of an answer:
    lxml elements for atoms it has no declaration for, objects for those
    it has (a status, or <FETCH>, which the schema also declares as the
    FETCH method and so reads as arguments)."""
    if etree.iselement(value):
        return [e for e in value.iter() if etree.QName(e).localname == local]
    if isinstance(value, (list, tuple)):
        return [e for v in value for e in found(v, local)]
    if hasattr(value, "__values__") or isinstance(value, dict):
        values = value.__values__ if hasattr(value, "__values__") else value
        return [e for v in values.values() for e in found(v, local)]
    return []


result = {}
r = svc.LOGIN(_value_1=[xsd.AnyObject(P, "demo"), xsd.AnyObject(P, "demo")])
result["login"] = status(r)
r = svc.SELECT(_value_1=[xsd.AnyObject(P, "INBOX")])
result["select"] = status(r)
result["exists"] = [e.text for e in found(r, "EXISTS")]
r = svc.APPEND(_value_1=[xsd.AnyObject(P, "INBOX"),
                         xsd.AnyObject(T, "Subject: via zeep\n\nhello\n")])
result["append"] = status(r)
appenduid = found(r, "APPENDUID")
uid = appenduid[0][1].text if appenduid else None
result["uid"] = uid
r = svc.UID_FETCH(_value_1=[xsd.AnyObject(SEQ, uid or "*"),
                            el("L", el("FLAGS"), el("ENVELOPE"),
                               el("BODY.PEEK", el("SECTION")))])
result["fetch"] = status(r)
result["body"] = [t.text for b in found(r, "BODY")
                  for t in b.findall("{%s}T" % NS)][:1] or None
try:
    svc.SELECT(_value_1=[xsd.AnyObject(P, "Nosuch")])
    result["fault"] = None
except Fault as f:
    result["fault"] = [f.code, f.message]
for i, data in enumerate(seen):
    with open(os.path.join(dump, "%02d.xml" % i), "wb") as out:
        out.write(data)
print(json.dumps(result))
'''


def have_zeep():
    return subprocess.run([DEBIAN_PYTHON, "-c", "import zeep"],
                          capture_output=True).returncode == 0


def install_zeep(t):
    """build/deps installs python3-zeep; a tree run without it gets it
    here, from the package lists as they are or, failing that, fresh."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "--no-install-recommends",
               "python3-zeep"]
    for step in ([install], [["apt-get", "update"], install]):
        if have_zeep() or os.geteuid() != 0:
            break
        for cmd in step:
            subprocess.run(cmd, env=env, capture_output=True, timeout=600)
    return t.ok(have_zeep(), "python3-zeep is installed for %s"
                % DEBIAN_PYTHON)


def run_client(t, tmp, port, binding):
    contract = os.path.join(tmp, "contract")
    os.makedirs(contract, exist_ok=True)
    for name in CONTRACT:
        shutil.copy(os.path.join(ROOT, "conf.d", name), contract)
    dump = os.path.join(tmp, binding)
    os.makedirs(dump, exist_ok=True)
    script = os.path.join(tmp, "client.py")
    with open(script, "w") as f:
        f.write(CLIENT)
    res = subprocess.run([DEBIAN_PYTHON, script,
                          os.path.join(contract, "lemonade.wsdl"),
                          "http://127.0.0.1:%d/lemonade/imap" % port,
                          binding, dump],
                         capture_output=True, text=True, timeout=120)
    t.ok(res.returncode == 0, "%s: zeep ran the session" % binding,
         res.stdout + res.stderr)
    try:
        return json.loads(res.stdout.strip().splitlines()[-1]), dump
    except (ValueError, IndexError):
        return {}, dump


def check(t, binding, got, dump):
    t.eq(got.get("login"), "OK", "%s: LOGIN answered OK" % binding)
    t.eq(got.get("select"), "OK", "%s: SELECT INBOX answered OK" % binding)
    t.ok(got.get("exists") and got["exists"][0].isdigit(),
         "%s: SELECT's <EXISTS> read by zeep" % binding, repr(got))
    t.eq(got.get("append"), "OK", "%s: APPEND of a <T> answered OK"
         % binding)
    t.ok(got.get("uid"), "%s: the APPENDUID code read by zeep" % binding)
    t.eq(got.get("fetch"), "OK", "%s: UID_FETCH answered OK" % binding)
    t.eq(got.get("body"), ["Subject: via zeep\r\n\r\nhello\r\n"],
         "%s: the message came back whole, CRLF line ends" % binding)
    fault = got.get("fault") or ["", ""]
    t.ok(fault[1].startswith("SELECT: NO"),
         "%s: a NO raised a zeep Fault with the server's words" % binding,
         repr(fault))
    answers = sorted(os.listdir(dump))
    bad = []
    for name in answers:
        with open(os.path.join(dump, name), "rb") as f:
            ok, why = valid(f.read())
        if not ok:
            bad.append("%s: %s" % (name, why))
    t.ok(len(answers) >= 5 and not bad, "%s: all %d answers zeep read "
         "validate against lemonade.xsd" % (binding, len(answers)),
         "\n".join(bad))


with Test("122 SOAP with zeep") as t:
    tmp = t.tmpdir()
    if install_zeep(t):
        with Dovecot(tmp, users={"demo": "demo"}) as dc, \
                Httpd(tmp, body=lemonade_location(dc)) as httpd:
            for binding in ("ImapSoap11", "ImapSoap12"):
                got, dump = run_client(t, tmp, httpd.port, binding)
                check(t, binding, got, dump)
            errors = httpd.log_lines()
        t.ok(not errors, "the error log has no error", "\n".join(errors))
