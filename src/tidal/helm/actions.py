"""Helm v4's release actions in Python: install, upgrade, rollback, uninstall and test.

They do what Helm's pkg/action does, step for step and with its statuses, descriptions and
error texts, so that the helm CLI reads tidal's releases as its own and the other way round.
The caller (the HelmRelease reconciler) renders and post-renders: it hands over the chart, the
render result and the final manifest and hooks, which the release records. CRDs from the
chart's crds/ are applied first per Flux's CRD policy, as helm-controller does.

Options follow Flux's use of Helm: server-side apply with conflicts forced, take-ownership on,
waits through kstatus (tidal.helm.wait). One action per release at a time is the caller's job;
an action interrupted (cancelled, or an unexpected error) marks the release it left pending as
failed before the error propagates.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

from tidal.helm import kubeops, resources, storage, wait
from tidal.helm.chart import LoadedChart
from tidal.helm.hooks import HookError, HookRunner
from tidal.helm.kubeops import ApplyMode, KubeOpError
from tidal.helm.manifests import Hook
from tidal.helm.render import Rendered
from tidal.helm.resources import BuildError, Item
from tidal.helm.storage import Release
from tidal.kube.client import ApiError, Kube
from tidal.kube.discovery import Resource, shared_discovery
from tidal.ssa.manager import ResourceManager, StatusReader

__all__ = [
    "ActionError",
    "ActionOptions",
    "TestFilter",
    "install",
    "rollback",
    "test",
    "uninstall",
    "upgrade",
]

CRDPolicy = Literal["Skip", "Create", "CreateReplace"]
CRD_WAIT = 60.0  # Helm gives CRDs this long to be established, whatever the action timeout
PENDING = (storage.PENDING_INSTALL, storage.PENDING_UPGRADE, storage.PENDING_ROLLBACK)
ERR_PENDING = "another operation (install/upgrade/rollback) is in progress"


@dataclass(frozen=True)
class ActionOptions:
    """Per-call options, defaulting as Flux drives Helm.

    `server_side_apply`: True/False, or None for Helm's "auto" (upgrade and rollback keep the
    apply method the release was made with). With server-side apply, conflicts are always
    forced (Flux) and `force` does nothing; with client-side apply, `force` replaces objects
    instead of patching them (Helm's --force-replace). `wait=False` is Flux's disableWait:
    resources and deletions are not waited for, hooks still are."""

    timeout: float = 300.0
    wait: bool = True
    wait_for_jobs: bool = True
    disable_hooks: bool = False
    field_manager: str = "helm-controller"
    take_ownership: bool = True
    server_side_apply: bool | None = True
    force: bool = False
    cleanup_on_fail: bool = False
    crds: CRDPolicy = "Create"
    create_namespace: bool = False
    max_history: int = 5
    description: str = ""
    # Custom status readers per (group, kind) for the wait (Flux's healthCheckExprs).
    health_readers: Mapping[tuple[str, str], StatusReader] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class TestFilter:
    """Flux's spec.test.filters entry: run (or, with exclude, skip) the test hook `name`."""

    __test__ = False  # not a pytest test class, whatever its name

    name: str
    exclude: bool = False


class ActionError(Exception):
    """An action failed. `release` is the revision recorded for it (failed, or as Helm left
    it), None when the action failed before recording anything; the message is Helm's."""

    def __init__(self, message: str, release: Release | None = None) -> None:
        super().__init__(message)
        self.release = release


# --- plumbing shared by the actions -------------------------------------------------------------


class _Session:
    """One action's view of the cluster: discovery, status reads, hooks, release storage."""

    def __init__(self, kube: Kube, storage_namespace: str, options: ActionOptions) -> None:
        self.kube = kube
        self.storage_namespace = storage_namespace
        self.options = options
        self.discovery = shared_discovery(kube)
        self.manager = ResourceManager(kube, self.discovery, owner=options.field_manager)

    def mode(self, server_side: bool) -> ApplyMode:
        return ApplyMode(
            server_side=server_side,
            field_manager=self.options.field_manager,
            force_conflicts=server_side,
            force_replace=self.options.force and not server_side,
        )

    def hooks(self, server_side: bool) -> HookRunner:
        return HookRunner(
            self.kube,
            self.discovery,
            self.manager,
            mode=self.mode(server_side),
            timeout=self.options.timeout,
            wait_deletes=self.options.wait,
            record=self.record,
        )

    async def record(self, rel: Release) -> None:
        await storage.update(self.kube, rel, namespace=self.storage_namespace)

    async def record_quietly(self, rel: Release) -> None:
        # Helm ignores storage errors while it reports another error.
        with contextlib.suppress(ApiError):
            await self.record(rel)

    async def create(self, rel: Release, max_history: int = 0) -> None:
        try:
            await storage.create(
                self.kube, rel, max_history=max_history, namespace=self.storage_namespace
            )
        except ApiError as e:
            raise ActionError(f"create: failed to create: {e.message}") from e

    async def history(self, name: str) -> list[Release]:
        return await storage.history(self.kube, self.storage_namespace, name)

    async def build(self, manifest: str, namespace: str, what: str) -> list[Item]:
        try:
            return await resources.build(self.discovery, manifest, namespace)
        except BuildError as e:
            raise ActionError(f"unable to build kubernetes objects from {what}: {e}") from e

    async def wait(self, items: Sequence[Item]) -> None:
        if self.options.wait:
            await wait.wait(
                self.manager,
                items,
                self.options.timeout,
                with_jobs=self.options.wait_for_jobs,
                custom=self.options.health_readers,
            )


def _set_status(rel: Release, status: str, description: str) -> None:
    rel.info.status = status
    rel.info.description = description


async def _guard(
    session: _Session, rel: Release, work: Callable[[], Awaitable[None]], fail: str
) -> None:
    """Run `work`; if it is interrupted by anything but an ActionError while `rel` is still
    pending, record `rel` as failed (`fail` names the action) so no release stays pending."""
    try:
        await work()
    except ActionError:
        raise
    except BaseException as e:
        if rel.info.status in PENDING:
            reason = "context canceled" if isinstance(e, asyncio.CancelledError) else str(e)
            _set_status(rel, storage.FAILED, f"{fail}: {reason}")
            await asyncio.shield(session.record_quietly(rel))
        raise


def _new_release(
    chart: LoadedChart,
    rendered: Rendered,
    manifest: str,
    hooks: Sequence[Hook],
    *,
    name: str,
    namespace: str,
    version: int,
    status: str,
    description: str,
    first_deployed: str,
    server_side: bool,
    labels: dict[str, str],
) -> Release:
    final = dataclasses.replace(rendered, manifest=manifest, hooks=tuple(hooks))
    rel = storage.new_release(
        chart,
        final,
        name=name,
        namespace=namespace,
        version=version,
        status=status,
        description=description,
        first_deployed=first_deployed,
        apply_method="ssa" if server_side else "csa",
    )
    rel.labels = dict(labels)
    return rel


# --- CRDs ---------------------------------------------------------------------------------------


def crd_objects(crds: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """The CustomResourceDefinitions of the chart's crds/ files; anything else there is
    ignored, as helm-controller ignores it."""
    out = []
    for _name, text in crds:
        for obj in resources.parse_objects(text):
            api_version = str(obj.get("apiVersion", ""))
            if obj.get("kind") == "CustomResourceDefinition" and api_version.startswith(
                "apiextensions.k8s.io/"
            ):
                out.append(obj)
    return out


async def _apply_crds(
    session: _Session, crds: Sequence[tuple[str, str]], server_side: bool
) -> None:
    """helm-controller's applyCRDs: Create (existing ones skipped with client-side apply) or
    CreateReplace, then wait until they are established."""
    policy = session.options.crds
    objs = crd_objects(crds)
    if policy == "Skip" or not objs:
        return
    try:
        items = await resources.resolve(session.discovery, objs, "")
    except BuildError as e:
        raise ActionError(f"failed to parse CustomResourceDefinitions: {e}") from e
    mode = session.mode(server_side)
    applied: list[Item] = []
    for item in items:
        try:
            if server_side:
                await kubeops.apply_server_side(session.kube, item, mode, force=True)
            elif policy == "Create":
                try:
                    await session.kube.create(item.collection, item.obj)
                except ApiError as e:
                    if e.status == 409:
                        continue
                    raise ActionError(
                        f"failed to create CustomResourceDefinition {item.name}: {e.message}"
                    ) from e
            else:
                live = await kubeops.get(session.kube, item)
                if live is None:
                    await session.kube.create(item.collection, item.obj)
                else:
                    await kubeops.update(
                        session.kube, [], [item], dataclasses.replace(mode, force_replace=True)
                    )
        except KubeOpError as e:
            verb = "create" if policy == "Create" else "update"
            noun = (
                f"CustomResourceDefinition {item.name}"
                if policy == "Create"
                else "CustomResourceDefinition(s)"
            )
            raise ActionError(f"failed to {verb} {noun}: {e}") from e
        except ApiError as e:
            raise ActionError(f"failed to update CustomResourceDefinition(s): {e.message}") from e
        applied.append(item)
    try:
        await wait.wait(session.manager, applied, CRD_WAIT, with_jobs=False)
    except wait.WaitError as e:
        raise ActionError(f"failed to wait for CustomResourceDefinition(s): {e}") from e
    for item in applied:
        group = (item.obj.get("spec") or {}).get("group", "")
        for v in (item.obj.get("spec") or {}).get("versions") or []:
            session.discovery.forget(f"{group}/{v.get('name', '')}")


# --- ownership ----------------------------------------------------------------------------------


async def _existing(
    session: _Session, items: Sequence[Item], name: str, namespace: str
) -> list[Item]:
    """requireAdoption / existingResourceConflict: the objects that already exist, which the
    action updates instead of creating; without take-ownership, each must already carry this
    release's ownership metadata. Raises the first conflict as Helm does."""
    found = []
    for item in items:
        if (item.obj.get("metadata") or {}).get("generateName") and not item.name:
            continue
        try:
            live = await kubeops.get(session.kube, item)
        except ApiError as e:
            raise ActionError(
                f"could not get information about the resource {item.describe()}: {e.message}"
            ) from e
        if live is None:
            continue
        if not session.options.take_ownership:
            error = resources.ownership_error(live, name, namespace)
            if error is not None:
                raise ActionError(resources.conflict_message(item, error))
        found.append(item)
    return found


async def _create_namespace(session: _Session, namespace: str, server_side: bool) -> None:
    ns = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace, "labels": {"name": namespace}},
    }
    item = Item(Resource("", "v1", "Namespace", "namespaces", False), ns)
    try:
        if server_side:
            await kubeops.apply_server_side(session.kube, item, session.mode(True), force=False)
        else:
            await session.kube.create(item.collection, ns)
    except ApiError as e:
        if e.status != 409:
            raise ActionError(e.message) from e
    except KubeOpError as e:
        raise ActionError(str(e)) from e


