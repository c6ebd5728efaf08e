# Licensed under the Apache License, Version 2.0; see LICENSE and NOTICE.
"""End-to-end test harness for mod_lemonade (Python 3, standard library only).

A test starts a throwaway Dovecot and one or more httpd instances that load
the freshly built module, talks HTTP to them, and reports TAP-like lines:

    with Test("001 module loads") as t:
        tmp = t.tmpdir()
        with Dovecot(tmp, users={"demo": "demo"}) as dc, \\
             Httpd(tmp, body=lemonade_location(dc)) as httpd:
            status, headers, body = post(httpd.port, "/lemonade/imap",
                                         imap_lines("a1 LOGIN demo demo"))
            t.eq(status, 200, "a LOGIN is answered")

Every server is started as a child or daemon with a known PID and stopped
by that PID (never by name), every wait is bounded, and the fixtures are
context managers so they are stopped even when the test raises.

Environment:
    LEMONADE_MODULE   the module to load (default: the build tree's)
    LEMONADE_HTTPD    the httpd binary (default /usr/sbin/apache2)
    LEMONADE_HTTPD_MODULES  directory of httpd's own modules
    LEMTEST_TMP       where per-test directories go (default /tmp/lemtest)
    LEMTEST_KEEP      set to 1 to keep them even when the test passes
"""

import grp
import http.client
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

MODULE = os.environ.get("LEMONADE_MODULE") or os.path.join(
    ROOT, "mod_lemonade", ".libs", "mod_lemonade.so")
HTTPD_BIN = os.environ.get("LEMONADE_HTTPD") or "/usr/sbin/apache2"
HTTPD_MODULES = (os.environ.get("LEMONADE_HTTPD_MODULES")
                 or "/usr/lib/apache2/modules")
DOVECOT_BIN = shutil.which("dovecot", path="/usr/sbin:/usr/local/sbin:"
                           + os.environ.get("PATH", "")) or "/usr/sbin/dovecot"
DOVEADM_BIN = shutil.which("doveadm", path="/usr/bin:/usr/local/bin:"
                           + os.environ.get("PATH", "")) or "/usr/bin/doveadm"
TMP_BASE = os.environ.get("LEMTEST_TMP") or "/tmp/lemtest"

START_TIMEOUT = 10.0   # seconds for a server to answer after its start
STOP_TIMEOUT = 10.0    # seconds for a server and its children to be gone

# Who the servers run as once they drop root.
HTTPD_USER, HTTPD_GROUP = "www-data", "www-data"
MAIL_USER, MAIL_GROUP = "nobody", "nogroup"


# --- small utilities --------------------------------------------------------

def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_for(predicate, timeout, interval=0.05):
    """Poll predicate() until it is true or timeout seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


class PortTaken(RuntimeError):
    """The port picked for a server was bound by someone else first."""


PORT_TRIES = 3


def start_on_free_port(server, start_once):
    """Run start_once(); if the server's own pick of a free port was taken
    in the meantime, pick another and try again (PORT_TRIES in all)."""
    for attempt in range(PORT_TRIES):
        try:
            return start_once()
        except PortTaken:
            if not server.own_port or attempt == PORT_TRIES - 1:
                raise
            server.port = free_port()


def read_text(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def write_text(path, text, mode=0o644):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, mode)


def make_dir(path, mode=0o755, owner=None):
    """mkdir -p, then set mode (and owner "user:group") on the last part."""
    os.makedirs(path, exist_ok=True)
    os.chmod(path, mode)
    if owner:
        user, group = owner.split(":")
        os.chown(path, pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid)
    return path


def imap_lines(*lines):
    """IMAP command lines as one request body, each ended by CRLF."""
    return b"".join((ln.encode() if isinstance(ln, str) else ln) + b"\r\n"
                    for ln in lines)


# --- processes, by PID ------------------------------------------------------

def proc_stat(pid):
    """(ppid, state, starttime) of pid from /proc, or None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = data[data.rindex(b")") + 2:].split()
    return int(fields[1]), fields[0].decode(), int(fields[19])


def proc_id(pid):
    """A (pid, starttime) pair that names one process even if pid is reused."""
    st = proc_stat(pid)
    return (pid, st[2]) if st else None


def proc_alive(ident):
    pid, start = ident
    st = proc_stat(pid)
    return st is not None and st[1] != "Z" and st[2] == start


