"""Helm's hook execution (pkg/action/hooks.go) for tidal.helm.actions.

For one event: the release's hooks for it by weight then name; each gets its delete policy
defaulted to before-hook-creation (recorded in the release, as Helm records it), its previous
instance deleted under that policy, its start recorded (phase Running, the release stored),
its objects created and watched until ready (Jobs complete, Pods succeeded). On a failure the
hook-failed policy deletes it and the hooks that succeeded before it get their hook-succeeded
deletion; when all succeed, hook-succeeded deletions run in reverse order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence

from tidal.helm import kubeops, resources, wait
from tidal.helm.kubeops import ApplyMode, KubeOpError
from tidal.helm.resources import BuildError
from tidal.helm.storage import Release, ReleaseHook, go_time
from tidal.kube.client import ApiError, Kube
from tidal.kube.discovery import Discovery
from tidal.ssa.manager import ResourceManager

BEFORE_HOOK_CREATION = "before-hook-creation"
HOOK_SUCCEEDED = "hook-succeeded"
HOOK_FAILED = "hook-failed"

Record = Callable[[Release], Awaitable[None]]


class HookError(Exception):
    """A hook failed; the message is Helm's execHook error."""


def executing_hooks(hooks: Sequence[ReleaseHook], event: str) -> list[ReleaseHook]:
    """The hooks an event runs, in Helm's order: weight, then name, stable otherwise."""
    return sorted((h for h in hooks if event in h.events), key=lambda h: (h.weight, h.name))


class HookRunner:
    """Runs a release's hooks against one cluster with one set of options."""

    def __init__(
        self,
        kube: Kube,
        discovery: Discovery,
        manager: ResourceManager,
        *,
        mode: ApplyMode,
        timeout: float,
        wait_deletes: bool,
        record: Record,
    ) -> None:
        self.kube = kube
        self.discovery = discovery
        self.manager = manager
        # Hooks are created, never updated: no conflicts to force (Helm's Create options).
        self.mode = ApplyMode(mode.server_side, mode.field_manager, False, False)
        self.timeout = timeout
        self.wait_deletes = wait_deletes
        self.record = record

    async def _build(self, rel: Release, hook: ReleaseHook) -> list[resources.Item]:
        return await resources.build(self.discovery, hook.manifest, rel.namespace)

    async def delete_by_policy(self, rel: Release, hook: ReleaseHook, policy: str) -> None:
        if hook.kind == "CustomResourceDefinition" or policy not in hook.delete_policies:
            return
        try:
            items = await self._build(rel, hook)
        except BuildError as e:
            raise HookError(
                f"unable to build kubernetes object for deleting hook {hook.path}: {e}"
            ) from e
        _deleted, errors = await kubeops.delete(self.kube, items, "background")
        if errors:
            raise HookError("; ".join(errors))
        if self.wait_deletes:
            try:
                await wait.wait_for_delete(self.manager, items, self.timeout)
            except wait.WaitError as e:
                raise HookError(str(e)) from e

    async def run(self, rel: Release, event: str) -> None:
        """Helm's execHook for `event`; HookError with Helm's message when one fails."""
        hooks = executing_hooks(rel.hooks, event)
        for i, hook in enumerate(hooks):
            if not hook.delete_policies:
                hook.delete_policies = [BEFORE_HOOK_CREATION]
            await self.delete_by_policy(rel, hook, BEFORE_HOOK_CREATION)
            try:
                items = await self._build(rel, hook)
            except BuildError as e:
                raise HookError(
                    f"unable to build kubernetes object for {event} hook {hook.path}: {e}"
                ) from e
            hook.last_run.started_at = go_time()
            hook.last_run.completed_at = ""
            hook.last_run.phase = "Running"
            await self.record(rel)
            hook.last_run.phase = "Unknown"
            try:
                await kubeops.create(self.kube, items, self.mode)
            except KubeOpError as e:
                hook.last_run.completed_at = go_time()
                hook.last_run.phase = "Failed"
                raise HookError(f"warning: Hook {event} {hook.path} failed: {e}") from e
            try:
                await wait.watch_until_ready(self.manager, items, self.timeout)
            except wait.WaitError as e:
                hook.last_run.completed_at = go_time()
                hook.last_run.phase = "Failed"
                # Helm logs a failed hook-failed deletion and reports the hook's own error.
                with contextlib.suppress(HookError, ApiError):
                    await self.delete_by_policy(rel, hook, HOOK_FAILED)
                for done in hooks[:i]:
                    await self.delete_by_policy(rel, done, HOOK_SUCCEEDED)
                raise HookError(str(e)) from e
            hook.last_run.completed_at = go_time()
            hook.last_run.phase = "Succeeded"
        for hook in reversed(hooks):
            await self.delete_by_policy(rel, hook, HOOK_SUCCEEDED)