# --- install ------------------------------------------------------------------------------------


async def install(
    kube: Kube,
    *,
    name: str,
    namespace: str,
    storage_namespace: str,
    chart: LoadedChart,
    rendered: Rendered,
    manifest: str,
    hooks: Sequence[Hook],
    options: ActionOptions = ActionOptions(),
) -> Release:
    """Helm's install: revision 1 recorded pending-install, pre-install hooks, the objects
    created (existing ones adopted or refused), waited for, post-install hooks, deployed."""
    session = _Session(kube, storage_namespace, options)
    server_side = options.server_side_apply is not False
    history = await session.history(name)
    if history and history[-1].info.status not in (storage.UNINSTALLED, storage.FAILED):
        raise ActionError("cannot re-use a name that is still in use")
    await _apply_crds(session, rendered.crds, server_side)
    items = await session.build(manifest, namespace, "release manifest")
    items = [resources.set_metadata(i, name, namespace) for i in items]
    try:
        adopted = await _existing(session, items, name, namespace)
    except ActionError as e:
        raise ActionError(f"unable to continue with install: {e}") from e
    if options.create_namespace:
        await _create_namespace(session, namespace, server_side)
    rel = _new_release(
        chart, rendered, manifest, hooks, name=name, namespace=namespace, version=1,
        status=storage.PENDING_INSTALL, description="Initial install underway",
        first_deployed="", server_side=server_side, labels={},
    )  # fmt: skip
    await session.create(rel)

    async def perform() -> None:
        try:
            await _perform_install(session, rel, items, adopted, server_side)
        except (HookError, KubeOpError, wait.WaitError, ActionError) as e:
            _set_status(rel, storage.FAILED, f'Release "{name}" failed: {e}')
            await session.record_quietly(rel)
            raise ActionError(str(e), rel) from e

    await _guard(session, rel, perform, f'Release "{name}" failed')
    return rel