def proc_descendants(pid):
    """(pid, starttime) of every live descendant of pid."""
    by_parent = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = proc_stat(int(name))
        if st and st[1] != "Z":
            by_parent.setdefault(st[0], []).append((int(name), st[2]))
    found, todo = [], [pid]
    while todo:
        for child in by_parent.get(todo.pop(), []):
            found.append(child)
            todo.append(child[0])
    return found


def proc_name(pid):
    return read_text("/proc/%d/comm" % pid).strip()


def signal_procs(procs, sig):
    for p in procs:
        if proc_alive(p):
            try:
                os.kill(p[0], sig)
            except ProcessLookupError:
                pass


def stop_tree(pid, timeout=STOP_TIMEOUT, reap=None, orphans_too=False):
    """SIGTERM pid and wait until it and every descendant it had are gone.

    The descendants are collected before the signal is sent. With
    orphans_too, those still there once pid has exited get a SIGTERM of
    their own (a server whose helpers outlive it by design). Whatever is
    alive after timeout seconds is killed with SIGKILL, by PID, and is
    returned as a list of "pid (name)" strings: empty means a clean stop.
    reap, if given, is called while waiting (to wait() on our own child).
    """
    root = proc_id(pid)
    if root is None:
        return []
    tree = [root] + proc_descendants(pid)

    def gone(procs):
        if reap:
            reap()
        return not any(proc_alive(p) for p in procs)

    deadline = time.monotonic() + timeout
    signal_procs([root], signal.SIGTERM)
    if orphans_too and wait_for(lambda: gone([root]), timeout):
        signal_procs(tree, signal.SIGTERM)
    if wait_for(lambda: gone(tree), max(0.0, deadline - time.monotonic())):
        return []
    left = ["%d (%s)" % (p[0], proc_name(p[0])) for p in tree if proc_alive(p)]
    signal_procs(tree, signal.SIGKILL)
    wait_for(lambda: gone(tree), 2.0)
    return left


# --- Dovecot ----------------------------------------------------------------

DOVECOT_CONF = """\
# One test's Dovecot, written by t/lib/lemtest.py; nothing else reads it.
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
info_log_path = {dir}/dovecot.log
debug_log_path = {dir}/dovecot.log

protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
verbose_proctitle = yes

# Started as root: the helpers drop to these existing accounts.
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
first_valid_uid = 1
first_valid_gid = 1
mail_uid = {mail_user}
mail_gid = {mail_group}
mail_location = maildir:{mail}/%u

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/passwd
}}
userdb {{
  driver = static
  args = uid={mail_user} gid={mail_group} home={mail}/%u
}}

service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}

protocol imap {{
  mail_max_userip_connections = 1000
}}
"""


