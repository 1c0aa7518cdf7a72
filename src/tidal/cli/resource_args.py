"""Objects named on the command line as kubectl names them (flux's trace uses kubectl's resource
builder): `<type> <name>...` or `<type>/<name>...`, the type a plural, singular, short name or
kind, optionally qualified with its group (`deployments.apps`) or version and group
(`deployments.v1.apps`), or a category (`all`); or a kind with an apiVersion. Resolved against
the server's discovery documents, with kubectl's error messages."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from tidal.cli.cluster import Session
from tidal.cli.options import CliError
from tidal.kube.client import ApiError, Kube

_NO_ARGUMENTS: Final = (
    "either `<resource>/<name>` or `<resource> <name>` is required as an argument"
)


class TraceError(Exception):
    """Why one object could not be traced; reported and skipped, as flux does."""


# -- API discovery ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiResource:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str, name: str) -> str:
        base = f"/apis/{self.api_version}" if self.group else f"/api/{self.version}"
        if self.namespaced:
            base += f"/namespaces/{quote(namespace, safe='')}"
        return f"{base}/{self.plural}/{quote(name, safe='')}"


def _resource_from(group: str, version: str, raw: Mapping[str, Any]) -> ApiResource | None:
    plural = str(raw.get("name", ""))
    if not plural or "/" in plural:  # subresources such as deployments/scale
        return None
    kind = str(raw.get("kind", ""))
    return ApiResource(
        group,
        version,
        plural,
        # Old servers list no singular; Kubernetes' REST mapper then guesses the lower-cased kind.
        str(raw.get("singularName") or kind.lower()),
        kind,
        bool(raw.get("namespaced", False)),
        tuple(str(n) for n in raw.get("shortNames") or ()),
        tuple(str(c) for c in raw.get("categories") or ()),
    )


class ApiCatalog:
    """The resources the API server serves, read lazily, one group-version at a time."""

    def __init__(self, kube: Kube) -> None:
        self._kube = kube
        self._versions: list[str] | None = None
        self._resources: dict[str, list[ApiResource] | None] = {}

    async def group_versions(self) -> list[str]:
        """Every group-version in kubectl's order of preference: the core v1 first, then the
        groups as the server lists them, each with its preferred version first."""
        if self._versions is None:
            core = await self._kube.get("/api")
            ordered = [str(v) for v in core.get("versions") or []]
            for group in (await self._kube.get("/apis")).get("groups") or []:
                preferred = str((group.get("preferredVersion") or {}).get("groupVersion", ""))
                listed = [str(v.get("groupVersion", "")) for v in group.get("versions") or []]
                ordered += [gv for gv in listed if gv == preferred]
                ordered += [gv for gv in listed if gv != preferred]
            self._versions = ordered
        return self._versions

    async def resources(self, api_version: str) -> list[ApiResource] | None:
        """The group-version's resources; None when the server does not serve it."""
        if api_version not in self._resources:
            group, _, version = api_version.rpartition("/")
            path = f"/apis/{api_version}" if group else f"/api/{version}"
            try:
                doc = await self._kube.get(path)
            except ApiError as e:
                # Unavailable aggregated APIs are left out, as kubectl leaves them out.
                if e.status not in (404, 503):
                    raise
                self._resources[api_version] = None
            else:
                found = (_resource_from(group, version, r) for r in doc.get("resources") or [])
                self._resources[api_version] = [r for r in found if r is not None]
        return self._resources[api_version]

    async def everything(self) -> list[ApiResource]:
        versions = await self.group_versions()
        lists = await asyncio.gather(*(self.resources(gv) for gv in versions))
        return [r for listed in lists for r in listed or ()]

    async def for_kind(self, api_version: str, kind: str) -> ApiResource:
        """The resource of apiVersion+kind, or controller-runtime's error for it."""
        group, _, version = api_version.rpartition("/")
        listed = await self.resources(api_version)
        if listed is None:
            raise TraceError(
                f"unable to retrieve the complete list of server APIs: {api_version}: "
                f"no matches for {group}/{version}, Resource="
            )
        for resource in listed:
            # The REST mapper also knows every kind by its lower-cased name.
            if kind in (resource.kind, resource.kind.lower()):
                return resource
        raise TraceError(f'no matches for kind "{kind}" in version "{api_version}"')


async def get_object(
    kube: Kube, catalog: ApiCatalog, api_version: str, kind: str, namespace: str, name: str
) -> dict[str, Any]:
    resource = await catalog.for_kind(api_version, kind)
    if resource.namespaced and not namespace:
        raise TraceError("an empty namespace may not be set when a resource name is provided")
    try:
        return await kube.get(resource.path(namespace, name))
    except ApiError as e:
        raise TraceError(e.message) from None


# -- resource arguments, as kubectl reads them ---------------------------------------------------


def split_types(arg: str) -> list[str]:
    """`cm,secret` -> ["cm", "secret"], without repeats."""
    return list(dict.fromkeys(arg.split(",")))


@dataclass(frozen=True)
class Request:
    """What the arguments ask for: `pairs` of (type, name) from `<type>/<name>` arguments, or
    one `types` argument with `names`."""

    pairs: tuple[tuple[str, str], ...] = ()
    types: str = ""
    names: tuple[str, ...] = ()