async def _perform_install(
    session: _Session, rel: Release, items: list[Item], adopted: list[Item], server_side: bool
) -> None:
    options = session.options
    runner = session.hooks(server_side)
    if not options.disable_hooks:
        try:
            await runner.run(rel, "pre-install")
        except HookError as e:
            raise ActionError(f"failed pre-install: {e}") from e
    mode = session.mode(server_side)
    if items and not adopted:
        # A fresh install creates without forcing: nothing else owns these fields yet.
        await kubeops.create(session.kube, items, dataclasses.replace(mode, force_conflicts=False))
    elif items:
        adopting = dataclasses.replace(mode, upgrade_csa_manager=True)
        await kubeops.update(session.kube, adopted, items, adopting)
    await session.wait(items)
    if not options.disable_hooks:
        try:
            await runner.run(rel, "post-install")
        except HookError as e:
            raise ActionError(f"failed post-install: {e}") from e
    _set_status(rel, storage.DEPLOYED, options.description or "Install complete")
    await session.record_quietly(rel)


# --- upgrade ------------------------------------------------------------------------------------


async def upgrade(
    kube: Kube,
    *,
    current: Release,
    storage_namespace: str,
    chart: LoadedChart,
    rendered: Rendered,
    manifest: str,
    hooks: Sequence[Hook],
    options: ActionOptions = ActionOptions(),
) -> Release:
    """Helm's upgrade of `current` (the deployed revision, or the last one when none is):
    a new revision recorded pending-upgrade, pre-upgrade hooks, the new manifest applied and
    what it dropped deleted (keep policy honoured), waited for, post-upgrade hooks, the
    current revision superseded, the new one deployed. History pruned to max_history."""
    session = _Session(kube, storage_namespace, options)
    name = current.name
    history = await session.history(name)
    if not history:
        raise ActionError(f'"{name}" has no deployed releases')
    last = history[-1]
    if last.info.status in PENDING:
        raise ActionError(ERR_PENDING)
    server_side = (
        last.apply_method == "ssa"
        if options.server_side_apply is None
        else options.server_side_apply
    )
    await _apply_crds(session, rendered.crds, server_side)
    namespace = current.namespace
    current_items = await session.build(current.manifest, namespace, "current release manifest")
    target = await session.build(manifest, namespace, "new release manifest")
    target = [resources.set_metadata(i, name, namespace) for i in target]
    try:
        adopted = await _existing(
            session, resources.new_items(current_items, target), name, namespace
        )
    except ActionError as e:
        raise ActionError(f"unable to continue with update: {e}") from e
    rel = _new_release(
        chart, rendered, manifest, hooks, name=name, namespace=namespace,
        version=last.version + 1, status=storage.PENDING_UPGRADE,
        description="Preparing upgrade", first_deployed=current.info.first_deployed,
        server_side=server_side, labels=last.labels,
    )  # fmt: skip
    await session.create(rel, options.max_history)
    # The stored current revision, as fresh as storage has it (it gets superseded).
    original = next((r for r in history if r.version == current.version), current)

    async def perform() -> None:
        try:
            await _perform_upgrade(
                session, original, rel, [*current_items, *adopted], target, server_side
            )
        except _UpgradeFailed as failure:
            await _fail_upgrade(session, rel, failure.error, failure.created)

    await _guard(session, rel, perform, f'Upgrade "{name}" failed')
    return rel