class Dovecot:
    """A private Dovecot on 127.0.0.1, all of its state under tmp/name.

    users maps user name to password. Mail lives in Maildirs under
    tmp/mail/USER, owned by MAIL_USER.
    """

    def __init__(self, tmp, users=None, port=None, name="dovecot"):
        self.tmp = tmp
        self.dir = os.path.join(tmp, name)
        self.mail = os.path.join(tmp, "mail")
        self.conf = os.path.join(self.dir, "dovecot.conf")
        self.users = dict(users if users is not None else {"demo": "demo"})
        self.own_port = port is None
        self.port = port or free_port()
        self.proc = None
        self.pid = None
        self._seq = 0
        self._out = os.path.join(self.dir, "dovecot.out")  # its stderr
        self._out_start = 0

    # starting and stopping

    def write_config(self):
        make_dir(self.dir)
        make_dir(self.mail)
        write_text(self.conf, DOVECOT_CONF.format(
            dir=self.dir, mail=self.mail, port=self.port,
            mail_user=MAIL_USER, mail_group=MAIL_GROUP))
        passwd = os.path.join(self.dir, "passwd")
        write_text(passwd, "".join("%s:{PLAIN}%s::::::\n" % (u, p)
                                   for u, p in self.users.items()), 0o640)
        os.chown(passwd, 0, grp.getgrnam("dovecot").gr_gid)
        for user in self.users:
            self.add_mailbox(user, "INBOX")

    def start(self):
        return start_on_free_port(self, self._start_once)

    def _start_once(self):
        self.write_config()
        self._out_start = len(read_text(self._out))
        out = open(self._out, "ab")
        try:
            self.proc = subprocess.Popen(
                [DOVECOT_BIN, "-F", "-c", self.conf],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                start_new_session=True)
        finally:
            out.close()
        self.pid = self.proc.pid
        if not wait_for(self._greets, START_TIMEOUT, 0.1):
            self.stop()
            raise RuntimeError("dovecot on port %d did not answer within "
                               "%.0f s:\n%s" % (self.port, START_TIMEOUT,
                                                self.log()))
        return self

    def _greets(self):
        if self.proc is not None and self.proc.poll() is not None:
            status, log = self.proc.returncode, self.log()
            self.stop()
            error = PortTaken if "Address already in use" in \
                read_text(self._out)[self._out_start:] else RuntimeError
            raise error("dovecot exited with %s:\n%s" % (status, log))
        try:
            with socket.create_connection(("127.0.0.1", self.port), 1) as s:
                s.settimeout(2)
                return s.recv(64).startswith(b"* OK")
        except OSError:
            return False

    def stop(self):
        """Stop this Dovecot by its PID; True if all of it was gone in time."""
        if self.pid is None:
            return True
        # Login processes keep serving open client connections after the
        # master has gone: they are stopped by PID as well.
        reap = self.proc.poll if self.proc else None
        left = stop_tree(self.pid, reap=reap, orphans_too=True)
        if self.proc:
            try:
                self.proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        self.pid = None
        self.proc = None
        if left:
            sys.stderr.write("dovecot: killed after %.0f s: %s\n"
                             % (STOP_TIMEOUT, ", ".join(left)))
        return not left

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # what it holds

    def log(self):
        return (read_text(self._out)
                + read_text(os.path.join(self.dir, "dovecot.log")))

    def maildir(self, user, mailbox="INBOX"):
        """Directory of a mailbox (Maildir++: INBOX is the root)."""
        root = os.path.join(self.mail, user)
        return root if mailbox.upper() == "INBOX" else \
            os.path.join(root, "." + mailbox)

    def add_mailbox(self, user, mailbox):
        """Create (if needed) and subscribe a mailbox of user."""
        owner = "%s:%s" % (MAIL_USER, MAIL_GROUP)
        make_dir(os.path.join(self.mail, user), 0o700, owner)
        path = self.maildir(user, mailbox)
        for sub in ("", "cur", "new", "tmp"):
            make_dir(os.path.join(path, sub), 0o700, owner)
        if mailbox.upper() != "INBOX":
            subs = os.path.join(self.mail, user, "subscriptions")
            known = read_text(subs).splitlines()
            if mailbox not in known:
                write_text(subs, "\n".join(known + [mailbox]) + "\n", 0o600)
                self._chown(subs)
        return path

    def deliver(self, user, message, mailbox="INBOX", seen=False):
        """Put one message (str or bytes, CRLF or LF) into a mailbox.

        Written straight into the Maildir, as a delivery agent would.
        Returns the file's path.
        """
        if isinstance(message, str):
            message = message.encode()
        message = message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        path = self.add_mailbox(user, mailbox)
        self._seq += 1
        base = "%d.M%dP%d.lemtest,S=%d" % (time.time(), self._seq,
                                          os.getpid(), len(message))
        if seen:
            final = os.path.join(path, "cur", base + ":2,S")
        else:
            final = os.path.join(path, "new", base)
        staging = os.path.join(path, "tmp", base)
        with open(staging, "wb") as f:
            f.write(message)
        os.chmod(staging, 0o600)
        self._chown(staging)
        os.rename(staging, final)
        return final

    def _chown(self, path):
        os.chown(path, pwd.getpwnam(MAIL_USER).pw_uid,
                 grp.getgrnam(MAIL_GROUP).gr_gid)

    def connections(self, user=None):
        """IMAP sessions open now (logged in), for one user or for all.

        Counted as this Dovecot's `imap` processes: each serves one
        session, and verbose_proctitle puts the user in its title.
        """
        if self.pid is None:
            return 0
        count = 0
        for pid, _ in proc_descendants(self.pid):
            if proc_name(pid) != "imap":
                continue
            title = read_text("/proc/%d/cmdline" % pid).replace("\0", " ")
            if user is None or ("[%s " % user) in title:
                count += 1
        return count

    def who(self):
        """`doveadm who` for this instance, as text (for diagnostics)."""
        res = subprocess.run([DOVEADM_BIN, "-c", self.conf, "who", "-1"],
                             capture_output=True, text=True, timeout=10)
        return res.stdout + res.stderr