def parse_arguments(args: Sequence[str], prog: str = "tidal") -> Request:
    if not args:
        raise CliError(_NO_ARGUMENTS)
    args = list(args)
    types = split_types(args[0])
    if len(args) >= 2 and len(types) > 1:
        # `cm,secret a b` means cm/a cm/b secret/a secret/b.
        args = [f"{t}/{name}" for t in types for name in args[1:]]
    with_slash = sum("/" in a for a in args)
    if with_slash and with_slash != len(args):
        raise CliError(
            "there is no need to specify a resource type as a separate argument when passing "
            f"arguments in resource/name form (e.g. '{prog} get resource/<resource_name>' "
            f"instead of '{prog} get resource resource/<resource_name>'"
        )
    if not with_slash:
        return Request(types=args[0], names=tuple(args[1:]))
    pairs = []
    for arg in args:
        parts = arg.split("/")
        if len(parts) != 2:
            raise CliError("arguments in resource/name form may not have more than one slash")
        type_, name = parts
        if not type_ or not name or len(split_types(type_)) != 1:
            raise CliError("arguments in resource/name form must have a single resource and name")
        pairs.append((type_, name))
    return Request(pairs=tuple(pairs))


def expand_categories(resources: Sequence[ApiResource], types: str) -> str:
    """kubectl's aliases: a category such as `all` becomes the resources that belong to it."""
    expanded = []
    for arg in types.split(","):
        members = [r for r in resources if arg in r.categories]
        if members:
            arg = ",".join(f"{r.plural}.{r.group}" if r.group else r.plural for r in members)
        expanded.append(arg)
    return ",".join(expanded)


def _expand_short_name(
    resources: Sequence[ApiResource], name: str, group: str
) -> tuple[str, str] | None:
    """kubectl's short names (`cm`, `deploy`): the plural and group they stand for, or None
    when `name` is no short name or is also a full name."""
    in_group = [r for r in resources if not group or r.group == group]
    if any(name in (r.plural, r.singular) for r in in_group):
        return None
    for r in in_group:
        if name in r.short_names:
            return r.plural, r.group
    if group:
        # A group prefix is enough: `deploy.app` finds deploy in apps.
        for r in resources:
            if r.group.startswith(group) and name in r.short_names:
                return r.plural, r.group
    return None


def _by_resource(
    resources: Sequence[ApiResource], name: str, group: str, version: str | None
) -> ApiResource | None:
    expanded = _expand_short_name(resources, name, group)
    if expanded is not None:
        (name, group), version = expanded, None
    name = name.lower()
    for r in resources:
        if name not in (r.plural, r.singular):
            continue
        if version is None:
            # An abbreviated group matches too: `storageclass.storage` for storage.k8s.io.
            if r.group.startswith(group):
                return r
        elif r.version == version and (not group or r.group == group):
            return r
    return None


def _by_kind(
    resources: Sequence[ApiResource], kind: str, group: str, version: str | None
) -> ApiResource | None:
    for r in resources:
        in_version = version is None or r.version == version
        if kind in (r.kind, r.kind.lower()) and r.group == group and in_version:
            return r
    return None


def resolve_type(resources: Sequence[ApiResource], arg: str) -> ApiResource:
    """The resource an argument names, `resources` being in order of preference (the first
    match wins, as with kubectl's priority REST mapper): a resource name, else a kind, either
    optionally followed by `.<group>` or `.<version>.<group>`."""
    name, *rest = arg.split(".")
    group = ".".join(rest)
    qualified = (".".join(rest[1:]), rest[0]) if len(rest) >= 2 else None
    found = None
    if qualified is not None:
        found = _by_resource(resources, name, *qualified)
    found = found or _by_resource(resources, name, group, None)
    if found is None and qualified is not None:
        found = _by_kind(resources, name, *qualified)
    found = found or _by_kind(resources, name, group, None)
    if found is None:
        raise CliError(f'the server doesn\'t have a resource type "{name}"')
    return found


def _aggregate(messages: Sequence[str]) -> str:
    """Kubernetes' aggregate error text: one message as is, several in brackets."""
    unique = list(dict.fromkeys(messages))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


def _targets(resources: Sequence[ApiResource], request: Request) -> list[tuple[ApiResource, str]]:
    if request.pairs:
        mapped: dict[str, ApiResource] = {}
        for type_, _ in request.pairs:
            if type_ not in mapped:
                mapped[type_] = resolve_type(resources, type_)
        return [(mapped[type_], name) for type_, name in request.pairs]
    types = split_types(expand_categories(resources, request.types))
    if not request.names:
        for type_ in types:
            resolve_type(resources, type_)
        raise CliError("resource(s) were provided, but no name was specified")
    if len(types) > 1:
        raise CliError("you must specify only one resource")
    resource = resolve_type(resources, types[0])
    return [(resource, name) for name in request.names]


async def find_by_arguments(
    s: Session, catalog: ApiCatalog, args: Sequence[str]
) -> list[dict[str, Any]]:
    request = parse_arguments(args)
    targets = _targets(await catalog.everything(), request)
    objects: list[dict[str, Any]] = []
    errors: list[str] = []
    for resource, name in targets:
        try:
            objects.append(await s.kube.get(resource.path(s.namespace, name)))
        except ApiError as e:
            errors.append(e.message)
    if errors:
        raise CliError(f"x: {_aggregate(errors)}")
    return objects


def parse_group_version(text: str) -> str:
    if text.count("/") > 1:
        raise CliError(f"invaild apiVersion: unexpected GroupVersion string: {text}")
    return text


async def find_by_kind(
    s: Session, catalog: ApiCatalog, args: Sequence[str], kind: str, api_version: str
) -> dict[str, Any]:
    if not args:
        raise CliError("object name is required")
    if not kind:
        raise CliError("object kind is required (--kind)")
    if not api_version:
        raise CliError("object apiVersion is required (--api-version)")
    api_version = parse_group_version(api_version)
    try:
        obj = await get_object(s.kube, catalog, api_version, kind, s.namespace, args[0])
    except TraceError as e:
        raise CliError(f"failed to find object: {e}") from None
    # flux's client hands the object back under the kind it was asked for, as typed.
    obj["kind"] = kind
    return obj
