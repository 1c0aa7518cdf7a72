"""flux's bootstrap, step by step, with its progress lines (pkg/bootstrap, PlainGitBootstrapper):

1. components: clone the branch; write gotk-components.yaml; commit "Add Flux <version>
   component manifests" and push, only when it changed; apply it to the cluster unless the
   sync Kustomization already applied a revision (after that, Git is how tidal upgrades
   itself);
2. source secret: write the Secret the cluster syncs with, unless it exists and the flags say
   nothing about its content;
3. sync: refuse to move an existing sync Kustomization to another path; write gotk-sync.yaml
   and, when missing, kustomization.yaml; commit "Add Flux sync manifests" and push, only when
   something changed (a push the remote refuses because the branch moved is retried on a fresh
   clone); apply what the directory builds to;
4. health: wait until the GitRepository and the Kustomization report the pushed commit, then
   until tidal's Deployment is ready. All three are checked; the failures are summed up.
   (When this run pushed, the GitRepository is asked to reconcile at once, as `reconcile`
   asks; flux waits for its interval.)

What is applied is what flux applies: with a kustomization.yaml in the directory, what
kustomize builds from it (a user's patches included), otherwise the one file.
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import click

from tidal.api.meta import RECONCILE_REQUEST_ANNOTATION
from tidal.bootstrap import health, manifests
from tidal.bootstrap.access import Access, shown
from tidal.bootstrap.checkout import Checkout, PushConflictError
from tidal.cli import gitsecret
from tidal.cli.cluster import POLL_INTERVAL, Session, create_or_update, merge_patch
from tidal.cli.objects import GIT_REPOSITORY, KUSTOMIZATION, ObjectKind
from tidal.cli.options import CliError
from tidal.cli.output import log
from tidal.cli.readiness import CURRENT, FAILED, sleep_until_next_poll
from tidal.cli.reconcile import rfc3339_nano
from tidal.install import apply
from tidal.install import manifests as install
from tidal.kube import yamlio
from tidal.kube.client import ApiError
from tidal.kube.discovery import Discovery
from tidal.kustomize.build import BuildError, Engine
from tidal.runtime.poll import poll_until
from tidal.source.git import (
    AuthenticationError,
    GitError,
    HostKeyError,
    RefNotFoundError,
    RepositoryNotFoundError,
)

CLONE_RETRY_DELAY: Final = 2.0
# Errors another clone a moment later cannot fix.
_FINAL_CLONE_ERRORS: Final = (
    AuthenticationError,
    HostKeyError,
    RefNotFoundError,
    RepositoryNotFoundError,
)
_MAX_SYNC_ATTEMPTS: Final = 3
_MAX_BUILD_OUTPUT: Final = 64 << 20
_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
_CRD_PATH: Final = (
    "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gitrepositories."
    "source.toolkit.fluxcd.io"
)


class HealthError(Exception):
    """One health report failed; bootstrap goes on to the next and fails at the end."""


@dataclass(frozen=True)
class Options:
    url: str  # as given: cloned from and pushed to
    branch: str
    access: Access
    install: install.InstallOptions
    components: tuple[str, ...]
    sync: manifests.SyncOptions
    author: bytes
    message_appendix: str = ""
    silent: bool = False
    force: bool = False
    # The flags asked for token authentication; when they did not and the URL is HTTP(S), the
    # cluster syncs over SSH, which a failing host key scan is worth explaining.
    token_auth: bool = False


def _aggregate(errors: list[str]) -> str:
    """apimachinery's NewAggregate().Error(): one message as it is, several in brackets."""
    return errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"


