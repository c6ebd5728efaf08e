# Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE.
"""lemonade-connect under test, and the clients that go through it.

    with Connect(tmp, httpd.url("/lemonade/imap")) as lc:
        imap = IMAP4("127.0.0.1", lc.port)

Connect starts the program as a child on a free port of 127.0.0.1 and
stops it by its PID; its log (stderr) is kept in tmp/NAME.log. The rest
are what tests 100-110 share: a mailbox of several folders, flags and
message sizes for mbsync to sync, the comparison of two synced Maildirs,
an IDLE driven by hand through imaplib, a buffering reverse proxy, and a
read that waits for a goodbye and a close.

Environment:
    LEMONADE_CONNECT  the program (default: the build tree's)
"""

import grp
import os
import pwd
import random
import re
import socket
import subprocess
import threading
import time
from imaplib import IMAP4

from lemtest import (HTTPD_MODULES, MAIL_GROUP, MAIL_USER, ROOT, Dovecot,
                     free_port, port_is_free, read_text, stop_tree, wait_for)

CONNECT_BIN = os.environ.get("LEMONADE_CONNECT") or os.path.join(
    ROOT, "mod_lemonade", "lemonade-connect")
MBSYNC_BIN = "mbsync"


class Connect:
    """lemonade-connect LISTEN URL, with `args` before them."""

    def __init__(self, tmp, url, args=(), name="connect"):
        self.url = url
        self.args = list(args)
        self.logfile = os.path.join(tmp, name + ".log")
        self.port = free_port()
        self.proc = None

    def start(self):
        log = open(self.logfile, "ab")
        try:
            self.proc = subprocess.Popen(
                [CONNECT_BIN, "-v"] + self.args
                + ["127.0.0.1:%d" % self.port, self.url],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True)
        finally:
            log.close()
        if not wait_for(self._listening, 15):
            self.stop()
            raise RuntimeError("lemonade-connect did not listen:\n"
                               + self.log())
        return self

    def _listening(self):
        if self.proc.poll() is not None:
            raise RuntimeError("lemonade-connect exited with %d:\n%s"
                               % (self.proc.returncode, self.log()))
        return not port_is_free(self.port)

    def stop(self):
        if self.proc is None:
            return True
        left = stop_tree(self.proc.pid, reap=self.proc.poll)
        self.proc = None
        return not left

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        return read_text(self.logfile)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def proxy_conf(port):
    """A reverse proxy in front of the module, as 080_behind_proxy.py has:
    mod_proxy_http sends a response only after the whole request, so an
    in-band greeting never comes through it."""
    return """\
LoadModule proxy_module "{m}/mod_proxy.so"
LoadModule proxy_http_module "{m}/mod_proxy_http.so"
ProxyPass "/lemonade/" "http://127.0.0.1:{p}/lemonade/"
ProxyPassReverse "/lemonade/" "http://127.0.0.1:{p}/lemonade/"
""".format(m=HTTPD_MODULES, p=port)


class IdleDovecot(Dovecot):
    """A Dovecot whose IDLE notices news within a second even without
    inotify: its instances run out (128 per user) when many test servers
    run at once, and Dovecot then looks only every 30 s."""

    def write_config(self):
        super().write_config()
        with open(self.conf, "a") as f:
            f.write("mailbox_idle_check_interval = 1 secs\n")


# --- a mailbox worth syncing -------------------------------------------------

FOLDERS = ("INBOX", "Archive", "Sent", "Drafts")

# size in bytes (about), Maildir flags: seen, flagged, replied, draft,
# trashed, in the order mbsync writes them
MESSAGES = [
    ("INBOX", 20, ""), ("INBOX", 300, "S"), ("INBOX", 1500, "FS"),
    ("INBOX", 40000, "RS"), ("INBOX", 1000000, ""), ("INBOX", 7000, "ST"),
    ("INBOX", 64 * 1024, "F"), ("INBOX", 120, "S"),
    ("Archive", 200, "S"), ("Archive", 250000, "S"), ("Archive", 900, "RS"),
    ("Archive", 1000000, "FS"), ("Archive", 3000, ""),
    ("Sent", 500, "S"), ("Sent", 12000, "RS"), ("Sent", 80, "S"),
    ("Drafts", 700, "DS"), ("Drafts", 30, "D"),
]