class _UpgradeFailed(Exception):
    def __init__(self, error: str, created: Sequence[Item]) -> None:
        super().__init__(error)
        self.error = error
        self.created = list(created)


async def _perform_upgrade(
    session: _Session,
    original: Release,
    rel: Release,
    current: list[Item],
    target: list[Item],
    server_side: bool,
) -> None:
    options = session.options
    runner = session.hooks(server_side)
    if not options.disable_hooks:
        try:
            await runner.run(rel, "pre-upgrade")
        except HookError as e:
            raise _UpgradeFailed(f"pre-upgrade hooks failed: {e}", []) from e
    # Moving a release from client-side to server-side apply upgrades the field manager.
    mode = dataclasses.replace(
        session.mode(server_side),
        upgrade_csa_manager=server_side and original.apply_method in ("", "csa"),
    )
    try:
        result = await kubeops.update(session.kube, current, target, mode)
    except KubeOpError as e:
        raise _UpgradeFailed(str(e), e.created) from e
    try:
        await session.wait(target)
    except wait.WaitError as e:
        raise _UpgradeFailed(str(e), result.created) from e
    if not options.disable_hooks:
        try:
            await runner.run(rel, "post-upgrade")
        except HookError as e:
            raise _UpgradeFailed(f"post-upgrade hooks failed: {e}", result.created) from e
    original.info.status = storage.SUPERSEDED
    await session.record_quietly(original)
    _set_status(rel, storage.DEPLOYED, options.description or "Upgrade complete")
    await session.record(rel)