# --- httpd ------------------------------------------------------------------

MPM_CONF = {
    # Every connection in a fresh child: state that should outlive a
    # request has to live outside the process that served it.
    "prefork": """\
<IfModule mpm_prefork_module>
    StartServers            4
    MinSpareServers         4
    MaxSpareServers         8
    MaxRequestWorkers       32
    MaxConnectionsPerChild  1
</IfModule>
""",
    "event": """\
<IfModule mpm_event_module>
    StartServers            1
    ServerLimit             4
    ThreadLimit             16
    ThreadsPerChild         16
    MinSpareThreads         8
    MaxSpareThreads         48
    MaxRequestWorkers       64
    MaxConnectionsPerChild  0
</IfModule>
""",
    "worker": """\
<IfModule mpm_worker_module>
    StartServers            1
    ServerLimit             4
    ThreadLimit             16
    ThreadsPerChild         16
    MinSpareThreads         8
    MaxSpareThreads         48
    MaxRequestWorkers       64
    MaxConnectionsPerChild  0
</IfModule>
""",
}

HTTPD_CONF = """\
# One test's httpd, written by t/lib/lemtest.py; nothing else reads it.
ServerRoot "{dir}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile "{dir}/httpd.pid"
DefaultRuntimeDir "{dir}/run"
ErrorLog "{dir}/error.log"
LogLevel {loglevel}
User {user}
Group {group}
DocumentRoot "{dir}/htdocs"
Timeout 30

LoadModule mpm_{mpm}_module "{modules}/mod_mpm_{mpm}.so"
LoadModule authz_core_module "{modules}/mod_authz_core.so"
LoadModule lemonade_module "{module}"

{mpm_conf}
{body}
"""


def lemonade_location(dovecot_or_url, path="/lemonade/imap", extra=""):
    """A <Location> that binds path to an IMAP server via mod_lemonade.

    dovecot_or_url is a Dovecot (its port is used) or a backend URL.
    extra is more directives for the block, one per line.
    """
    url = dovecot_or_url
    if isinstance(dovecot_or_url, Dovecot):
        url = "imap://127.0.0.1:%d" % dovecot_or_url.port
    lines = ["<Location \"%s\">" % path,
             "    SetHandler lemonade",
             "    LemonadeBackend %s" % url]
    lines += ["    " + ln.strip() for ln in extra.splitlines() if ln.strip()]
    lines.append("</Location>")
    return "\n".join(lines) + "\n"