def message(n, size):
    """A message of about `size` bytes, CRLF-ended, with the traps a framer
    could fall into: lines that end like literal markers, lines of dots,
    8-bit text, a long line."""
    rnd = random.Random(n)
    head = ("From: Sender {n} <s{n}@example.org>\r\n"
            "To: demo@example.org\r\n"
            "Subject: message {n}, about {size} bytes\r\n"
            "Message-ID: <m{n}@example.org>\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "\r\n").format(n=n, size=size).encode()
    lines = [b"a line that ends like a literal {12}",
             b"and one like a LITERAL+ {3+}", b".", b"..leading dots",
             "caf\u00e9 na\u00efve \u00fcber".encode(), b"x" * 900]
    body = []
    total = len(head)
    while total < size:
        line = (lines[rnd.randrange(len(lines))] if rnd.random() < 0.2 else
                bytes(rnd.choice(b"abcdefghij klmnop") for _ in
                      range(rnd.randrange(1, 76))))
        body.append(line + b"\r\n")
        total += len(line) + 2
    return head + b"".join(body)


def put(dc, user, folder, data, flags, n):
    """A message into the server's Maildir, flags and all, as a delivery
    agent or an earlier IMAP session would have left it."""
    path = dc.add_mailbox(user, folder)
    name = "%d.M%dP%d.lemtest,S=%d:2,%s" % (time.time(), n, os.getpid(),
                                           len(data), flags)
    final = os.path.join(path, "cur", name)
    with open(final, "wb") as f:
        f.write(data)
    os.chown(final, pwd.getpwnam(MAIL_USER).pw_uid,
             grp.getgrnam(MAIL_GROUP).gr_gid)
    os.chmod(final, 0o600)


def populate(dc, user="demo"):
    for folder in FOLDERS:
        dc.add_mailbox(user, folder)
    for n, (folder, size, flags) in enumerate(MESSAGES):
        put(dc, user, folder, message(n, size), flags, n)


# --- mbsync -------------------------------------------------------------------

MBSYNC_CONF = """\
IMAPAccount acct
Host 127.0.0.1
Port {port}
User demo
Pass demo
SSLType None
AuthMechs LOGIN
Timeout 60

IMAPStore far
Account acct

MaildirStore near
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel sync
Far :far:
Near :near:
Patterns *
Create Near
SyncState *
"""


def mbsync(tmp, name, port):
    """Sync everything of demo at 127.0.0.1:port into tmp/name: (exit
    code, output, the local root)."""
    local = os.path.join(tmp, name)
    os.makedirs(local, exist_ok=True)
    conf = os.path.join(tmp, name + ".mbsyncrc")
    with open(conf, "w") as f:
        f.write(MBSYNC_CONF.format(port=port, local=local))
    res = subprocess.run([MBSYNC_BIN, "-c", conf, "-a"], capture_output=True,
                         text=True, timeout=90, stdin=subprocess.DEVNULL)
    return res.returncode, res.stdout + res.stderr, local


def without_tuid(data):
    """The message without the X-TUID header mbsync adds to what it
    uploads; the rest byte for byte."""
    ends = [i for i in (data.find(b"\n\n"), data.find(b"\r\n\r\n")) if i >= 0]
    cut = min(ends) + 1 if ends else len(data)
    return re.sub(rb"(?m)^X-TUID: [^\n]*\n", b"", data[:cut]) + data[cut:]


def maildir_state(root):
    """{folder: sorted [(flags, content)]} of a local Maildir tree."""
    state = {}
    for dirpath, dirnames, _ in os.walk(root):
        if "cur" not in dirnames or "new" not in dirnames:
            continue
        msgs = []
        for sub in ("cur", "new"):
            for name in os.listdir(os.path.join(dirpath, sub)):
                flags = name.split(":2,", 1)[1] if ":2," in name else ""
                with open(os.path.join(dirpath, sub, name), "rb") as f:
                    msgs.append((flags, without_tuid(f.read())))
        state[os.path.relpath(dirpath, root)] = sorted(msgs)
    return state


def state_diff(a, b):
    """What tells two Maildir states apart, in a few lines."""
    out = []
    for folder in sorted(set(a) | set(b)):
        ma, mb = a.get(folder), b.get(folder)
        if ma is None or mb is None:
            out.append("%s: only in %s" % (folder, "the second" if ma is None
                                           else "the first"))
        elif ma != mb:
            out.append("%s: %d vs %d messages, flags %s vs %s, sizes %s vs %s"
                       % (folder, len(ma), len(mb), [m[0] for m in ma],
                          [m[0] for m in mb], [len(m[1]) for m in ma],
                          [len(m[1]) for m in mb]))
    return "\n".join(out) or "identical"


def change_locally(local):
    """What a user does between syncs: writes a message (a large one, so
    that it goes up as a big literal) and flags another."""
    sent = os.path.join(local, "Sent")
    data = message(1000, 300000).replace(b"\r\n", b"\n")
    name = "%d.lemtest_%d.local:2,S" % (time.time(), os.getpid())
    with open(os.path.join(sent, "tmp", name), "wb") as f:
        f.write(data)
    os.rename(os.path.join(sent, "tmp", name), os.path.join(sent, "cur",
                                                            name))
    archive_cur = os.path.join(local, "Archive", "cur")
    for name in sorted(os.listdir(archive_cur)):
        if name.endswith(":2,"):
            os.rename(os.path.join(archive_cur, name),
                      os.path.join(archive_cur, name + "F"))
            break


# --- IDLE by hand (imaplib has no idle() before Python 3.14) -----------------

def append_direct(dc, text=b"Subject: pushed\r\n\r\nnews\r\n"):
    imap = IMAP4("127.0.0.1", dc.port)
    imap.login("demo", "demo")
    imap.append("INBOX", None, None, text)
    imap.logout()


def idle_news(port, dc, wait=15):
    """IDLE through port, an APPEND by another connection, DONE, NOOP.

    Returns (continuation, exists, tagged, seconds from the APPEND to the
    EXISTS, responses tagged like the IDLE that came after its own): what
    the client read for each step, b"" where nothing came.
    """
    imap = IMAP4("127.0.0.1", port, timeout=wait)
    imap.login("demo", "demo")
    imap.select("INBOX")
    tag = imap._new_tag()
    imap.send(tag + b" IDLE\r\n")
    cont = imap.readline()
    th = threading.Thread(target=append_direct, args=(dc,))
    start = time.time()
    th.start()
    exists, took = b"", None
    deadline = time.time() + wait
    while time.time() < deadline:
        line = imap.readline()
        if not line:
            break
        if line.endswith(b"EXISTS\r\n"):
            exists, took = line, time.time() - start
            break
    th.join(10)
    imap.send(b"DONE\r\n")
    tagged = read_tagged(imap, tag)[-1:] or [b""]
    noop = imap._new_tag()
    imap.send(noop + b" NOOP\r\n")
    stray = [ln for ln in read_tagged(imap, noop)
             if ln.startswith(tag + b" ")]
    imap.logout()
    return cont, exists, tagged[0], took, stray


def read_tagged(imap, tag):
    """Lines up to and including tag's response (or the connection's
    end)."""
    lines = []
    while True:
        line = imap.readline()
        lines.append(line)
        if not line or line.startswith(tag + b" "):
            return lines


# --- a goodbye and a close ----------------------------------------------------

def read_until_close(sock, timeout):
    """All the socket gives until it closes: (data, closed within
    timeout)."""
    sock.settimeout(0.5)
    deadline = time.time() + timeout
    data = b""
    while time.time() < deadline:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def imap_logged_in(port, timeout=15):
    """A raw IMAP connection through port, logged in: (socket, what it
    read)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout)
    sock.settimeout(timeout)
    got = sock.recv(4096)
    sock.sendall(b"d1 LOGIN demo demo\r\n")
    while b"d1 " not in got:
        chunk = sock.recv(4096)
        if not chunk:
            break
        got += chunk
    return sock, got
