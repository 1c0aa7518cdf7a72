"""Which remediation and retry rules are in force for a HelmRelease, and its failure counters:
helm-controller's Get{Active}Remediation/Retry, read from the spec and the last attempted
action."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from tidal.api.base import parse_duration
from tidal.api.helmrelease import (
    DEFAULT_RETRY_INTERVAL,
    RETRY_ON_FAILURE,
    HelmRelease,
    InstallStrategy,
)

INSTALL: Final = "install"
UPGRADE: Final = "upgrade"
ROLLBACK: Final = "rollback"
UNINSTALL: Final = "uninstall"


@dataclass(frozen=True)
class Remediation:
    action: str  # install | upgrade
    retries: int
    ignore_test_failures: bool | None
    remediate_last_failure: bool
    strategy: str  # rollback | uninstall

    def failure_count(self, hr: HelmRelease) -> int:
        status = hr.status
        return status.install_failures if self.action == INSTALL else status.upgrade_failures

    def increment(self, hr: HelmRelease) -> None:
        if self.action == INSTALL:
            hr.status.install_failures += 1
        else:
            hr.status.upgrade_failures += 1

    def retries_exhausted(self, hr: HelmRelease) -> bool:
        return self.retries >= 0 and self.failure_count(hr) > self.retries

    def must_ignore_test_failures(self, default: bool) -> bool:
        return default if self.ignore_test_failures is None else self.ignore_test_failures

    def is_uninstall_after_upgrade(self) -> bool:
        return self.action == UPGRADE and self.strategy == UNINSTALL


def install_remediation(hr: HelmRelease) -> Remediation:
    r = hr.spec.install.remediation if hr.spec.install else None
    return Remediation(
        action=INSTALL,
        retries=r.retries if r else 0,
        ignore_test_failures=r.ignore_test_failures if r else None,
        remediate_last_failure=bool(r and r.remediate_last_failure),
        # A failed install is only ever remediated by uninstalling it.
        strategy=UNINSTALL,
    )


def upgrade_remediation(hr: HelmRelease) -> Remediation:
    r = hr.spec.upgrade.remediation if hr.spec.upgrade else None
    retries = r.retries if r else 0
    last = r.remediate_last_failure if r else None
    return Remediation(
        action=UPGRADE,
        retries=retries,
        ignore_test_failures=r.ignore_test_failures if r else None,
        remediate_last_failure=retries > 0 if last is None else last,
        strategy=(r.strategy if r and r.strategy else ROLLBACK),
    )


def active_remediation(hr: HelmRelease) -> Remediation | None:
    action = hr.status.last_attempted_release_action
    if action == INSTALL:
        return install_remediation(hr)
    if action == UPGRADE:
        return upgrade_remediation(hr)
    return None


def _retry(strategy: InstallStrategy | None, default_to_retry: bool) -> float | None:
    if strategy is None:
        return parse_duration(DEFAULT_RETRY_INTERVAL) if default_to_retry else None
    if strategy.name != RETRY_ON_FAILURE:
        return None
    return parse_duration(strategy.retry_interval or DEFAULT_RETRY_INTERVAL)


def install_retry(hr: HelmRelease, default_to_retry: bool = False) -> float | None:
    """The retry interval when the install strategy is RetryOnFailure, else None."""
    return _retry(hr.spec.install.strategy if hr.spec.install else None, default_to_retry)


def upgrade_retry(hr: HelmRelease, default_to_retry: bool = False) -> float | None:
    return _retry(hr.spec.upgrade.strategy if hr.spec.upgrade else None, default_to_retry)


def active_retry(hr: HelmRelease, default_to_retry: bool = False) -> float | None:
    action = hr.status.last_attempted_release_action
    if action == INSTALL:
        return install_retry(hr, default_to_retry)
    if action == UPGRADE:
        return upgrade_retry(hr, default_to_retry)
    return None


def clear_failures(hr: HelmRelease) -> None:
    hr.status.failures = 0
    hr.status.install_failures = 0
    hr.status.upgrade_failures = 0