async def _fail_upgrade(
    session: _Session, rel: Release, error: str, created: list[Item]
) -> NoReturn:
    """Helm's Upgrade.failRelease: recorded failed; with cleanup-on-fail, the objects this
    upgrade created are deleted."""
    _set_status(rel, storage.FAILED, f'Upgrade "{rel.name}" failed: {error}')
    await session.record_quietly(rel)
    if session.options.cleanup_on_fail and created:
        _deleted, errors = await kubeops.delete(session.kube, created, "background")
        if errors:
            raise ActionError(
                "an error occurred while cleaning up resources. original upgrade error: "
                f"{error}: unable to cleanup resources: {', '.join(errors)}",
                rel,
            )
    raise ActionError(error, rel)


# --- rollback -----------------------------------------------------------------------------------


def rollback_target(history: Sequence[Release], to_version: int | None) -> int:
    """The revision a rollback restores: `to_version`, else the newest revision before the
    latest one that was deployed or superseded (a successful release, as Flux's remediation
    picks). ActionError as Helm words it when there is none."""
    if to_version is not None:
        if to_version < 0:
            raise ActionError("invalid release revision")
        if not any(r.version == to_version for r in history):
            raise ActionError(f"release has no {to_version} version")
        return to_version
    latest = history[-1].version
    for r in reversed(history):
        if r.version < latest and r.info.status in (storage.DEPLOYED, storage.SUPERSEDED):
            return r.version
    raise ActionError(f"release has no {latest - 1} version")