class Httpd:
    """An httpd on 127.0.0.1 with mod_lemonade, its state under tmp/name.

    body is configuration appended after the fixed part (Location blocks,
    Lemonade* server directives). mpm is "prefork", "event" or "worker".
    """

    def __init__(self, tmp, body="", mpm="prefork", loglevel="info",
                 port=None, name=None, module=None, mpm_conf=None):
        if mpm not in MPM_CONF:
            raise ValueError("unknown MPM %r" % mpm)
        self.tmp = tmp
        self.mpm = mpm
        self.dir = os.path.join(tmp, name or "httpd-" + mpm)
        self.conf = os.path.join(self.dir, "httpd.conf")
        self.pidfile = os.path.join(self.dir, "httpd.pid")
        self.logfile = os.path.join(self.dir, "error.log")
        self.body = body
        self.loglevel = loglevel
        self.own_port = port is None
        self.port = port or free_port()
        self.module = module or MODULE
        self.mpm_conf = MPM_CONF[mpm] if mpm_conf is None else mpm_conf
        self.pid = None
        self._log_start = 0

    def write_config(self):
        make_dir(self.dir)
        make_dir(os.path.join(self.dir, "htdocs"))
        owner = "%s:%s" % (HTTPD_USER, HTTPD_GROUP)
        make_dir(os.path.join(self.dir, "run"), 0o755, owner)
        write_text(self.conf, HTTPD_CONF.format(
            dir=self.dir, port=self.port, loglevel=self.loglevel,
            user=HTTPD_USER, group=HTTPD_GROUP, mpm=self.mpm,
            modules=HTTPD_MODULES, module=self.module,
            mpm_conf=self.mpm_conf, body=self.body))
        return self.conf

    def configtest(self, *args):
        """Run `httpd -t [args]` on this configuration: (exit code, output)."""
        self.write_config()
        res = subprocess.run([HTTPD_BIN, "-t", "-f", self.conf] + list(args),
                             stdin=subprocess.DEVNULL, capture_output=True,
                             text=True, timeout=30)
        return res.returncode, res.stdout + res.stderr

    def start(self):
        return start_on_free_port(self, self._start_once)

    def _start_once(self):
        self.write_config()
        self._log_start = len(self.error_log())
        res = subprocess.run([HTTPD_BIN, "-f", self.conf, "-k", "start"],
                             stdin=subprocess.DEVNULL, capture_output=True,
                             text=True, timeout=30)
        if res.returncode != 0:
            out = res.stdout + res.stderr
            error = PortTaken if "Address already in use" in out \
                else RuntimeError
            raise error("httpd -k start failed (%d):\n%s\n%s"
                        % (res.returncode, out, self.error_log()))
        if not wait_for(self._answers, START_TIMEOUT, 0.1):
            self.stop()
            raise RuntimeError("httpd on port %d did not come up within "
                               "%.0f s:\n%s" % (self.port, START_TIMEOUT,
                                                self.error_log()))
        self.pid = self._read_pid()
        return self

    def _read_pid(self):
        try:
            return int(read_text(self.pidfile).strip())
        except ValueError:
            return None

    def _answers(self):
        # The parent's notice (logged at any LogLevel) comes after it has
        # set its signal handlers: a SIGTERM before that would kill it
        # without a shutdown.
        if self._read_pid() is None or "resuming normal operations" \
                not in self.error_log()[self._log_start:]:
            return False
        try:
            with socket.create_connection(("127.0.0.1", self.port), 1):
                return True
        except OSError:
            return False

    def stop(self):
        """Stop by the PID in the PidFile; True if all was gone in time.

        Children are collected before the parent is signalled; any still
        there after STOP_TIMEOUT are killed by PID and reported.
        """
        pid = self.pid or self._read_pid()
        self.pid = None
        if pid is None:
            return True
        left = stop_tree(pid)
        if left:
            sys.stderr.write("httpd: killed after %.0f s: %s\n"
                             % (STOP_TIMEOUT, ", ".join(left)))
        return not left

    def children(self):
        """PIDs of the processes the running httpd has now."""
        pid = self.pid or self._read_pid()
        return [p for p, _ in proc_descendants(pid)] if pid else []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def error_log(self):
        return read_text(self.logfile)

    def log_lines(self, levels=("emerg", "alert", "crit", "error")):
        """Error-log lines at any of the given levels."""
        tags = tuple(":%s]" % lv for lv in levels)
        return [ln for ln in self.error_log().splitlines()
                if any(tag in ln for tag in tags)]

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)


# --- HTTP -------------------------------------------------------------------

class CookieJar:
    """Just enough of a cookie jar for one server: name -> value."""

    def __init__(self):
        self.cookies = {}

    def update(self, set_cookie_headers):
        for header in set_cookie_headers:
            first, _, attrs = header.partition(";")
            name, eq, value = first.strip().partition("=")
            if not eq:
                continue
            expired = any(a.strip().lower().replace(" ", "") == "max-age=0"
                          for a in attrs.split(";"))
            if expired:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value

    def header(self):
        return "; ".join("%s=%s" % kv for kv in self.cookies.items())

    def __bool__(self):
        return bool(self.cookies)


def request(port, path, body=b"", headers=None, jar=None, method="POST",
            timeout=30):
    """One HTTP/1.1 request to 127.0.0.1:port on a new connection.

    Returns (status, headers, body): headers is case-insensitive
    (headers.get("Content-Type"), headers.get_all("Set-Cookie")).
    A jar sends its cookies and keeps the ones the response sets.
    """
    if isinstance(body, str):
        body = body.encode()
    hdrs = dict(headers or {})
    if jar:
        hdrs["Cookie"] = jar.header()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body if body or method == "POST"
                     else None, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    if jar is not None:
        jar.update(resp.msg.get_all("Set-Cookie") or [])
    return resp.status, resp.msg, data


