"""A real OpenSSH server (Debian's /usr/sbin/sshd) serving bare Git repositories, for tests.

It runs as the current user on 127.0.0.1 and a free port with a generated config, host key
(ed25519) and client key pairs (ed25519 and RSA), key-only authentication, no PAM. Clone URLs look
like ``ssh://<user>@127.0.0.1:<port>/abs/path/to/repo.git``.

Each session runs through a tiny ForceCommand wrapper that appends the requested command
(``git-upload-pack '/path/app.git'``) to a log before executing it, so tests can see which
repositories were accessed over SSH.

Needs openssh-server (``apt-get install -y openssh-server``). When run as root sshd also needs its
privilege-separation directory /run/sshd, which is created if missing.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

from testenv.git_repos import git_env
from testenv.pki import SSHKeyPair, generate_ssh_key, write_private

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = Path("/run/sshd")


class SSHDError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the usual race applies; callers retry)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after "(comm)": [state, ppid, ...], None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm may contain spaces and parentheses, so split after the last ")"
    return stat[stat.rfind(")") + 2 :].split()


def descendants(pid: int) -> list[tuple[int, str]]:
    """All descendants of `pid` as (pid, start time) pairs, so a later kill can check the pid
    still names the same process and not a recycled one."""
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None:
            continue
        children.setdefault(int(fields[1]), []).append((int(entry.name), fields[19]))
    out: list[tuple[int, str]] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            out.append(child)
            stack.append(child[0])
    return out


def _same_process_alive(pid: int, start_time: str) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[19] == start_time and fields[0] != "Z"


def _signal_if_same(pid: int, start_time: str, sig: int) -> None:
    if _same_process_alive(pid, start_time):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


class GitSSHServer:
    """sshd serving the bare repositories under `repos_root` with key-only auth."""

    def __init__(
        self,
        repos_root: Path | str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        workdir: Path | str | None = None,
        sshd: str = SSHD,
    ) -> None:
        if not Path(sshd).exists():
            raise SSHDError(
                f"{sshd} not found; install it with `apt-get install -y openssh-server`"
            )
        self.sshd = sshd
        self.repos_root = Path(repos_root).resolve()
        self.repos_root.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port
        self._fixed_port = port != 0
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="tidal-git-ssh-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

        self.host_key = generate_ssh_key("ed25519")
        self.host_key_path = write_private(
            self.workdir / "ssh_host_ed25519_key", self.host_key.private_pem
        )
        (self.workdir / "ssh_host_ed25519_key.pub").write_text(self.host_key.public_line + "\n")
        self.client_keys: dict[str, SSHKeyPair] = {
            "ed25519": generate_ssh_key("ed25519"),
            "rsa": generate_ssh_key("rsa"),
        }
        self.client_key_paths: dict[str, Path] = {}
        for kind, pair in self.client_keys.items():
            path = write_private(self.workdir / f"id_{kind}", pair.private_pem)
            path.with_suffix(".pub").write_text(pair.public_line + " tidal-test\n")
            self.client_key_paths[kind] = path
        self._other_host_key: SSHKeyPair | None = None
        self.authorized_keys_path = self.workdir / "authorized_keys"
        self.authorized: list[str] = [pair.public_line for pair in self.client_keys.values()]
        self._write_authorized_keys()
        self.command_log_path = self.workdir / "commands.log"
        self.command_log_path.touch()
        self.wrapper_path = self.workdir / "git-shell-wrapper"
        self.wrapper_path.write_text(
            "#!/bin/sh\n"
            f'printf "%s\\n" "$SSH_ORIGINAL_COMMAND" >> {shlex.quote(str(self.command_log_path))}\n'
            'exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"\n'
        )
        self.wrapper_path.chmod(0o755)
        self.config_path = self.workdir / "sshd_config"
        self.log_path = self.workdir / "sshd.log"
        self.pid_path = self.workdir / "sshd.pid"
        self.known_hosts_path = self.workdir / "known_hosts"
        self.wrong_known_hosts_path = self.workdir / "known_hosts.wrong"

    # -- keys and addressing -------------------------------------------------------------------

    @property
    def private_key_path(self) -> Path:
        """The ed25519 client private key (OpenSSH format, mode 0600)."""
        return self.client_key_paths["ed25519"]

    @property
    def public_key_path(self) -> Path:
        """The ed25519 client public key file (id_ed25519.pub)."""
        return self.private_key_path.with_suffix(".pub")

    @property
    def private_key_pem(self) -> bytes:
        return self.client_keys["ed25519"].private_pem

    @property
    def public_key(self) -> str:
        return self.client_keys["ed25519"].public_line

    @property
    def rsa_private_key_path(self) -> Path:
        return self.client_key_paths["rsa"]

    @property
    def rsa_public_key_path(self) -> Path:
        return self.rsa_private_key_path.with_suffix(".pub")

    @property
    def rsa_private_key_pem(self) -> bytes:
        return self.client_keys["rsa"].private_pem

    @property
    def known_hosts(self) -> str:
        """The known_hosts line for this server: "[127.0.0.1]:PORT ssh-ed25519 AAAA..."."""
        return f"{self._host_pattern()} {self.host_key.public_line}"

    def wrong_known_hosts(self) -> str:
        """A known_hosts line for this host and port with a different (wrong) ed25519 key."""
        if self._other_host_key is None:
            self._other_host_key = generate_ssh_key("ed25519")
        return f"{self._host_pattern()} {self._other_host_key.public_line}"

    def _host_pattern(self) -> str:
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    def repo_path(self, name: str) -> Path:
        return self.repos_root / f"{name.removesuffix('.git')}.git"

    def url_for(self, name: str) -> str:
        """ssh://user@127.0.0.1:PORT/abs/path/name.git"""
        return f"ssh://{self.user}@{self.host}:{self.port}{self.repo_path(name)}"

    def git_ssh_command(
        self, *, key: str | Path = "ed25519", known_hosts: Path | str | None = None
    ) -> str:
        """A GIT_SSH_COMMAND using the client key ("ed25519", "rsa" or a path) and a known_hosts
        file (default: a file with this server's correct line), strict host key checking on."""
        key_path = self.client_key_paths[key] if key in self.client_key_paths else Path(key)
        if known_hosts is None:
            self.known_hosts_path.write_text(self.known_hosts + "\n")
            known_hosts = self.known_hosts_path
        opts = [
            "ssh",
            "-i",
            str(key_path),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "IdentityAgent=none",
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
            "-F",
            "/dev/null",
        ]
        return shlex.join(opts)

    def git_env(
        self,
        *,
        key: str | Path = "ed25519",
        known_hosts: Path | str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """Environment for the git CLI (GIT_SSH_COMMAND set; see git_ssh_command)."""
        env = {"GIT_SSH_COMMAND": self.git_ssh_command(key=key, known_hosts=known_hosts)}
        if extra:
            env.update(extra)
        return git_env(env)

    def write_wrong_known_hosts(self) -> Path:
        """A known_hosts file holding only wrong_known_hosts()."""
        self.wrong_known_hosts_path.write_text(self.wrong_known_hosts() + "\n")
        return self.wrong_known_hosts_path

    def set_authorized_keys(self, public_lines: list[str]) -> None:
        """Replace the accepted client public keys (takes effect for new connections)."""
        self.authorized = list(public_lines)
        self._write_authorized_keys()

    def _write_authorized_keys(self) -> None:
        lines = [f"restrict {line.strip()}" for line in self.authorized]
        self.authorized_keys_path.write_text("\n".join(lines) + "\n")
        self.authorized_keys_path.chmod(0o600)

    def commands(self) -> list[str]:
        """Commands run over SSH so far, e.g. "git-upload-pack '/…/app.git'"."""
        return [ln for ln in self.command_log_path.read_text().splitlines() if ln]

    def reset_commands(self) -> None:
        self.command_log_path.write_text("")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- lifecycle -----------------------------------------------------------------------------

    def _write_config(self) -> None:
        wd = self.workdir
        lines = [
            f"Port {self.port}",
            f"ListenAddress {self.host}",
            "AddressFamily inet" if ":" not in self.host else "AddressFamily inet6",
            f"HostKey {self.host_key_path}",
            f"PidFile {wd / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.authorized_keys_path}",
            "AuthorizedPrincipalsFile none",
            "AuthorizedKeysCommand none",
            "StrictModes no",
            "UsePAM no",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "HostbasedAuthentication no",
            "GSSAPIAuthentication no",
            "PermitRootLogin prohibit-password",
            f"AllowUsers {self.user}",
            "PermitEmptyPasswords no",
            "PermitUserEnvironment no",
            "PermitTTY no",
            "X11Forwarding no",
            "AllowTcpForwarding no",
            "AllowAgentForwarding no",
            "PermitTunnel no",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "Banner none",
            "LoginGraceTime 30",
            "MaxAuthTries 6",
            "MaxStartups 64:30:128",
            "MaxSessions 32",
            "ClientAliveInterval 0",
            "AcceptEnv GIT_PROTOCOL",
            f"ForceCommand {self.wrapper_path}",
            "LogLevel VERBOSE",
        ]
        self.config_path.write_text("\n".join(lines) + "\n")

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self, timeout: float = 10) -> Self:
        """Start sshd (again on the same port after stop()); wait until it accepts connections."""
        if self.running:
            return self
        if os.geteuid() == 0 and not PRIVSEP_DIR.is_dir():
            PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
        attempts = 1 if (self._fixed_port or self.port) else 5
        last_error = ""
        for _ in range(attempts):
            if self.port == 0:
                self.port = free_port(self.host)
            self._write_config()
            check = subprocess.run(
                [self.sshd, "-t", "-f", str(self.config_path)],
                capture_output=True,
                text=True,
                check=False,
            )
            if check.returncode != 0:
                raise SSHDError(f"sshd config test failed: {check.stderr.strip()}")
            self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            with self.log_path.open("ab") as log:
                self._proc = subprocess.Popen(
                    [self.sshd, "-D", "-e", "-f", str(self.config_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
            if self._wait_listening(timeout):
                return self
            last_error = self.log_text()[-2000:]
            self._kill_proc()
            if "Address already in use" in last_error and not self._fixed_port:
                self.port = 0
                continue
            break
        raise SSHDError(f"sshd did not start on {self.host}:{self.port}:\n{last_error}")

    def _wait_listening(self, timeout: float) -> bool:
        """Wait for sshd's "Server listening on" log line (it is written after listen())."""
        deadline = time.monotonic() + timeout
        needle = f"Server listening on {self.host} port {self.port}".encode()
        while time.monotonic() < deadline:
            assert self._proc is not None
            if needle in self.log_path.read_bytes()[self._log_offset :]:
                return True
            if self._proc.poll() is not None:
                return False
            time.sleep(0.01)
        return False

    def _kill_proc(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        # Per-connection sshd children call setsid(), so collect the whole tree first; end the
        # children while the listener still lives to reap them, then the listener.
        victims = descendants(proc.pid)
        for pid, start in victims:
            _signal_if_same(pid, start, signal.SIGTERM)
        deadline = time.monotonic() + 3
        for pid, start in victims:
            while _same_process_alive(pid, start) and time.monotonic() < deadline:
                time.sleep(0.01)
            _signal_if_same(pid, start, signal.SIGKILL)
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop(self) -> None:
        """Terminate sshd and its session processes; the port is kept for a later start()."""
        self._kill_proc()
        with contextlib.suppress(FileNotFoundError):
            self.pid_path.unlink()

    def restart(self) -> Self:
        self.stop()
        return self.start()

    def close(self) -> None:
        """stop() and remove the per-instance work directory (keys, config, logs)."""
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
