"""The Git client of the GitRepository controller: dulwich transports, no working tree.

auth = AuthOptions.from_secret(url, secret_data, timeout=60)
rev = await remote_head(url, ref, auth)          # ls-remote only: skip when unchanged
commit = await fetch(url, ref, auth, mirror_dir) # incremental into a bare mirror
with tree_entries(mirror_dir, commit.hash) as entries:
    Archiver().from_entries(entries, out, ignore=IgnoreRules.from_sources(
        sourceignore_files(mirror_dir, commit.hash), spec_ignore))
verify_commit(commit, "HEAD", verify_secret_data)

spec.recurseSubmodules and spec.sparseCheckout shape what the tree holds:
checkout = await checkout_submodules(url, auth, mirror_dir, commit.hash)  # Checkout
with GitTree.of(checkout, SparseSelection.from_spec(["./deploy"])) as entries: ...
"""

from tidal.source.git.auth import AuthOptions, ProxyOptions
from tidal.source.git.client import fetch, remote_head
from tidal.source.git.commit import Commit, Tag
from tidal.source.git.errors import (
    AuthenticationError,
    AuthOptionsError,
    EmptyRepositoryError,
    FetchError,
    GitError,
    GitTimeoutError,
    HostKeyError,
    InvalidURLError,
    NoSemverMatchError,
    RefNotFoundError,
    RepositoryNotFoundError,
    SubmoduleError,
    TLSError,
    UnsupportedError,
    VerificationError,
)
from tidal.source.git.refs import Ref, RefKind
from tidal.source.git.sparse import SparseSelection
from tidal.source.git.submodules import checkout_submodules
from tidal.source.git.tree import Checkout, GitTree, sourceignore_files, tree_entries
from tidal.source.git.url import GitURL, parse_url
from tidal.source.git.verify import Verification, verify_commit

__all__ = [
    "AuthOptions",
    "AuthOptionsError",
    "AuthenticationError",
    "Checkout",
    "Commit",
    "EmptyRepositoryError",
    "FetchError",
    "GitError",
    "GitTimeoutError",
    "GitTree",
    "GitURL",
    "HostKeyError",
    "InvalidURLError",
    "NoSemverMatchError",
    "ProxyOptions",
    "Ref",
    "RefKind",
    "RefNotFoundError",
    "RepositoryNotFoundError",
    "SparseSelection",
    "SubmoduleError",
    "TLSError",
    "Tag",
    "UnsupportedError",
    "Verification",
    "VerificationError",
    "checkout_submodules",
    "fetch",
    "parse_url",
    "remote_head",
    "sourceignore_files",
    "tree_entries",
    "verify_commit",
]