def post(port, path, body, headers=None, jar=None,
         content_type="application/vnd.lemonade", timeout=30):
    """POST an in-response batch (draft 2.1.1) and return the answer."""
    hdrs = {"Content-Type": content_type}
    hdrs.update(headers or {})
    return request(port, path, body, hdrs, jar, "POST", timeout)


def raw_exchange(port, data, timeout=30):
    """Send raw bytes, half-close, and return all that comes back."""
    with socket.create_connection(("127.0.0.1", port), timeout) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


# --- the test API -----------------------------------------------------------

class Terminated(Exception):
    """SIGTERM arrived (the runner's time limit): unwind and clean up."""


def _on_sigterm(signum, frame):
    raise Terminated("terminated by signal %d" % signum)


class Test:
    """Numbered checks printed as `ok N - desc` / `not ok N - desc`.

    Use as a context manager: an exception counts as a failed check, and
    leaving the block calls done(), which exits non-zero on any failure.
    A SIGTERM is turned into an exception, so the servers of a test that
    ran out of time are stopped too. Directories from tmpdir() are
    removed when every check passed.
    """

    def __init__(self, name):
        signal.signal(signal.SIGTERM, _on_sigterm)
        self.name = name
        self.count = 0
        self.failed = 0
        self.dirs = []
        self.finished = False
        print("# %s" % name, flush=True)

    def ok(self, cond, desc, diag=None):
        self.count += 1
        if cond:
            print("ok %d - %s" % (self.count, desc), flush=True)
        else:
            self.failed += 1
            print("not ok %d - %s" % (self.count, desc), flush=True)
            if diag:
                self.diag(diag)
        return bool(cond)

    def eq(self, got, want, desc):
        return self.ok(got == want, desc,
                       "got:      %r\nexpected: %r" % (got, want))

    def diag(self, text):
        for line in str(text).rstrip("\n").splitlines():
            print("#   %s" % line, flush=True)

    def tmpdir(self, label=None):
        """A fresh directory for this test, readable by the servers."""
        make_dir(TMP_BASE, 0o755)
        stem = (label or self.name).replace(" ", "_")[:24]
        path = tempfile.mkdtemp(prefix=stem + "-", dir=TMP_BASE)
        os.chmod(path, 0o755)
        self.dirs.append(path)
        return path

    def done(self):
        self.finished = True
        if self.count == 0:
            self.ok(False, "the test ran at least one check")
        print("1..%d" % self.count, flush=True)
        if self.failed:
            for path in self.dirs:
                print("# kept %s" % path, flush=True)
        elif os.environ.get("LEMTEST_KEEP") != "1":
            for path in self.dirs:
                shutil.rmtree(path, ignore_errors=True)
        sys.exit(1 if self.failed else 0)

    def __enter__(self):
        return self

    def __exit__(self, etype, value, tb):
        if self.finished:
            return False
        if etype is not None and not issubclass(etype, SystemExit):
            self.ok(False, "no unexpected exception",
                    "".join(traceback.format_exception(etype, value, tb)))
        self.done()
        return False


# --- in-band mode (draft 2.1.2) ---------------------------------------------