class Bootstrap:
    def __init__(self, s: Session, o: Options, checkout: Checkout) -> None:
        self.s = s
        self.o = o
        self.checkout = checkout
        self.directory = manifests.sync_directory(o.sync.target_path, o.sync.namespace)
        self._engine: Engine | None = None
        self._pushed = False

    @property
    def namespace(self) -> str:
        return self.o.sync.namespace

    @property
    def name(self) -> str:
        return self.o.sync.name

    def _file(self, name: str) -> str:
        return posixpath.join(self.directory, name)

    def _message(self, text: str) -> str:
        appendix = self.o.message_appendix
        return f"{text}\n\n{appendix}" if appendix else text

    async def run(self) -> None:
        # What can fail without touching Git is done first, so that a failure leaves the
        # repository as it was (flux checks the sync path and scans the SSH host only after
        # pushing the components); the progress lines keep flux's order.
        await self.confirm()
        await self._check_sync_path()
        secret = await self._prepare_secret()
        await self.reconcile_components()
        await self.reconcile_source_secret(secret)
        await self.reconcile_sync()
        failures: list[str] = []
        for report in (self.report_source, self.report_kustomization, self.report_components):
            try:
                await report()
            except HealthError as e:
                failures.append(str(e))
        if failures:
            raise CliError(
                f"bootstrap failed with {len(failures)} health check failure(s): "
                f"{_aggregate(failures)}"
            )

    # -- preflight -----------------------------------------------------------------------------

    async def confirm(self) -> None:
        """flux's confirmBootstrap: an installation another tool manages is only taken over
        when the user says so (or --force)."""
        if self.o.force:
            return
        try:
            crd = await self.s.kube.get(_CRD_PATH)
        except ApiError as e:
            if e.status == 404:
                return
            raise
        labels = (crd.get("metadata") or {}).get("labels") or {}
        manager = labels.get(_MANAGED_BY, "")
        if manager in ("", "flux", install.PART_OF):
            return
        version = labels.get("app.kubernetes.io/version", "")
        click.echo(f"Flux {version} has been installed on this cluster with {manager}!", err=True)
        if not _confirm(f"Are you sure you want to override the {manager} installation? Y/N"):
            raise CliError("bootstrap cancelled")

    # -- Git -----------------------------------------------------------------------------------

    async def _clone(self, *, announce: bool = True) -> None:
        if announce:
            log.action(
                f'cloning branch "{self.o.branch}" from Git repository "{shown(self.o.url)}"'
            )
        for attempt in (1, 2):
            try:
                await self.checkout.clone(self.s.remaining())
                break
            except GitError as e:
                log.warning(f" clone failure: {e}")
                if attempt == 2 or isinstance(e, _FINAL_CLONE_ERRORS):
                    raise CliError(f"failed to clone repository: {e}{_clone_hint(e)}") from None
                await asyncio.sleep(CLONE_RETRY_DELAY)
        if announce:
            log.success("cloned repository")

    async def _commit_and_push(self, what: str, message: str) -> bool:
        """Commit what is staged; push it. False when there was nothing to commit."""
        sha = self.checkout.commit(self._message(message), self.o.author)
        if sha is None:
            log.success(f"{what} are up to date")
            return False
        log.success(f'committed {what} to "{self.o.branch}" ("{sha}")')
        log.action(f'pushing {what} to "{shown(self.o.url)}"')
        await self.checkout.push(self.s.remaining())
        self._pushed = True
        return True

    # -- applying ------------------------------------------------------------------------------

    def _load(self, path: str) -> list[dict[str, Any]]:
        content = self.checkout.read(path) or b""
        try:
            return yamlio.load_all(content, source=path)
        except yamlio.ManifestError as e:
            raise CliError(f"cannot read {path}: {e}") from None

    async def _objects(self, fallback: str) -> list[dict[str, Any]]:
        """What flux applies: the build of the directory's kustomization.yaml when it has one,
        else the file `fallback`."""
        kustomization = self.checkout.read(self._file(manifests.KUSTOMIZATION_FILE))
        if kustomization is None:
            return self._load(fallback)
        if kustomization.decode("utf-8", "replace") == manifests.DEFAULT_KUSTOMIZATION:
            # What kustomize builds from flux's own file: the two files, as they are.
            return self._load(self._file(manifests.COMPONENTS_FILE)) + self._load(
                self._file(manifests.SYNC_FILE)
            )
        return await self._build()

    async def _build(self) -> list[dict[str, Any]]:
        if self._engine is None:
            self._engine = Engine(isolation="thread")
        with tempfile.TemporaryDirectory(prefix="tidal-bootstrap-build-") as tmp:
            root = Path(tmp)
            for rel, content in self.checkout.files_under(self.directory).items():
                target = root / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
            try:
                return await self._engine.build(
                    root,
                    ".",
                    timeout=max(self.s.remaining(), 1.0),
                    max_output_bytes=_MAX_BUILD_OUTPUT,
                )
            except BuildError as e:
                raise CliError(f"kustomize build of {self.directory} failed: {e}") from None

    async def _apply(self, objects: list[dict[str, Any]]) -> None:
        if not objects:
            raise CliError(f"no Kubernetes objects found in {self.directory}")
        await apply.apply_all(
            self.s.kube, manifests.apply_order(objects), within=max(self.s.remaining(), 1.0)
        )

    # -- 1. components -------------------------------------------------------------------------

    async def _must_install(self) -> bool:
        try:
            ks = await self.s.kube.get(KUSTOMIZATION.path(self.namespace, self.name))
        except ApiError:
            return True
        return not (ks.get("status") or {}).get("lastAppliedRevision")

    async def reconcile_components(self) -> None:
        if not self.checkout.cloned:
            await self._clone()
        log.action("generating component manifests")
        text = manifests.components_text(self.o.install, self.o.components)
        log.success("generated component manifests")
        components = self._file(manifests.COMPONENTS_FILE)
        self.checkout.write({components: text.encode()})
        version = manifests.version(self.o.install)
        try:
            await self._commit_and_push(
                "component manifests", f"Add Flux {version} component manifests"
            )
        except GitError as e:
            raise CliError(f"failed to push manifests: {e}") from None
        if await self._must_install():
            log.action(f'installing components in "{self.namespace}" namespace')
            await self._apply(await self._objects(components))
            log.success("installed components")
        log.success("reconciled components")

    # -- 2. source secret ----------------------------------------------------------------------

    def _secret_key(self) -> str:
        opts = self.o.access.secret
        return f"{opts.namespace}/{opts.name}"

    def _secret_path(self) -> str:
        opts = self.o.access.secret
        return f"/api/v1/namespaces/{opts.namespace}/secrets/{opts.name}"

    async def _prepare_secret(self) -> dict[str, Any] | None:
        """The Secret to write, None when the existing one stays (it exists and the flags say
        nothing about its content)."""
        try:
            await self.s.kube.get(self._secret_path())
            exists = True
        except ApiError as e:
            if e.status != 404:
                raise CliError(f"failed to determine if deploy key secret exists: {e}") from None
            exists = False
        if exists and not self.o.access.secret_from_flags:
            return None
        try:
            return await asyncio.to_thread(gitsecret.git_secret, self.o.access.secret)
        except CliError as e:
            if not self.o.token_auth and not self.o.access.ssh:
                raise CliError(
                    f"{e.format_message()} (without --token-auth the cluster syncs over SSH; "
                    "pass --token-auth to sync with the password over HTTP(S))"
                ) from None
            raise

    async def reconcile_source_secret(self, secret: dict[str, Any] | None) -> None:
        key = self._secret_key()
        log.action(f'determining if source secret "{key}" exists')
        if secret is None:
            log.success("source secret up to date")
            return
        log.action("generating source secret")
        data = secret.get("stringData") or {}
        public_key = data.get(gitsecret.IDENTITY_PUB)
        if public_key:
            log.success(f"public key: {public_key.strip()}")
            if not self.o.silent and not _confirm("Please give the key access to your repository"):
                raise CliError("aborting")
        log.action(f'applying source secret "{key}"')

        def mutate(existing: dict[str, Any]) -> None:
            # The whole content is replaced: keys of another kind of authentication left
            # behind (a password beside a new SSH key) would change what the new ones mean.
            existing.pop("data", None)
            existing["stringData"] = data

        namespace = self.o.access.secret.namespace
        collection = f"/api/v1/namespaces/{namespace}/secrets"
        await create_or_update(self.s, self._secret_path(), collection, secret, mutate)
        log.success("reconciled source secret")

    # -- 3. sync -------------------------------------------------------------------------------

    async def _check_sync_path(self) -> None:
        try:
            ks = await self.s.kube.get(KUSTOMIZATION.path(self.namespace, self.name))
        except ApiError as e:
            if e.status == 404:
                return
            raise CliError(
                "failed to determine if sync configuration would overwrite existing "
                f"Kustomization: {e.message or e}"
            ) from None
        current = str((ks.get("spec") or {}).get("path") or "")
        target = self.o.sync.target_path
        if not manifests.same_sync_path(target, current):
            raise CliError(
                f'sync path configuration ("{target}") would overwrite path ("{current}") of '
                "existing Kustomization"
            )

    async def reconcile_sync(self) -> None:
        for attempt in range(1, _MAX_SYNC_ATTEMPTS + 1):
            log.action("generating sync manifests")
            sync = self._file(manifests.SYNC_FILE)
            self.checkout.write({sync: manifests.sync_text(self.o.sync).encode()})
            kustomization = self._file(manifests.KUSTOMIZATION_FILE)
            if self.checkout.read(kustomization) is None:
                resources = manifests.scan_resources(self.checkout.files_under(self.directory))
                self.checkout.write(
                    {kustomization: manifests.kustomization_text(resources).encode()}
                )
            log.success("generated sync manifests")
            try:
                await self._commit_and_push("sync manifests", "Add Flux sync manifests")
                break
            except PushConflictError:
                if attempt == _MAX_SYNC_ATTEMPTS:
                    raise CliError(
                        f"failed to push sync manifests: '{self.o.branch}' keeps moving on the "
                        "remote; try again"
                    ) from None
                log.waiting("git conflict detected, retrying with a fresh clone")
                await self._clone(announce=False)
            except GitError as e:
                raise CliError(f"failed to push sync manifests: {e}") from None
        log.action("applying sync manifests")
        await self._apply(await self._objects(self._file(manifests.SYNC_FILE)))
        if self._pushed:
            # flux leaves the push to the source's next interval (a minute, when only the
            # components changed); asking now is what `flux reconcile source git` does.
            token = {RECONCILE_REQUEST_ANNOTATION: rfc3339_nano()}
            with contextlib.suppress(CliError):  # a missing source is what the wait reports
                await merge_patch(
                    self.s, GIT_REPOSITORY, self.name, {"metadata": {"annotations": token}}
                )
        log.success("reconciled sync configuration")

    # -- 4. health -----------------------------------------------------------------------------

    async def _wait_reconciled(self, kind: ObjectKind) -> None:
        key = f"{self.namespace}/{self.name}"
        log.waiting(f'waiting for {kind.kind} "{key}" to be reconciled')
        assert self.checkout.head is not None
        expected = f"{self.o.branch}@sha1:{self.checkout.head.decode()}"
        obj: dict[str, Any] | None = None
        while True:
            try:
                obj = await self.s.kube.get(kind.path(self.namespace, self.name))
            except ApiError as e:
                message = e.message or str(e)
                break
            result = health.reconciled(obj, expected)
            if result.status == CURRENT:
                log.success(f"{kind.kind} reconciled successfully")
                return
            if result.status == FAILED:
                message = result.message
                break
            if not await sleep_until_next_poll(self.s.remaining(), POLL_INTERVAL):
                message = health.timeout_message(obj, kind.kind, key)
                break
        log.failure(message)
        raise HealthError(f"error while waiting for {kind.kind} to be ready: '{message}'")

    async def report_source(self) -> None:
        await self._wait_reconciled(GIT_REPOSITORY)

    async def report_kustomization(self) -> None:
        await self._wait_reconciled(KUSTOMIZATION)

    async def report_components(self) -> None:
        log.action("confirming components are healthy")
        deployment = install.deployment(self.o.install)
        found = False

        async def ready() -> bool:
            nonlocal found
            try:
                done = await apply.deployment_ready(self.s.kube, Discovery(self.s.kube), deployment)
            except ApiError as e:
                if e.status == 404:
                    return False
                raise
            found = True
            return done

        try:
            await poll_until(ready, max(self.s.remaining(), 0.1), every=POLL_INTERVAL, first=0.2)
        except TimeoutError:
            log.failure(f"{install.NAME}: deployment {'not ready' if found else 'not found'}")
            raise HealthError("timed out waiting for all resources to be ready") from None
        log.success(f"{install.NAME}: deployment ready")
        log.success("all components are healthy")


def _confirm(question: str) -> bool:
    """A yes/no question on the terminal; no answer (no input, end of input) is no."""
    try:
        return click.confirm(question, err=True)
    except click.Abort:
        return False


def _clone_hint(e: GitError) -> str:
    if isinstance(e, AuthenticationError):
        return " (check --username and --password, or --private-key-file over SSH)"
    if isinstance(e, RefNotFoundError):
        return " (the branch must exist unless the repository is empty; see --branch)"
    return ""


async def bootstrap(s: Session, o: Options, workdir: Path) -> None:
    """Run every step with the repository cloned under `workdir`."""
    checkout = Checkout(o.url, o.branch, o.access.auth, workdir / "repository")
    try:
        await Bootstrap(s, o, checkout).run()
    finally:
        checkout.close()
