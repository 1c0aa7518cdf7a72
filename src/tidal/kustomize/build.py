"""Running kustomize: the Go kustomize API (pykustomize) behind Flux's build rules.

A build (spec §5.2 step 11) goes through four steps:

1. `confine.plan` checks every reference reachable from the kustomization (nothing absolute,
   nothing outside the artifact, no symlink, no remote base unless allowed, no Helm, no plugin
   configuration it cannot see) and lists the files the build reads.
2. Those files are hard-linked into a private directory, with the kustomization file from
   `tidal.kustomize.generator` written in place of the original. The shared, unpacked artifact
   is never written to, and kustomize finds nothing there that the plan did not check. With
   spec.decryption, a `ViewDecryptor` then replaces the SOPS-encrypted secretGenerator sources
   and patches in that private view by their plaintext (new files, never through a link).
3. kustomize builds it as Flux's `SecureBuild` does: load restrictions off (the plan confines
   instead), plugins and exec functions disabled, no Helm, no `managed-by` label, resources in
   depth-first input order (Flux passes no reorder option, which kustomize treats as "none").
4. The YAML output is read with `tidal.kube.yamlio` (the value typing Flux's controller
   applies; pykustomize's own JSON output rounds integers beyond 2^53 and keeps a NEL that
   Flux reads as a space), capped in size, and every object must have apiVersion, kind and
   metadata.name.

Where kustomize runs matters more than usual, because pykustomize is Go loaded into the
process, and Go does not play by Python's rules:

- A panic in kustomize (an invalid `openapi` schema is enough) aborts the whole process; Flux
  recovers them. pykustomize keeps the last error in one process-wide variable, so two builds
  failing at once can swap messages (measured: a 2 ms gap between the call and the read crossed
  200 times out of 200). kustomize's OpenAPI schema is process-wide too: one build's `openapi`
  field changes how later builds merge patches (Flux resets it around each build).
- A Go call cannot be interrupted. A build that hangs (a remote base that never answers) keeps
  its thread until it returns.

So the default, `isolation="process"`, runs kustomize in worker processes (`workers` of them,
one build at a time each): a crash fails that build with the panic's text and the worker is
replaced; a timeout kills the worker's process group; a build that set `openapi` retires its
worker, and a new worker parses the built-in schema first, so that a custom one adds to it as
in Flux; workers get an empty environment and home directory, so the git that kustomize runs for
remote bases finds no credentials, agent or configuration; kustomize's deprecation warnings stay
in the worker. `isolation="thread"` runs local builds in this process, one at a time behind a
lock, on one dedicated thread; a timed-out build is abandoned there, keeps that thread (and the
lock) until Go returns, and the builds queued behind it time out in turn. It still sends remote
and `openapi` builds to a worker. It is meant for short-lived trusted use (a CLI, benchmarks).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import stat
import struct
import sys
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, Protocol

from tidal.kube import yamlio
from tidal.kustomize.confine import ConfinementError, Plan, plan, resolve_path
from tidal.kustomize.generator import Generated, Overlay, generate

__all__ = [
    "BuildCrashError",
    "BuildError",
    "BuildRefusedError",
    "BuildTimeoutError",
    "Engine",
    "OutputTooLargeError",
    "build",
    "build_kustomization",
    "default_engine",
    "make_view",
]

Reorder = Literal["none", "legacy"]
Isolation = Literal["process", "thread"]


class ViewDecryptor(Protocol):
    """Decrypts the files of a private build view before kustomize reads them.

    `decrypt_view` runs in a worker thread; it returns whether any file of the view now holds
    plaintext (such a build is never cached). A cached build skips it: the same artifact passed
    its checks when it was built.
    """

    def decrypt_view(self, build_plan: Plan, view: Path) -> bool: ...


class BuildError(Exception):
    """kustomize could not build; the message reads like Flux's BuildFailed condition."""


class BuildRefusedError(BuildError):
    """The build would read outside the artifact, or something that cannot be checked."""


class BuildTimeoutError(BuildError):
    """The build did not finish in time (in thread isolation it goes on in the background)."""