class InbandClient:
    """One in-band session: a chunked POST held open, read chunk by chunk.

    chunks() returns the chunks received so far as the server framed them
    on the wire, so tests can check one response per chunk.
    """

    def __init__(self, port, path="/lemonade/imap", headers=None,
                 timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout)
        self.buf = b""
        self.headers_done = False
        self.status = None
        self.head = ""
        self.ended = False         # the last chunk came
        hdrs = {"Host": "127.0.0.1", "Content-Type":
                "application/vnd.lemonade", "Transfer-Encoding": "chunked"}
        hdrs.update(headers or {})
        req = "POST %s HTTP/1.1\r\n" % path + "".join(
            "%s: %s\r\n" % kv for kv in hdrs.items()) + "\r\n"
        self.sock.sendall(req.encode())

    def send(self, data):
        """Send data as one chunk (never an empty one: that ends the body)."""
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))

    def finish(self):
        """The last chunk: the client's side of the session ends."""
        self.sock.sendall(b"0\r\n\r\n")

    def close(self):
        self.sock.close()

    def _fill(self, deadline):
        left = deadline - time.time()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except OSError:
            data = b""
        if not data:
            self.ended = True
            return False
        self.buf += data
        return True

    def _headers(self, deadline):
        while b"\r\n\r\n" not in self.buf:
            if not self._fill(deadline):
                return False
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.head = head.decode("latin-1")
        self.status = int(self.head.split(" ")[1])
        self.headers_done = True
        return True

    def header(self, name):
        for line in self.head.split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None

    def next_chunk(self, timeout=5):
        """The next chunk's data; b"" for the last chunk; None on timeout."""
        deadline = time.time() + timeout
        if not self.headers_done and not self._headers(deadline):
            return None
        if (self.header("Transfer-Encoding") or "").lower() != "chunked":
            return None             # an answer of its own: no session
        while True:
            if b"\r\n" in self.buf:
                size_line, rest = self.buf.split(b"\r\n", 1)
                size = int(size_line.split(b";")[0], 16)
                if len(rest) >= size + 2:
                    self.buf = rest[size + 2:]
                    if size == 0:
                        self.ended = True
                    return rest[:size]
            if not self._fill(deadline):
                return None

    def until(self, pred, timeout=5):
        """Chunks up to and including the first for which pred holds."""
        got = []
        deadline = time.time() + timeout
        while True:
            chunk = self.next_chunk(max(0.01, deadline - time.time()))
            if chunk is None:
                return got, False
            got.append(chunk)
            if pred(chunk) or chunk == b"":
                return got, pred(chunk)

    def until_tagged(self, tag, timeout=5):
        prefix = (tag + " ").encode()
        return self.until(lambda c: c.startswith(prefix), timeout)


# --- an SMTP server: Postfix's smtp-sink --------------------------------------

SMTP_SINK_BIN = shutil.which("smtp-sink", path="/usr/sbin:/usr/lib/postfix/"
                             "sbin:" + os.environ.get("PATH", "")) \
    or "/usr/sbin/smtp-sink"


class SmtpSink:
    """Postfix's smtp-sink on 127.0.0.1, each message dumped to a file.

    options are smtp-sink's own: ["-p"] offers no PIPELINING, ["-f",
    "RCPT"] rejects RCPT with 5xx, ["-r", "MAIL"] with 4xx, ["-q", "DATA"]
    hangs up on DATA. messages() returns the dumps, oldest first: the
    envelope as X-Mail-Args / X-Rcpt-Args lines, a Received header, then
    the message with LF line ends and dot-stuffing undone.
    """

    def __init__(self, tmp, options=(), port=None, name="smtp-sink"):
        self.dir = os.path.join(tmp, name)
        self.dumps = os.path.join(self.dir, "dumps")
        self.options = list(options)
        self.port = port or free_port()
        self.proc = None

    def url(self):
        return "smtp://127.0.0.1:%d" % self.port

    def start(self):
        make_dir(self.dir)
        make_dir(self.dumps, 0o755, "%s:%s" % (MAIL_USER, MAIL_GROUP))
        out = open(os.path.join(self.dir, "smtp-sink.out"), "ab")
        try:
            self.proc = subprocess.Popen(
                [SMTP_SINK_BIN, "-u", MAIL_USER, "-d",
                 os.path.join(self.dumps, "%Y%m%d%H%M%S.")] + self.options
                + ["127.0.0.1:%d" % self.port, "64"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                start_new_session=True)
        finally:
            out.close()
        if not wait_for(self._greets, START_TIMEOUT, 0.1):
            self.stop()
            raise RuntimeError("smtp-sink on port %d did not greet"
                               % self.port)
        return self

    def _greets(self):
        if self.proc.poll() is not None:
            raise RuntimeError("smtp-sink exited with %s" % self.proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", self.port), 1) as s:
                s.settimeout(2)
                return s.recv(64).startswith(b"220")
        except OSError:
            return False

    def stop(self):
        if self.proc is None:
            return True
        left = stop_tree(self.proc.pid, reap=self.proc.poll)
        self.proc = None
        return not left

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def messages(self):
        names = sorted(os.listdir(self.dumps), key=lambda n: os.stat(
            os.path.join(self.dumps, n)).st_mtime_ns)
        out = []
        for n in names:
            with open(os.path.join(self.dumps, n), "rb") as f:
                out.append(f.read())
        return out


def smtp_lines(*lines):
    """An SMTP batch: each line CRLF-ended (RFC 2442 batch SMTP)."""
    return "".join(line + "\r\n" for line in lines).encode()
