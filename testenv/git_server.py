"""Real Git servers for tests: `git http-backend` behind an HTTPS server, and sshd (see git_ssh).

The HTTP server is a small Python front for the CGI program /usr/lib/git-core/git-http-backend:

- HTTP/1.1 with keep-alive; every response is framed with Content-Length or chunked encoding
  (libgit2 rejects HTTP/1.0-style close-delimited bodies).
- TLS with a throwaway CA generated per instance (server cert for IP:127.0.0.1 and DNS:localhost),
  or plain HTTP.
- Basic auth and/or bearer-token auth; a 401 with WWW-Authenticate when missing or wrong;
  `password_check` accepts further basic credentials (tokens from a fake issuer).
- Per-repository counters that tell ref advertisements (GET info/refs), protocol v2 ls-refs and
  pack fetches (POST git-upload-pack carrying wants) apart, so tests can prove no clone happened.
- stop() and start() again on the same port; error injection for flaky-server tests.

Typical use::

    with GitHTTPServer(root) as srv:
        sha = commit_tree(root / "app.git", {"k.yaml": "a: 1\\n"})
        url = srv.url_for("app")            # https://127.0.0.1:PORT/app.git
        env = srv.git_env()                 # GIT_SSL_CAINFO=<ca.pem>
        srv.stats("app").fetches            # number of pack fetches served
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hmac
import io
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, unquote, urlsplit

from testenv.git_repos import (
    FileContent,
    GitError,
    commit_tree,
    create_branch,
    create_tag,
    delete_ref,
    git_env,
    init_bare,
    list_refs,
    read_file,
    rev_parse,
    run_git,
    set_head,
)
from testenv.git_ssh import GitSSHServer
from testenv.pki import CertificateAuthority, KeyPair, write_private

__all__ = [
    "CertificateAuthority",
    "FileContent",
    "GitError",
    "GitHTTPServer",
    "GitSSHServer",
    "KeyPair",
    "RepoStats",
    "RequestRecord",
    "commit_tree",
    "create_branch",
    "create_tag",
    "delete_ref",
    "git_env",
    "init_bare",
    "list_refs",
    "read_file",
    "rev_parse",
    "run_git",
    "set_head",
]

HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"

# Request kinds, as recorded in RequestRecord.kind and counted in RepoStats.
INFO_REFS = "info_refs"  # GET info/refs?service=git-upload-pack (ref advertisement / v2 caps)
LS_REFS = "ls_refs"  # POST git-upload-pack with "command=ls-refs" (protocol v2 ref listing)
FETCH = "fetch"  # POST git-upload-pack that negotiates/sends a pack (v0 wants or v2 fetch)
RECEIVE_INFO_REFS = "receive_info_refs"  # GET info/refs?service=git-receive-pack
RECEIVE_PACK = "receive_pack"  # POST git-receive-pack (push)
DUMB = "dumb"  # anything else (dumb-protocol files, HEAD, objects/...)
UNAUTHORIZED = "unauthorized"  # rejected with 401 before reaching git
INJECTED = "injected"  # answered with an injected error status


@dataclass(frozen=True)
class RequestRecord:
    """One request the server answered."""

    time: float
    method: str
    path: str
    query: str
    repo: str | None  # repository name without ".git", None if the path names no repository
    kind: str
    status: int
    user: str | None
    git_protocol: str | None  # the Git-Protocol header ("version=2") if sent
    user_agent: str | None
    bytes_in: int
    bytes_out: int


@dataclass
class RepoStats:
    """Counters for one repository (or all of them)."""

    info_refs: int = 0
    ls_refs: int = 0
    fetch: int = 0
    receive_info_refs: int = 0
    receive_pack: int = 0
    dumb: int = 0
    unauthorized: int = 0
    injected: int = 0
    bytes_out: int = 0

    @property
    def fetches(self) -> int:
        """Pack fetch requests (a clone or fetch that transferred or negotiated objects)."""
        return self.fetch

    @property
    def ref_checks(self) -> int:
        """Requests that only listed refs (v0/v1 advertisement GETs plus v2 ls-refs POSTs)."""
        return self.info_refs + self.ls_refs

    @property
    def total(self) -> int:
        return (
            self.info_refs
            + self.ls_refs
            + self.fetch
            + self.receive_info_refs
            + self.receive_pack
            + self.dumb
            + self.unauthorized
            + self.injected
        )


@dataclass
class _Injection:
    status: int
    remaining: int | None  # None: until cleared
    repo: str | None  # None: all repositories


def _classify(method: str, rest: str, query: str, body: bytes, encoding: str | None) -> str:
    if rest == "/info/refs" and method == "GET":
        if "service=git-upload-pack" in query:
            return INFO_REFS
        if "service=git-receive-pack" in query:
            return RECEIVE_INFO_REFS
        return DUMB
    if rest == "/git-receive-pack":
        return RECEIVE_PACK
    if rest == "/git-upload-pack":
        head = body
        if encoding and encoding.lower() in ("gzip", "x-gzip"):
            with contextlib.suppress(OSError, EOFError, zlib.error):
                head = gzip.decompress(body)
        # protocol v2: the first pkt-line is "command=<name>"
        if head[4:19] == b"command=ls-refs":
            return LS_REFS
        return FETCH
    return DUMB


def _split_repo(path: str) -> tuple[str | None, str]:
    """Split "/org/app.git/info/refs" into ("org/app", "/info/refs")."""
    for suffix in ("/info/refs", "/git-upload-pack", "/git-receive-pack", "/HEAD"):
        if path.endswith(suffix) and len(path) > len(suffix) + 1:
            return path[1 : -len(suffix)].removesuffix(".git"), suffix
    for marker in ("/objects/", "/info/"):
        idx = path.find(marker)
        if idx > 1:
            return path[1:idx].removesuffix(".git"), path[idx:]
    return None, path


def _read_chunked(rfile: io.BufferedIOBase) -> bytes:
    out = bytearray()
    while True:
        line = rfile.readline(65537)
        if not line:
            raise ConnectionError("eof in chunked body")
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            # trailers until an empty line
            while True:
                trailer = rfile.readline(65537)
                if trailer in (b"\r\n", b"\n", b""):
                    return bytes(out)
        out += rfile.read(size)
        rfile.readline(3)  # CRLF after the chunk


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "tidal-git-http/1"
    timeout = 60  # idle keep-alive connections are dropped after this
    # Headers and body go out in separate writes; with Nagle on, the client's delayed ACK
    # stalls every response by ~40 ms.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request log lives in GitHTTPServer.requests()

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._send_simple(405, b"method not allowed\n")

    # -- helpers -------------------------------------------------------------------------------

    def _send_simple(
        self,
        status: int,
        body: bytes,
        headers: Mapping[str, str] | list[tuple[str, str]] | None = None,
    ) -> None:
        self.send_response(status)
        items = headers.items() if isinstance(headers, Mapping) else (headers or [])
        for key, value in items:
            self.send_header(key, value)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return _read_chunked(self.rfile)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _authenticate(self, owner: GitHTTPServer) -> tuple[bool, str | None, str | None]:
        """(ok, user, auth_type)."""
        if not owner.auth_required:
            return True, None, None
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        basic_configured = owner.username is not None and owner.password is not None
        if scheme == "basic" and (basic_configured or owner.password_check is not None):
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False, None, None
            if (
                owner.username is not None
                and owner.password is not None
                and hmac.compare_digest(user, owner.username)
                and hmac.compare_digest(password, owner.password)
            ):
                return True, user, "Basic"
            if owner.password_check is not None and owner.password_check(user, password):
                return True, user, "Basic"
        if (
            scheme == "bearer"
            and owner.token is not None
            and hmac.compare_digest(value, owner.token)
        ):
            return True, "token", "Bearer"
        return False, None, None

    def _serve(self) -> None:
        owner = self.server.owner
        started = time.time()
        url = urlsplit(self.path)
        path = unquote(url.path)
        repo, rest = _split_repo(path)
        body = self._read_body()
        encoding = self.headers.get("Content-Encoding")
        kind = _classify(self.command, rest, url.query, body, encoding)

        def record(status: int, kind: str, user: str | None, bytes_out: int) -> None:
            owner._record(
                RequestRecord(
                    time=started,
                    method=self.command,
                    path=path,
                    query=url.query,
                    repo=repo,
                    kind=kind,
                    status=status,
                    user=user,
                    git_protocol=self.headers.get("Git-Protocol"),
                    user_agent=self.headers.get("User-Agent"),
                    bytes_in=len(body),
                    bytes_out=bytes_out,
                )
            )

        injected = owner._take_injection(repo)
        if injected is not None:
            msg = f"injected failure {injected}\n".encode()
            record(injected, INJECTED, None, len(msg))
            self._send_simple(injected, msg)
            return

        ok, user, auth_type = self._authenticate(owner)
        if not ok:
            challenges: list[tuple[str, str]] = []
            if owner.username is not None:
                challenges.append(("WWW-Authenticate", f'Basic realm="{owner.realm}"'))
            if owner.token is not None:
                challenges.append(("WWW-Authenticate", f'Bearer realm="{owner.realm}"'))
            msg = b"authentication required\n"
            record(401, UNAUTHORIZED, None, len(msg))
            self._send_simple(401, msg, challenges)
            return

        if owner.latency:
            time.sleep(owner.latency)
        self._run_backend(
            owner,
            path,
            url.query,
            body,
            user,
            auth_type,
            lambda status, out_bytes: record(status, kind, user, out_bytes),
        )

    def _run_backend(
        self,
        owner: GitHTTPServer,
        path: str,
        query: str,
        body: bytes,
        user: str | None,
        auth_type: str | None,
        on_done: Callable[[int, int], None],
    ) -> None:
        """Run git http-backend for this request and stream its response. Calls
        on_done(status, bytes_out) once, before the last bytes of the response are sent."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(owner.repos_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "SERVER_SOFTWARE": self.server_version,
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REMOTE_ADDR": self.client_address[0],
            "CONTENT_LENGTH": str(len(body)),
        }
        if self.headers.get("Content-Type"):
            env["CONTENT_TYPE"] = self.headers["Content-Type"]
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        if self.headers.get("Git-Protocol"):
            env["HTTP_GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        if user:
            env["REMOTE_USER"] = user
            env["AUTH_TYPE"] = auth_type or "Basic"
        proc = subprocess.Popen(
            [HTTP_BACKEND],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        owner._track_proc(proc, add=True)
        stderr_chunks: list[bytes] = []

        def feed() -> None:
            assert proc.stdin is not None
            with contextlib.suppress(BrokenPipeError, OSError):
                proc.stdin.write(body)
            with contextlib.suppress(BrokenPipeError, OSError):
                proc.stdin.close()

        def drain_stderr() -> None:
            assert proc.stderr is not None
            stderr_chunks.append(proc.stderr.read())

        feeder = threading.Thread(target=feed, daemon=True)
        errer = threading.Thread(target=drain_stderr, daemon=True)
        feeder.start()
        errer.start()
        out_bytes = 0
        status = 502
        recorded = False
        try:
            assert isinstance(proc.stdout, io.BufferedReader)
            stdout = proc.stdout
            status, headers, first = _read_cgi_headers(stdout)
            self.send_response(status)
            length_known = False
            for key, value in headers:
                if key.lower() in ("connection", "transfer-encoding"):
                    continue
                if key.lower() == "content-length":
                    length_known = True
                self.send_header(key, value)
            if not length_known:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            # Hold back the last piece until the request is recorded, so a client that has
            # its complete response always finds the request in the log/counters.
            pending = first
            while True:
                data = stdout.read1(65536)
                if not data:
                    break
                if pending:
                    out_bytes += len(pending)
                    self._write_body(pending, chunked=not length_known)
                pending = data
            out_bytes += len(pending)
            on_done(status, out_bytes)
            recorded = True
            if pending:
                self._write_body(pending, chunked=not length_known)
            if not length_known:
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        finally:
            feeder.join(5)
            if proc.poll() is None:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            errer.join(5)
            owner._track_proc(proc, add=False)
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
            err = b"".join(stderr_chunks).decode(errors="replace").strip()
            if err:
                owner._log(f"http-backend {self.command} {path}: {err}")
            if not recorded:  # the client went away mid-response
                on_done(status, out_bytes)

    def _write_body(self, data: bytes, *, chunked: bool) -> None:
        if chunked:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self.wfile.write(data)


def _read_cgi_headers(stdout: io.BufferedReader) -> tuple[int, list[tuple[str, str]], bytes]:
    """Read CGI response headers; return (status, headers, start of the body)."""
    buf = b""
    while True:
        for sep in (b"\r\n\r\n", b"\n\n"):
            idx = buf.find(sep)
            if idx >= 0:
                head, rest = buf[:idx], buf[idx + len(sep) :]
                break
        else:
            chunk = stdout.read1(65536)
            if not chunk:
                head, rest = buf, b""
                if not head:
                    return 502, [("Content-Type", "text/plain")], b"git http-backend failed\n"
                break
            buf += chunk
            continue
        break
    status = 200
    headers: list[tuple[str, str]] = []
    for line in head.decode("latin-1").splitlines():
        if not line.strip():
            continue
        key, _, value = line.partition(":")
        if key.strip().lower() == "status":
            status = int(value.strip().split(" ", 1)[0])
        else:
            headers.append((key.strip(), value.strip()))
    return status, headers, rest


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: GitHTTPServer
    ssl_context: ssl.SSLContext | None

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        self.owner._track_thread(thread, add=True)
        thread.start()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.owner._track_thread(threading.current_thread(), add=False)

    def finish_request(self, request: Any, client_address: Any) -> None:
        conn: socket.socket = request
        if self.ssl_context is not None:
            conn.settimeout(10)
            try:
                conn = self.ssl_context.wrap_socket(conn, server_side=True)
            except (OSError, ssl.SSLError) as exc:
                self.owner._log(f"TLS handshake from {client_address} failed: {exc}")
                self.owner._count_tls_failure()
                return
        self.owner._track_conn(conn, add=True)
        try:
            super().finish_request(conn, client_address)
        except ssl.SSLError as exc:
            # With TLS 1.3 a client that rejects our certificate does so after the server side
            # of the handshake completed: its alert shows up on the first read.
            self.owner._log(f"TLS error from {client_address}: {exc}")
            self.owner._count_tls_failure()
        except (OSError, ValueError):
            pass
        finally:
            self.owner._track_conn(conn, add=False)
            if conn is not request:
                with contextlib.suppress(OSError):
                    conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # client disconnects and TLS failures are expected in tests


class GitHTTPServer:
    """Serves the bare repositories under `repos_root` over HTTPS (or HTTP) via git http-backend.

    Auth: basic auth with (`username`, `password`) and/or `Authorization: Bearer <token>`; a
    password/token not given is generated. `basic_auth=False` / `bearer_auth=False` turn a method
    off (username/password or token become None); with both off the server is anonymous.
    The attributes can be changed while running (e.g. to rotate a password).
    """

    def __init__(
        self,
        repos_root: Path | str,
        *,
        tls: bool = True,
        username: str = "git-user",
        password: str | None = None,
        token: str | None = None,
        basic_auth: bool = True,
        bearer_auth: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        workdir: Path | str | None = None,
        realm: str = "tidal-git",
        client_cert_required: bool = False,
    ) -> None:
        self.repos_root = Path(repos_root).resolve()
        self.repos_root.mkdir(parents=True, exist_ok=True)
        self.tls = tls
        self.username: str | None = username if basic_auth else None
        self.password: str | None = None
        if basic_auth:
            self.password = password if password is not None else secrets.token_urlsafe(12)
        self.token: str | None = None
        if bearer_auth:
            self.token = token if token is not None else secrets.token_urlsafe(24)
        self.host = host
        self.port = port
        self.realm = realm
        self.latency = 0.0  # seconds added before each authenticated request is served
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="tidal-git-http-"))
        self.workdir.mkdir(parents=True, exist_ok=True)

        self.ca = CertificateAuthority("tidal test git CA")
        self.server_cert: KeyPair = self.ca.issue(
            "localhost", server=True, dns_names=("localhost",), ips=("127.0.0.1", "::1")
        )
        self.client_cert: KeyPair = self.ca.issue("git-client", client=True)
        self.ca_pem_path = self.workdir / "ca.pem"
        self.ca_pem_path.write_bytes(self.ca.pair.cert_pem)
        self.cert_path = self.workdir / "server.pem"
        self.cert_path.write_bytes(self.server_cert.cert_pem)
        self.key_path = write_private(self.workdir / "server-key.pem", self.server_cert.key_pem)
        self.client_cert_path = self.workdir / "client.pem"
        self.client_cert_path.write_bytes(self.client_cert.cert_pem)
        self.client_key_path = write_private(
            self.workdir / "client-key.pem", self.client_cert.key_pem
        )
        self.client_cert_required = client_cert_required
        # Extra basic-auth credentials judged by the test (e.g. short-lived tokens an issuer
        # hands out): called with (user, password) when the fixed pair does not match.
        self.password_check: Callable[[str, str], bool] | None = None

        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []
        self._stats: dict[str | None, RepoStats] = {}
        self._tls_failures = 0
        self._injections: list[_Injection] = []
        self._threads: set[threading.Thread] = set()
        self._conns: set[socket.socket] = set()
        self._procs: set[subprocess.Popen[bytes]] = set()
        self._httpd: _Server | None = None
        self._serve_thread: threading.Thread | None = None
        self.log: list[str] = []

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def start(self) -> Self:
        """Start serving (again on the same port after stop())."""
        if self._httpd is not None:
            return self
        httpd = _Server((self.host, self.port), _Handler, bind_and_activate=True)
        httpd.owner = self
        httpd.ssl_context = self._ssl_context() if self.tls else None
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._serve_thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"git-http-{self.port}",
            daemon=True,
        )
        self._serve_thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, drop open keep-alive connections and running backends, free the port."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._serve_thread is not None:
            self._serve_thread.join(5)
        with self._lock:
            conns = list(self._conns)
            procs = list(self._procs)
        for conn in conns:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(conn, socket.SHUT_RDWR)
        for proc in procs:
            with contextlib.suppress(OSError):
                proc.kill()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with self._lock:
                threads = list(self._threads)
            if not threads:
                break
            threads[0].join(max(0.0, deadline - time.monotonic()))

    def restart(self) -> Self:
        self.stop()
        return self.start()

    def close(self) -> None:
        """stop() and remove the per-instance work directory (CA files)."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert_path, self.key_path)
        ctx.set_alpn_protocols(["http/1.1"])
        if self.client_cert_required:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cadata=self.ca.pair.cert_pem.decode())
        return ctx

    # -- addressing ----------------------------------------------------------------------------

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def url(self) -> str:
        """Base URL, e.g. https://127.0.0.1:41234"""
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def ca_pem(self) -> bytes:
        return self.ca.pair.cert_pem

    def repo_path(self, name: str) -> Path:
        """On-disk path of repository `name` ("app", "app.git" or "org/app")."""
        return self.repos_root / f"{name.removesuffix('.git')}.git"

    def url_for(self, name: str, *, host: str | None = None, credentials: bool = False) -> str:
        """Clone URL of repository `name`; `host="localhost"` to exercise DNS SAN matching;
        `credentials=True` embeds user:password in the URL (for quick git CLI use)."""
        auth = ""
        if credentials and self.username is not None and self.password is not None:
            auth = f"{quote(self.username, safe='')}:{quote(self.password, safe='')}@"
        name = name.removesuffix(".git")
        return f"{self.scheme}://{auth}{host or self.host}:{self.port}/{name}.git"

    def git_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for the git CLI that trusts this server's CA (no credentials)."""
        env = {"GIT_SSL_CAINFO": str(self.ca_pem_path)} if self.tls else {}
        if extra:
            env.update(extra)
        return git_env(env)

    def bearer_header_args(self) -> list[str]:
        """git CLI args sending the bearer token: ["-c", "http.extraHeader=Authorization: ..."]."""
        return ["-c", f"http.extraHeader=Authorization: Bearer {self.token}"]

    @property
    def auth_required(self) -> bool:
        return (
            (self.username is not None and self.password is not None)
            or self.token is not None
            or self.password_check is not None
        )

    # -- repositories --------------------------------------------------------------------------

    def create_repo(self, name: str, default_branch: str = "main") -> Path:
        return init_bare(self.repo_path(name), default_branch)

    def commit(
        self, name: str, files: Mapping[str, FileContent], message: str = "update", **kwargs: Any
    ) -> str:
        """commit_tree() on repository `name` (created if missing)."""
        return commit_tree(self.repo_path(name), files, message, **kwargs)

    # -- observation ---------------------------------------------------------------------------

    def _record(self, rec: RequestRecord) -> None:
        with self._lock:
            self._records.append(rec)
            for key in (rec.repo, "*"):
                stats = self._stats.setdefault(key, RepoStats())
                setattr(stats, rec.kind, getattr(stats, rec.kind) + 1)
                stats.bytes_out += rec.bytes_out

    def _count_tls_failure(self) -> None:
        with self._lock:
            self._tls_failures += 1

    def _log(self, line: str) -> None:
        with self._lock:
            self.log.append(line)

    def stats(self, name: str | None = None) -> RepoStats:
        """A snapshot of the counters of repository `name`, or of all requests when None."""
        key = "*" if name is None else name.removesuffix(".git")
        with self._lock:
            return replace(self._stats.get(key, RepoStats()))

    @property
    def tls_failures(self) -> int:
        """Connections that failed with a TLS error (best effort: a client that rejects the
        certificate may just hang up, which is indistinguishable from an idle close)."""
        with self._lock:
            return self._tls_failures

    def requests(self, name: str | None = None) -> list[RequestRecord]:
        """The request log, optionally only for repository `name`."""
        with self._lock:
            recs = list(self._records)
        if name is None:
            return recs
        key = name.removesuffix(".git")
        return [r for r in recs if r.repo == key]

    def reset_stats(self) -> None:
        with self._lock:
            self._records.clear()
            self._stats.clear()
            self._tls_failures = 0

    @contextlib.contextmanager
    def counting(self, name: str | None = None) -> Iterator[RepoStats]:
        """Yields a RepoStats that, after the block, holds only the requests made inside it."""
        before = self.stats(name)
        delta = RepoStats()
        yield delta
        after = self.stats(name)
        for f in RepoStats.__dataclass_fields__:
            setattr(delta, f, getattr(after, f) - getattr(before, f))

    # -- fault injection -----------------------------------------------------------------------

    def inject_error(
        self, status: int = 503, *, count: int | None = 1, repo: str | None = None
    ) -> None:
        """Answer the next `count` requests (all until clear_errors() when None) with `status`."""
        with self._lock:
            self._injections.append(
                _Injection(status, count, None if repo is None else repo.removesuffix(".git"))
            )

    def clear_errors(self) -> None:
        with self._lock:
            self._injections.clear()

    def _take_injection(self, repo: str | None) -> int | None:
        with self._lock:
            for inj in self._injections:
                if inj.repo is not None and inj.repo != repo:
                    continue
                if inj.remaining is not None:
                    inj.remaining -= 1
                    if inj.remaining <= 0:
                        self._injections.remove(inj)
                return inj.status
        return None

    # -- bookkeeping ---------------------------------------------------------------------------

    def _track_thread(self, thread: threading.Thread, *, add: bool) -> None:
        with self._lock:
            (self._threads.add if add else self._threads.discard)(thread)

    def _track_conn(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def _track_proc(self, proc: subprocess.Popen[bytes], *, add: bool) -> None:
        with self._lock:
            (self._procs.add if add else self._procs.discard)(proc)
