"""A local Git server for the first-run demo (`python -m testenv git-serve`, scripts/demo.sh).

It serves one bare repository over plain HTTP with basic auth (git http-backend behind
testenv.git_server), seeded from a directory of example files on first use. The repository,
the password and (when still free) the port are kept across runs, so what a user committed
survives a restart and a working copy keeps its remote. While serving, the address and the
credentials are in `<dir>/git-server.json` (mode 0600), which the demo reads; nothing prints
the password. It serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import threading
from pathlib import Path
from urllib.parse import quote, urlsplit

from testenv.git_repos import commit_tree, init_bare, rev_parse
from testenv.git_server import GitHTTPServer

INFO_FILE = "git-server.json"
PASSWORD_FILE = "git-password"  # noqa: S105 - a file name
PORT_FILE = "git-port"
USERNAME = "demo"


def _seed_files(seed: Path) -> dict[str, bytes]:
    return {
        path.relative_to(seed).as_posix(): path.read_bytes()
        for path in sorted(seed.rglob("*"))
        if path.is_file()
    }


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _password(directory: Path) -> str:
    path = directory / PASSWORD_FILE
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_urlsafe(16)
    _write_private(path, password)
    return password


def _port(directory: Path, wanted: int) -> int:
    """`wanted`, else the port of the last run when it is still free, else any."""
    if wanted:
        return wanted
    try:
        last = int((directory / PORT_FILE).read_text())
    except (OSError, ValueError):
        return 0
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", last))
        except OSError:
            return 0
    return last


def serve(directory: Path, seed: Path, name: str, port: int = 0) -> int:
    """Serve `<directory>/repos/<name>.git` until told to stop."""
    directory.mkdir(parents=True, exist_ok=True)
    directory = directory.resolve()
    repos = directory / "repos"
    repo = init_bare(repos / f"{name}.git")
    if rev_parse(repo, "main") is None:
        commit_tree(repo, _seed_files(seed), "Add the demo application")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    password = _password(directory)
    server = GitHTTPServer(
        repos,
        tls=False,
        username=USERNAME,
        password=password,
        bearer_auth=False,
        port=_port(directory, port),
        workdir=directory / "git-server",
    )
    info = directory / INFO_FILE
    with server:
        (directory / PORT_FILE).write_text(str(server.port))
        url = server.url_for(name)
        parts = urlsplit(url)
        credentials = f"{USERNAME}:{quote(password, safe='')}@{parts.netloc}"
        details = {
            "url": url,
            "username": USERNAME,
            "password": password,
            "clone_url": parts._replace(netloc=credentials).geturl(),
        }
        _write_private(info, json.dumps(details))
        print(f"serving {url}", flush=True)
        try:
            stop.wait()
        finally:
            info.unlink(missing_ok=True)
    return 0