async def rollback(
    kube: Kube,
    *,
    name: str,
    storage_namespace: str,
    to_version: int | None = None,
    options: ActionOptions = ActionOptions(),
) -> Release:
    """Helm's rollback: a new revision with the target revision's chart, config, manifest and
    hooks ("Rollback to N"), pre-rollback hooks, the manifest applied over the latest
    revision's objects, waited for, post-rollback hooks, every deployed revision superseded."""
    session = _Session(kube, storage_namespace, options)
    history = await session.history(name)
    if not history:
        raise ActionError("release: not found")
    current = history[-1]
    if current.info.status in PENDING:
        raise ActionError(ERR_PENDING)
    version = rollback_target(history, to_version)
    previous = next(r for r in history if r.version == version)
    server_side = (
        previous.apply_method == "ssa"
        if options.server_side_apply is None
        else options.server_side_apply
    )
    rel = Release(
        name=name,
        namespace=current.namespace,
        version=current.version + 1,
        info=storage.Info(
            first_deployed=current.info.first_deployed,
            last_deployed=storage.go_time(),
            status=storage.PENDING_ROLLBACK,
            notes=previous.info.notes,
            description=f"Rollback to {version}",
        ),
        chart=previous.chart,
        config=previous.config,
        manifest=previous.manifest,
        hooks=copy.deepcopy(previous.hooks),
        labels=dict(previous.labels),
        apply_method="ssa" if server_side else "csa",
    )
    await session.create(rel, options.max_history)

    async def perform() -> None:
        await _perform_rollback(session, current, rel, server_side)

    await _guard(session, rel, perform, f'Rollback "{name}" failed')
    return rel


async def _perform_rollback(
    session: _Session, current: Release, rel: Release, server_side: bool
) -> None:
    options = session.options
    name = rel.name
    runner = session.hooks(server_side)

    async def fail(description: str, error: str) -> NoReturn:
        _set_status(rel, storage.FAILED, description)
        await session.record_quietly(rel)
        raise ActionError(error, rel)

    try:
        current_items = await session.build(
            current.manifest, rel.namespace, "current release manifest"
        )
        target = await session.build(rel.manifest, rel.namespace, "new release manifest")
    except ActionError as e:
        await fail(f'Rollback "{name}" failed: {e}', str(e))
    if not options.disable_hooks:
        try:
            await runner.run(rel, "pre-rollback")
        except HookError as e:
            # Helm leaves the revision pending here; tidal records it failed.
            await fail(f'Rollback "{name}" failed: {e}', str(e))
    target = [resources.set_metadata(i, name, rel.namespace) for i in target]
    mode = dataclasses.replace(session.mode(server_side), upgrade_csa_manager=True)
    try:
        await kubeops.update(session.kube, current_items, target, mode)
    except KubeOpError as e:
        current.info.status = storage.SUPERSEDED
        await session.record_quietly(current)
        if options.cleanup_on_fail and e.created:
            await kubeops.delete(session.kube, e.created, "background")
        await fail(f'Rollback "{name}" failed: {e}', str(e))
    try:
        await session.wait(target)
    except wait.WaitError as e:
        await fail(f'Release "{name}" failed: {e}', f"release {name} failed: {e}")
    if not options.disable_hooks:
        try:
            await runner.run(rel, "post-rollback")
        except HookError as e:
            await fail(f'Rollback "{name}" failed: {e}', str(e))
    for r in await session.history(name):
        if r.info.status == storage.DEPLOYED and r.version != rel.version:
            r.info.status = storage.SUPERSEDED
            await session.record_quietly(r)
    rel.info.status = storage.DEPLOYED
    await session.record(rel)


# --- uninstall ----------------------------------------------------------------------------------