class BuildCrashError(BuildError):
    """kustomize aborted its process (a Go panic); the worker has been replaced."""


class OutputTooLargeError(BuildError):
    """The build's YAML output is larger than the limit."""


_PREFIX: Final = "kustomize build failed: "


# --- the Go call -------------------------------------------------------------------------------

# pykustomize keeps the last error in one process-wide variable, and kustomize itself has
# process-wide state (Flux serialises its builds behind a mutex for the same reason).
_GO_LOCK: Final = threading.Lock()


def _options(reorder: Reorder) -> bytes:
    return json.dumps(
        {
            "load_restrictions": 1,  # LoadRestrictionsNone: confine.plan confines instead
            "reorder": reorder,
            "add_managedby_label": False,
            "enable_plugins": False,
            "enable_helm": False,
            "helm_command": "",
        }
    ).encode()


def _render(directory: Path, reorder: Reorder, max_output_bytes: int) -> str:
    """kustomize's YAML output for a directory; raises BuildError."""
    from pykustomize._ffi import ffi, get_library

    lib = get_library()
    result = ffi.new("char**")
    with _GO_LOCK:
        code = lib.pykustomize_build(str(directory).encode(), _options(reorder), result)
        if code != 0:
            err = lib.pykustomize_last_error()
            message = ffi.string(err).decode("utf-8", "replace") if err != ffi.NULL else ""
    if code != 0:
        message = message or "unknown error"
        raise BuildError(message if message.startswith(_PREFIX) else _PREFIX + message)
    try:
        # Reading at most one byte more than allowed avoids copying an oversized output.
        data: bytes = ffi.string(result[0], max_output_bytes + 1)
    finally:
        lib.pykustomize_free(result[0])
    if len(data) > max_output_bytes:
        raise OutputTooLargeError(
            f"{_PREFIX}output is larger than the limit of {max_output_bytes} bytes"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BuildError(f"{_PREFIX}output is not UTF-8: {exc}") from None


def _parse(text: str) -> list[dict[str, Any]]:
    try:
        return yamlio.load_all(text, source="kustomize output")
    except yamlio.ManifestError as exc:
        raise BuildError(f"{_PREFIX}{exc}") from None


def _render_objects(directory: Path, reorder: Reorder, max_output_bytes: int) -> list[Any]:
    return _parse(_render(directory, reorder, max_output_bytes))


# --- output checks ------------------------------------------------------------------------------


def _present(value: Any) -> bool:
    return value is not None and value != ""


def _check_identity(objects: list[Any]) -> list[dict[str, Any]]:
    """kustomize-controller's check: every object has apiVersion, kind and metadata.name."""
    for obj in objects:
        metadata = obj.get("metadata") if isinstance(obj, dict) else None
        name = metadata.get("name") if isinstance(metadata, dict) else None
        if not (
            isinstance(obj, dict)
            and _present(obj.get("apiVersion"))
            and _present(obj.get("kind"))
            and _present(name)
        ):
            raise BuildError(
                f"failed to decode Kubernetes apiVersion, kind and name from: {_go_json(obj)}"
            )
    return objects


def _go_json(obj: Any) -> str:
    """encoding/json's compact form (sorted keys, HTML characters escaped), as kustomize prints
    a resource in this error."""
    text = json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escape)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


# --- the private view of the artifact -----------------------------------------------------------


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        # Never through a symlink, even one swapped in after the plan looked.
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        # Another filesystem (EXDEV) or one without hard links: a copy is as private.
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as source, dst.open("wb") as target:
            shutil.copyfileobj(source, target)
    if not stat.S_ISREG(dst.lstat().st_mode):
        raise ConfinementError(f"{src} is no longer a regular file")


def make_view(
    root: Path, build_plan: Plan, overrides: Mapping[str, bytes], destination: Path
) -> None:
    """Populate `destination` with the planned files (hard links) and the overriding files.

    Every overriding file is freshly written, so its inode is never one of the artifact's.
    """
    for rel in sorted(build_plan.dirs):
        (destination / rel).mkdir(parents=True, exist_ok=True)
    for rel in sorted(build_plan.files):
        target = destination / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        content = overrides.get(rel)
        if content is not None:
            target.write_bytes(content)
        else:
            _link_or_copy(root / rel, target)


