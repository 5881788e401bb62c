"""A private Dovecot IMAP server for the integration tests.

:class:`DovecotServer` owns one Dovecot process (``dovecot -F -c <conf>``) and everything it
uses, under one temporary directory: config, runtime sockets, state, log and maildirs; a plain
IMAP listener and an implicit-TLS listener on free ports of 127.0.0.1, with a server certificate
signed by a throwaway CA made with the ``openssl`` command; a passwd-file user and password
database; and an OAuth2 passdb (XOAUTH2, OAUTHBEARER) that asks a token-introspection endpoint
served from a thread of the test process which tokens are valid.

:class:`MailAccount` is one user on that server, with small synchronous helpers built on the
standard ``imaplib`` (append, uids, flags, ...). The fixtures: ``dovecot_server`` (one server
per test module, about 0.1 s to start) and ``dovecot`` (a fresh account, hence fresh
mailboxes, per test). Without Dovecot the tests are skipped, except in CI (``CI=true``) where
they fail.
"""

from __future__ import annotations

import atexit
import contextlib
import grp
import http.server
import imaplib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
HOST = "127.0.0.1"
START_TIMEOUT = 15.0


def unavailable(reason: str) -> NoReturn:
    """Skip on a laptop, fail in CI (where Dovecot must run)."""
    if IN_CI:
        pytest.fail(f"{reason}, and CI must run the Dovecot tests", pytrace=False)
    pytest.skip(reason)


def dovecot_binary() -> str | None:
    found = shutil.which("dovecot")
    if found:
        return found
    return "/usr/sbin/dovecot" if os.access("/usr/sbin/dovecot", os.X_OK) else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost: (ca, cert, key)."""
    if shutil.which("openssl") is None:
        unavailable("the openssl command is not installed")
    ca_key, ca_cert = folder / "ca.key", folder / "ca.pem"
    key, csr, cert = folder / "server.key", folder / "server.csr", folder / "server.pem"
    ext = folder / "server.ext"
    ext.write_text(
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature\n"
        "extendedKeyUsage = serverAuth\n"
        "subjectAltName = IP:127.0.0.1, DNS:localhost\n"
        "subjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid\n"
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    commands = [
        ["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca_cert, "-days", "2",
         "-subj", "/CN=inbox-daemon test CA",
         "-addext", "basicConstraints = critical, CA:TRUE",
         "-addext", "keyUsage = critical, keyCertSign, cRLSign"],
        ["openssl", "req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=localhost"],
        ["openssl", "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key,
         "-set_serial", str(secrets.randbits(63)), "-days", "2", "-out", cert, "-extfile", ext],
    ]  # fmt: skip
    for command in commands:
        proc = subprocess.run([str(c) for c in command], capture_output=True, text=True)
        if proc.returncode != 0:
            unavailable(f"openssl failed: {proc.stderr.strip()}")
    return ca_cert, cert, key


class _Introspection:
    """The OAuth2 token-introspection endpoint Dovecot asks (RFC 7662 style, POST token=...)."""

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}
        self.requests = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                token = form.get("token", [""])[0]
                owner.requests += 1
                user = owner.tokens.get(token)
                body = json.dumps({"active": True, "username": user} if user else {"active": False})
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/introspect"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _identity() -> tuple[dict[str, str], int, int]:
    """Who the Dovecot processes and the mail files run as: (config lines, mail uid, mail gid)."""
    if os.geteuid() == 0:
        # As root: Dovecot's own unprivileged users for its processes, nobody for the mail.
        try:
            pwd.getpwnam("dovecot")
            pwd.getpwnam("dovenull")
            nobody = pwd.getpwnam("nobody")
        except KeyError as exc:
            unavailable(f"user {exc} is missing (the dovecot-core package creates it)")
        settings = {
            "default_internal_user": "dovecot",
            "default_internal_group": "dovecot",
            "default_login_user": "dovenull",
        }
        return settings, nobody.pw_uid, nobody.pw_gid
    # Not root: everything runs as the current user (and without chroots, see _CONFIG).
    me = pwd.getpwuid(os.geteuid()).pw_name
    group = grp.getgrgid(os.getegid()).gr_name
    settings = {
        "default_internal_user": me,
        "default_internal_group": group,
        "default_login_user": me,
    }
    return settings, os.geteuid(), os.getegid()


_CONFIG = """\
# A private Dovecot for the inbox-daemon tests (written by tests/servers/dovecot.py).
instance_name = {instance}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/log/dovecot.log
protocols = imap
listen = {host}
{identity}
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2 oauthbearer
auth_failure_delay = 0
mail_location = maildir:~/Maildir
imap_idle_notify_interval = 2 mins