async def uninstall(
    kube: Kube,
    *,
    name: str,
    storage_namespace: str,
    keep_history: bool = False,
    deletion_propagation: str = "background",
    options: ActionOptions = ActionOptions(),
) -> Release:
    """Helm's uninstall: pre-delete hooks, the release's objects deleted in uninstall order
    (keep policy honoured) and waited for, post-delete hooks, then the history deleted, or
    kept with the last revision uninstalled ("Uninstallation complete")."""
    session = _Session(kube, storage_namespace, options)
    history = await session.history(name)
    if not history:
        raise ActionError(f"uninstall: Release not loaded: {name}: release: not found")
    rel = history[-1]
    if rel.info.status == storage.UNINSTALLED:
        if not keep_history:
            await _purge(session, history)
            return rel
        raise ActionError(f'the release named "{name}" is already deleted')
    rel.info.status = storage.UNINSTALLING
    rel.info.deleted = storage.go_time()
    rel.info.description = "Deletion in progress (or silently failed)"
    runner = session.hooks(True)  # Helm's uninstall hooks always use server-side apply
    if not options.disable_hooks:
        try:
            await runner.run(rel, "pre-delete")
        except HookError as e:
            raise ActionError(str(e), rel) from e
    await session.record_quietly(rel)
    errors: list[str] = []
    plan = resources.uninstall_plan(rel.manifest)
    try:
        items = await resources.build(session.discovery, plan.delete, rel.namespace)
    except BuildError as e:
        raise ActionError(f"failed to delete release: {name}", rel) from e
    if items:
        _deleted, delete_errors = await kubeops.delete(session.kube, items, deletion_propagation)
        if delete_errors:
            raise ActionError(f"failed to delete release: {name}", rel)
    if options.wait:
        try:
            await wait.wait_for_delete(session.manager, items, options.timeout)
        except wait.WaitError as e:
            errors.append(str(e))
    if not options.disable_hooks:
        try:
            await runner.run(rel, "post-delete")
        except HookError as e:
            errors.append(str(e))
    _set_status(rel, storage.UNINSTALLED, options.description or "Uninstallation complete")
    if not keep_history:
        try:
            await _purge(session, history)
        except ApiError as e:
            errors.append(f"uninstall: Failed to purge the release: {e.message}")
    else:
        await session.record_quietly(rel)
        for r in history[:-1]:
            if r.info.status == storage.DEPLOYED:
                r.info.status = storage.SUPERSEDED
                await session.record_quietly(r)
    if errors:
        raise ActionError(
            f"uninstallation completed with {len(errors)} error(s): {'; '.join(errors)}", rel
        )
    return rel


async def _purge(session: _Session, history: Sequence[Release]) -> None:
    for r in history:
        await storage.delete(session.kube, session.storage_namespace, r.name, r.version)


def kept_message(manifest: str) -> str:
    """What Helm reports about the objects an uninstall keeps (empty when none)."""
    kept = resources.uninstall_plan(manifest).kept
    if not kept:
        return ""
    lines = "".join(f"[{kind}] {name}\n" for kind, name in kept)
    return "These resources were kept due to the resource policy:\n" + lines


# --- test ---------------------------------------------------------------------------------------


def split_test_hooks(
    hooks: Sequence[storage.ReleaseHook], filters: Sequence[TestFilter]
) -> tuple[list[storage.ReleaseHook], list[storage.ReleaseHook]]:
    """(executing, skipped) as Helm's ReleaseTesting filters: exclusions first, then, when
    there are inclusions, only the included remain."""
    exclude = {f.name for f in filters if f.exclude}
    include = {f.name for f in filters if not f.exclude}
    executing, skipped = list(hooks), []
    if exclude:
        skipped = [h for h in executing if h.name in exclude]
        executing = [h for h in executing if h.name not in exclude]
    if include:
        skipped += [h for h in executing if h.name not in include]
        executing = [h for h in executing if h.name in include]
    return executing, skipped


async def test(
    kube: Kube,
    *,
    release: Release,
    storage_namespace: str,
    filters: Sequence[TestFilter] = (),
    options: ActionOptions = ActionOptions(),
) -> Release:
    """Helm's release test: the release's `test` hooks (after filtering) run and waited for;
    each hook's last run is recorded in the stored release. ActionError if one fails."""
    session = _Session(kube, storage_namespace, options)
    executing, skipped = split_test_hooks(release.hooks, filters)
    # As Helm does, the release carries only the executing hooks while they run.
    release.hooks = executing
    server_side = release.apply_method == "ssa"
    try:
        await session.hooks(server_side).run(release, "test")
    except HookError as e:
        release.hooks = [*skipped, *release.hooks]
        await session.record_quietly(release)
        raise ActionError(str(e), release) from e
    except BaseException:
        release.hooks = [*skipped, *release.hooks]
        await asyncio.shield(session.record_quietly(release))
        raise
    release.hooks = [*skipped, *release.hooks]
    await session.record(release)
    return release