# --- worker processes ---------------------------------------------------------------------------

_FRAME: Final = struct.Struct(">Q")
_WORKER_HOME_PREFIX: Final = "tidal-kustomize-worker-"
_STDERR_TAIL: Final = 16384
_WARM_UP_KUSTOMIZATION: Final = (
    b"resources: [deployment.yaml]\n"
    b"patches:\n- patch: |\n    apiVersion: apps/v1\n    kind: Deployment\n"
    b"    metadata: {name: warm-up}\n    spec: {template: {spec: {containers: [{name: a}]}}}\n"
)
_WARM_UP_DEPLOYMENT: Final = b"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: warm-up}\n"


def _read_frame(stream: Any) -> Any:
    header = stream.read(_FRAME.size)
    if len(header) < _FRAME.size:
        return None
    (size,) = _FRAME.unpack(header)
    return json.loads(stream.read(size))


def _worker_main() -> None:
    """A worker: frames of JSON requests on stdin, responses on the original stdout."""
    requests = sys.stdin.buffer
    responses = os.fdopen(os.dup(1), "wb")
    # Nothing but frames may reach the protocol pipe, whatever Go or Python print.
    os.dup2(2, 1)
    with tempfile.TemporaryDirectory() as warm:
        # Parse kustomize's built-in OpenAPI schema now: the first real build is then as fast
        # as the others, and a custom `openapi` schema adds to the built-in one, as in Flux.
        Path(warm, "kustomization.yaml").write_bytes(_WARM_UP_KUSTOMIZATION)
        Path(warm, "deployment.yaml").write_bytes(_WARM_UP_DEPLOYMENT)
        with contextlib.suppress(BuildError):
            _render(Path(warm), "none", 1 << 20)
    while True:
        request = _read_frame(requests)
        if request is None:
            # The engine went away without stopping this worker (its process exited): the
            # private home is this worker's to remove.
            home = Path(os.environ.get("HOME", ""))
            if home.name.startswith(_WORKER_HOME_PREFIX):
                shutil.rmtree(home, ignore_errors=True)
            return
        try:
            objects = _render_objects(
                Path(request["directory"]), request["reorder"], request["max_output_bytes"]
            )
            response: dict[str, Any] = {"objects": objects}
        except BuildError as exc:
            response = {"error": str(exc), "type": type(exc).__name__}
        body = json.dumps(response, ensure_ascii=False).encode("utf-8", "surrogatepass")
        responses.write(_FRAME.pack(len(body)) + body)
        responses.flush()


_WORKER_BOOT: Final = (
    "import sys; sys.path.insert(0, {path!r}); "
    "from tidal.kustomize.build import _worker_main; _worker_main()"
)
# Where the tidal package is imported from, for workers started in isolated mode (-I).
_PACKAGE_ROOT: Final = str(Path(__file__).resolve().parents[2])
_ERRORS: Final[dict[str, type[BuildError]]] = {
    "BuildError": BuildError,
    "OutputTooLargeError": OutputTooLargeError,
}