service imap-login {{
  inet_listener imap {{
    address = {host}
    port = {port}
  }}
  inet_listener imaps {{
    address = {host}
    port = {tls_port}
    ssl = yes
  }}
{login_chroot}
}}
{extra_services}
passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u {root}/users/%u
}}
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/oauth2.conf.ext
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/users/%u
}}
"""

_OAUTH2 = """\
introspection_mode = post
introspection_url = {url}
username_attribute = username
active_attribute = active
active_value = true
force_introspection = yes
"""

_live: set[DovecotServer] = set()


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_live):
        server.stop()


@dataclass(eq=False)
class DovecotServer:
    """One running Dovecot; see the module docstring."""

    root: Path
    host: str = HOST
    port: int = 0
    tls_port: int = 0
    ca_cert: Path = Path()
    process: subprocess.Popen[bytes] | None = None
    introspection: _Introspection | None = None
    #: How long the last start took, until both ports accepted connections.
    startup_seconds: float = 0.0
    _users: int = 0
    _mail_ids: tuple[int, int] = (0, 0)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def create(cls) -> DovecotServer:
        binary = dovecot_binary()
        if binary is None:
            unavailable("Dovecot is not installed (apt-get install dovecot-imapd)")
        root = Path(tempfile.mkdtemp(prefix="inbox-dovecot-"))
        root.chmod(0o755)  # the unprivileged mail user walks through it
        server = cls(root=root)
        server._configure()
        return server

    @property
    def config_path(self) -> Path:
        return self.root / "dovecot.conf"

    @property
    def log_path(self) -> Path:
        return self.root / "log" / "dovecot.log"

    def _configure(self) -> None:
        for sub in ("run", "state", "log", "mail", "users"):
            (self.root / sub).mkdir()
        identity, uid, gid = _identity()
        self._mail_ids = (uid, gid)
        os.chown(self.root / "mail", uid, gid)
        self.ca_cert, cert, key = make_certificates(self.root)
        self.port, self.tls_port = free_port(), free_port()
        self.introspection = _Introspection()
        (self.root / "oauth2.conf.ext").write_text(_OAUTH2.format(url=self.introspection.url))
        unprivileged = os.geteuid() != 0
        self.config_path.write_text(
            _CONFIG.format(
                instance=f"inbox-test-{self.port}",
                root=self.root,
                host=self.host,
                identity="\n".join(f"{k} = {v}" for k, v in identity.items()),
                cert=cert,
                key=key,
                port=self.port,
                tls_port=self.tls_port,
                login_chroot="  chroot =" if unprivileged else "",
                extra_services="service anvil {\n  chroot =\n}\n" if unprivileged else "",
            )
        )

    def start(self) -> None:
        """Start Dovecot in the foreground and wait until both ports accept connections."""
        binary = dovecot_binary()
        assert binary is not None
        # Dovecot delays every login from an address that failed to log in recently (anvil's
        # auth penalty, up to 15 s), which would make one wrong-password test slow the others
        # down. Without its socket the penalty is off (the auth process ignores ENOENT when it
        # starts), so the socket is removed as soon as Dovecot has made it, and an auth
        # process started before that (by a client reconnecting during a restart) is stopped.
        penalty = self.root / "run" / "anvil-auth-penalty"
        with contextlib.suppress(FileNotFoundError):
            penalty.unlink()
        output = (self.root / "log" / "stdout.log").open("ab")
        started = time.monotonic()
        self.process = subprocess.Popen(
            [binary, "-F", "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        output.close()
        _live.add(self)
        penalty_gone = False
        while True:
            if self.process.poll() is not None or time.monotonic() - started > START_TIMEOUT:
                self.stop()
                unavailable(f"Dovecot did not start:\n{self.logs()}")
            if not penalty_gone and penalty.exists():
                penalty.unlink()
                penalty_gone = True
            waited = time.monotonic() - started
            if (penalty_gone or waited > 3) and _accepts(self.port) and _accepts(self.tls_port):
                break
            time.sleep(0.002)
        for pid in self._children("auth"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        self.startup_seconds = time.monotonic() - started

    def _children(self, service: str) -> list[int]:
        """PIDs of this Dovecot's processes of one service, e.g. ``auth`` (Linux /proc)."""
        assert self.process is not None
        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
                cmdline = (proc / "cmdline").read_bytes().split(b"\0")[0].decode()
            except (OSError, ValueError, IndexError):
                continue
            title = cmdline.split(" ", 1)[0]
            if ppid == self.process.pid and title.rsplit("/", 1)[-1] == service:
                found.append(int(proc.name))
        return found

    def stop(self) -> None:
        """Stop Dovecot (SIGTERM, then SIGKILL after 10 s); idempotent."""
        proc, self.process = self.process, None
        _live.discard(self)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def restart(self) -> None:
        """Stop and start again on the same ports: every client connection is dropped."""
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self.introspection is not None:
            self.introspection.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def logs(self) -> str:
        parts = []
        for path in (self.log_path, self.root / "log" / "stdout.log"):
            with contextlib.suppress(OSError):
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)[-4000:]

    def add_account(self, user: str | None = None, password: str | None = None) -> MailAccount:
        """A new user with an empty mailbox.

        Each user has a passwd file of its own: Dovecot notices changes to a passwd file at
        most once a second, but reads a file it has not seen yet at once.
        """
        with self._lock:
            self._users += 1
            user = user or f"user{self._users}"
        password = password or secrets.token_hex(8)
        uid, gid = self._mail_ids
        home = self.root / "mail" / user
        (self.root / "users" / user).write_text(
            f"{user}:{{PLAIN}}{password}:{uid}:{gid}::{home}::\n"
        )
        return MailAccount(server=self, user=user, password=password)

    def kick(self, user: str) -> bool:
        """Disconnect every session of ``user`` from the server side (``doveadm kick``).

        Returns False when the user had no session.
        """
        doveadm = shutil.which("doveadm") or "/usr/bin/doveadm"
        proc = subprocess.run(
            [doveadm, "-c", str(self.config_path), "kick", user],
            capture_output=True,
            text=True,
        )
        if proc.returncode == 68:  # EX_NOUSER: nobody to kick
            return False
        if proc.returncode != 0:
            raise RuntimeError(f"doveadm kick failed: {proc.stderr.strip() or proc.stdout}")
        return True


_APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]")


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class MailAccount:
    """One user on the test server, with synchronous helpers over ``imaplib``."""

    server: DovecotServer
    user: str
    password: str

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def tls_port(self) -> int:
        return self.server.tls_port

    @property
    def ca_cert(self) -> Path:
        return self.server.ca_cert

    @contextlib.contextmanager
    def connect(self) -> Iterator[imaplib.IMAP4]:
        """A logged-in plain IMAP connection, logged out afterwards."""
        conn = imaplib.IMAP4(self.host, self.port, timeout=10)
        try:
            conn.login(self.user, self.password)
            yield conn
        finally:
            with contextlib.suppress(Exception):
                conn.logout()

    def append(self, raw: bytes, folder: str = "INBOX", flags: str = "") -> int:
        """Store a message; returns its UID. ``flags`` like ``\\Seen`` or ``\\Seen \\Flagged``."""
        with self.connect() as conn:
            typ, data = conn.append(_quote(folder), f"({flags})" if flags else None, None, raw)
            assert typ == "OK", data
            found = _APPENDUID.search(data[0] or b"")
            assert found, data
            return int(found.group(1))

    def uids(self, folder: str = "INBOX") -> list[int]:
        """The UIDs in a folder, ascending."""
        with self.connect() as conn:
            typ, data = conn.select(_quote(folder), readonly=True)
            assert typ == "OK", data
            typ, data = conn.uid("SEARCH", "ALL")
            assert typ == "OK", data
            return sorted(int(u) for u in (data[0] or b"").split())

    def flags(self, uid: int, folder: str = "INBOX") -> set[str]:
        """The flags of one message (an empty set if it is gone)."""
        with self.connect() as conn:
            typ, data = conn.select(_quote(folder), readonly=True)
            assert typ == "OK", data
            typ, data = conn.uid("FETCH", str(uid), "(FLAGS)")
            assert typ == "OK", data
            for item in data:
                line = item[0] if isinstance(item, tuple) else item
                if line and (found := re.search(rb"FLAGS \(([^)]*)\)", line)):
                    return set(found.group(1).decode().split())
            return set()

    def uidvalidity(self, folder: str = "INBOX") -> int:
        with self.connect() as conn:
            typ, data = conn.status(_quote(folder), "(UIDVALIDITY)")
            assert typ == "OK", data
            found = re.search(rb"UIDVALIDITY (\d+)", data[0] or b"")
            assert found, data
            return int(found.group(1))

    def create(self, folder: str) -> None:
        with self.connect() as conn:
            typ, data = conn.create(_quote(folder))
            assert typ == "OK", data

    def delete(self, folder: str) -> None:
        with self.connect() as conn:
            typ, data = conn.delete(_quote(folder))
            assert typ == "OK", data

    def folders(self) -> list[str]:
        with self.connect() as conn:
            typ, data = conn.list()
            assert typ == "OK", data
            names = []
            for line in data:
                if isinstance(line, bytes) and (found := re.search(rb'"([^"]*)"$', line)):
                    names.append(found.group(1).decode())
                elif isinstance(line, bytes):
                    names.append(line.rsplit(b" ", 1)[-1].decode())
            return names

    def register_token(self, token: str) -> None:
        """Make the introspection endpoint accept ``token`` as an access token for this user."""
        assert self.server.introspection is not None
        self.server.introspection.tokens[token] = self.user

    def kick(self) -> bool:
        return self.server.kick(self.user)


@pytest.fixture(scope="module")
def dovecot_server() -> Iterator[DovecotServer]:
    """One private Dovecot per test module."""
    server = DovecotServer.create()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def dovecot(dovecot_server: DovecotServer) -> MailAccount:
    """A fresh account (empty INBOX) on the module's Dovecot."""
    if dovecot_server.process is None or dovecot_server.process.poll() is not None:
        dovecot_server.start()  # a test stopped it
    return dovecot_server.add_account()