class _Worker:
    def __init__(self, proc: asyncio.subprocess.Process, home: Path) -> None:
        self.proc = proc
        self.home = home
        self.stderr = bytearray()
        self.drain = asyncio.create_task(self._drain())

    @classmethod
    async def start(cls) -> _Worker:
        home = Path(tempfile.mkdtemp(prefix=_WORKER_HOME_PREFIX))
        (home / "tmp").mkdir()
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "TMPDIR": str(home / "tmp"),
            "LANG": "C.UTF-8",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_ASKPASS": "/bin/false",
            "SSH_ASKPASS": "/bin/false",
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-c",
            _WORKER_BOOT.format(path=_PACKAGE_ROOT),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=home,
            start_new_session=True,
        )
        return cls(proc, home)

    async def _drain(self) -> None:
        assert self.proc.stderr is not None
        while chunk := await self.proc.stderr.read(65536):
            self.stderr += chunk
            del self.stderr[:-_STDERR_TAIL]

    async def request(self, payload: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        body = json.dumps(payload).encode()
        self.proc.stdin.write(_FRAME.pack(len(body)) + body)
        await self.proc.stdin.drain()
        header = await self.proc.stdout.readexactly(_FRAME.size)
        (size,) = _FRAME.unpack(header)
        response: dict[str, Any] = json.loads(await self.proc.stdout.readexactly(size))
        return response

    def crash_report(self) -> str:
        text = self.stderr.decode("utf-8", "replace")
        for line in text.splitlines():
            if line.startswith(("panic:", "fatal error:")):
                return line
        lines = [line for line in text.splitlines() if line.strip()]
        return lines[-1] if lines else f"exit status {self.proc.returncode}"

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            await self.proc.wait()
        with contextlib.suppress(asyncio.CancelledError):
            await self.drain
        shutil.rmtree(self.home, ignore_errors=True)


class _Pool:
    """Worker processes, each serving one build at a time, started on demand: a second one
    only when builds overlap (last in, first out, so a started worker is reused first)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.idle: asyncio.Queue[_Worker | None] = asyncio.LifoQueue()
        for _ in range(size):
            self.idle.put_nowait(None)

    async def run(
        self, directory: Path, reorder: Reorder, max_output_bytes: int, retire: bool
    ) -> list[Any]:
        worker = await self.idle.get()
        try:
            if worker is not None and worker.proc.returncode is not None:
                await worker.stop()
                worker = None
            if worker is None:
                worker = await _Worker.start()
            try:
                response = await worker.request(
                    {
                        "directory": str(directory),
                        "reorder": reorder,
                        "max_output_bytes": max_output_bytes,
                    }
                )
            except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError):
                # Let the dying worker finish writing its panic to stderr before reading it.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(worker.proc.wait(), 5)
                    await asyncio.wait_for(worker.drain, 5)
                report = worker.crash_report()
                await worker.stop()
                worker = None
                raise BuildCrashError(f"{_PREFIX}kustomize crashed: {report}") from None
            except BaseException:
                # Cancelled (a timeout) in the middle of a build: the worker is still in Go.
                await worker.stop()
                worker = None
                raise
            if retire:
                await worker.stop()
                worker = None
        finally:
            self.idle.put_nowait(worker)
        if "error" in response:
            raise _ERRORS.get(response.get("type", ""), BuildError)(response["error"])
        objects: list[Any] = response["objects"]
        return objects

    async def aclose(self) -> None:
        for _ in range(self.size):
            worker = await self.idle.get()
            if worker is not None:
                await worker.stop()


# --- the engine ---------------------------------------------------------------------------------


@dataclass
class _Thread:
    executor: ThreadPoolExecutor

    async def run(self, directory: Path, reorder: Reorder, max_output_bytes: int) -> list[Any]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.executor, _render_objects, directory, reorder, max_output_bytes
        )


class _BuildCache:
    """Build outputs as compact JSON, least recently used first out beyond `limit` bytes.
    Stored serialised so that callers, which modify the objects they get, never share them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self._entries: OrderedDict[Hashable, bytes] = OrderedDict()

    def get(self, key: Hashable) -> list[dict[str, Any]] | None:
        data = self._entries.get(key)
        if data is None:
            return None
        self._entries.move_to_end(key)
        objects: list[dict[str, Any]] = json.loads(data)
        return objects

    def put(self, key: Hashable, objects: list[dict[str, Any]]) -> None:
        data = json.dumps(objects, separators=(",", ":")).encode()
        if len(data) > self.limit // 4:
            return  # one huge build must not push everything else out
        old = self._entries.pop(key, None)
        self.size += len(data) - (len(old) if old is not None else 0)
        self._entries[key] = data
        while self.size > self.limit and self._entries:
            _, evicted = self._entries.popitem(last=False)
            self.size -= len(evicted)


class Engine:
    """Builds kustomizations; see the module docstring for what `isolation` trades.

    `workers` bounds how many builds run at once in process isolation (in thread isolation
    one build runs at a time, as in Flux). `workspace` is where private views are made; put it
    on the artifacts' filesystem so that views are hard links rather than copies.

    A build given a `cache_key` (the digest of an immutable artifact) is remembered: the same
    key, path, generated kustomization file and options give the same objects without running
    kustomize again, as long as nothing was fetched from a remote base (which may change
    behind the same digest). `cache_bytes` bounds the memory this takes.
    """

    def __init__(
        self,
        *,
        isolation: Isolation = "process",
        workers: int = 1,
        workspace: Path | str | None = None,
        cache_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.isolation: Isolation = isolation
        self.workers = workers
        self.workspace = Path(workspace) if workspace is not None else None
        self._pool: _Pool | None = None
        self._thread: _Thread | None = None
        self._cache = _BuildCache(cache_bytes)

    def _process_pool(self) -> _Pool:
        if self._pool is None:
            self._pool = _Pool(self.workers)
        return self._pool

    async def build(
        self,
        root: Path | str,
        path: str,
        *,
        generated: Generated | None = None,
        allow_remote_bases: bool = False,
        # The deadline is the engine's to enforce: in process isolation it kills the worker.
        timeout: float,  # noqa: ASYNC109
        max_output_bytes: int,
        reorder: Reorder = "none",
        cache_key: str = "",
        decryptor: ViewDecryptor | None = None,
    ) -> list[dict[str, Any]]:
        """The objects kustomize builds from `path` (spec.path) in the artifact at `root`.

        With `generated` (from `generator.generate` for the same root and path), the build sees
        that kustomization file, as Flux's does. `reorder="legacy"` gives `kubectl kustomize`'s
        order instead of Flux's. Raises BuildError (subclasses for refusals, timeouts, crashes
        and oversized output), or whatever `decryptor` raises. `cache_key`: see the class
        docstring.
        """
        key = (
            (cache_key, path, generated.content if generated else None, allow_remote_bases,
             reorder, max_output_bytes, decryptor is not None)
            if cache_key
            else None
        )  # fmt: skip
        if key is not None:
            cached = self._cache.get(key)
            if cached is not None:
                return cached
        try:
            async with asyncio.timeout(timeout):
                objects, remote, plaintext = await self._build(
                    Path(root),
                    path,
                    generated,
                    allow_remote_bases,
                    max_output_bytes,
                    reorder,
                    decryptor,
                )
        except TimeoutError:
            raise BuildTimeoutError(
                f"{_PREFIX}timeout after {timeout:g}s (kustomize is still running in the "
                "background)"
                if self.isolation == "thread"
                else f"{_PREFIX}timeout after {timeout:g}s"
            ) from None
        # A build that read decrypted files holds plaintext the next key rotation must not
        # outlive; one that read no ciphertext depends on the artifact alone.
        if key is not None and not remote and not plaintext:
            self._cache.put(key, objects)
        return objects

    async def _build(
        self,
        root: Path,
        path: str,
        generated: Generated | None,
        allow_remote_bases: bool,
        max_output_bytes: int,
        reorder: Reorder,
        decryptor: ViewDecryptor | None,
    ) -> tuple[list[dict[str, Any]], bool, bool]:
        """The objects, whether a remote base was part of the build, and whether it read
        decrypted files."""
        root = await asyncio.to_thread(root.resolve)
        try:
            directory = await asyncio.to_thread(resolve_path, root, path)
        except ConfinementError as exc:
            raise BuildRefusedError(f"{_PREFIX}{exc}") from exc
        overrides: dict[str, bytes] = {}
        if generated is not None:
            if generated.directory != directory:
                raise ValueError(
                    f"the generated kustomization is for {generated.directory!r}, not {path!r}"
                )
            overrides[generated.file] = generated.content
        view_parent = self.workspace
        if view_parent is not None:
            view_parent.mkdir(parents=True, exist_ok=True)
        view = Path(tempfile.mkdtemp(prefix="build-", dir=view_parent))
        prepared = asyncio.ensure_future(
            asyncio.to_thread(
                self._prepare, root, directory, overrides, allow_remote_bases, view, decryptor
            )
        )
        try:
            try:
                build_plan, plaintext = await asyncio.shield(prepared)
            except ConfinementError as exc:
                raise BuildRefusedError(f"{_PREFIX}{exc}") from exc
            target = view / directory if directory else view
            if self.isolation == "thread" and not build_plan.remote and not build_plan.openapi:
                if self._thread is None:
                    self._thread = _Thread(
                        ThreadPoolExecutor(max_workers=1, thread_name_prefix="kustomize")
                    )
                objects = await self._thread.run(target, reorder, max_output_bytes)
            else:
                objects = await self._process_pool().run(
                    target, reorder, max_output_bytes, retire=build_plan.openapi
                )
            return _check_identity(objects), bool(build_plan.remote), plaintext
        finally:
            if prepared.done():
                await asyncio.to_thread(shutil.rmtree, view, True)
            else:
                # Timed out while the view was being made: remove it once that thread is done.
                prepared.add_done_callback(lambda done: _remove_view(done, view))

    @staticmethod
    def _prepare(
        root: Path,
        directory: str,
        overrides: Mapping[str, bytes],
        allow_remote_bases: bool,
        view: Path,
        decryptor: ViewDecryptor | None,
    ) -> tuple[Plan, bool]:
        build_plan = plan(root, directory, overrides=overrides, allow_remote=allow_remote_bases)
        make_view(root, build_plan, overrides, view)
        plaintext = decryptor.decrypt_view(build_plan, view) if decryptor is not None else False
        return build_plan, plaintext

    async def aclose(self) -> None:
        """Stop the workers (a build still running in thread isolation is left to finish)."""
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None
        if self._thread is not None:
            self._thread.executor.shutdown(wait=False, cancel_futures=True)
            self._thread = None


def _remove_view(prepared: asyncio.Future[tuple[Plan, bool]], view: Path) -> None:
    if not prepared.cancelled():
        prepared.exception()  # retrieved: the build that wanted it has already failed
    asyncio.get_running_loop().run_in_executor(None, shutil.rmtree, view, True)


_default: tuple[asyncio.AbstractEventLoop, Engine] | None = None


def default_engine() -> Engine:
    """The process-isolated engine shared by `build` within the running event loop."""
    global _default
    loop = asyncio.get_running_loop()
    if _default is None or _default[0] is not loop:
        _default = (loop, Engine())
    return _default[1]


async def build(
    root: Path | str,
    path: str,
    *,
    generated: Generated | None = None,
    allow_remote_bases: bool = False,
    timeout: float,  # noqa: ASYNC109 - enforced by the engine, see Engine.build
    max_output_bytes: int,
    reorder: Reorder = "none",
) -> list[dict[str, Any]]:
    """`Engine.build` on the default engine (one worker process)."""
    return await default_engine().build(
        root,
        path,
        generated=generated,
        allow_remote_bases=allow_remote_bases,
        timeout=timeout,
        max_output_bytes=max_output_bytes,
        reorder=reorder,
    )


async def build_kustomization(
    root: Path | str,
    path: str,
    overlay: Overlay | None = None,
    *,
    allow_remote_bases: bool = False,
    timeout: float,  # noqa: ASYNC109 - enforced by the engine, see Engine.build
    max_output_bytes: int,
    engine: Engine | None = None,
    cache_key: str = "",
    decryptor: ViewDecryptor | None = None,
) -> list[dict[str, Any]]:
    """Flux's steps 10 and 11: generate the kustomization file for the spec, then build.

    Raises GeneratorError (step 10) or BuildError (step 11); the timeout covers both.
    `cache_key` is the artifact's digest when `root` is an immutable unpacked artifact.
    """
    engine = engine or default_engine()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        async with asyncio.timeout_at(deadline):
            generated = await asyncio.to_thread(generate, Path(root), path, overlay)
    except TimeoutError:
        raise BuildTimeoutError(f"{_PREFIX}timeout after {timeout:g}s") from None
    return await engine.build(
        root,
        path,
        generated=generated,
        allow_remote_bases=allow_remote_bases,
        timeout=max(deadline - loop.time(), 0.0),
        max_output_bytes=max_output_bytes,
        cache_key=cache_key,
        decryptor=decryptor,
    )
