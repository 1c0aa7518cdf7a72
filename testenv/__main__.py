"""python -m testenv build|build-peers|up|down|status|kubeconfig|git-serve"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from testenv import build, plane


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testenv", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="compile the pinned binaries (a no-op when cached)")
    b.add_argument("--force", action="store_true", help="rebuild even when cached")
    bp = sub.add_parser(
        "build-peers",
        help="compile Flux's source-, kustomize- and helm-controller for the benchmarks",
    )
    bp.add_argument("--force", action="store_true", help="rebuild even when cached")
    for name, text in (
        ("up", "start a plane and print its KUBECONFIG"),
        ("down", "stop the plane's processes and remove its state"),
        ("status", "show the plane's processes and readiness"),
        ("kubeconfig", "print the path of the plane's admin kubeconfig"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--dir", type=Path, default=plane.default_dir(), help="state directory")
    gs = sub.add_parser(
        "git-serve", help="serve a demo Git repository over HTTP until stopped (make demo)"
    )
    gs.add_argument("--dir", type=Path, required=True, help="state directory (repos, address)")
    gs.add_argument("--seed", type=Path, required=True, help="files of the first commit")
    gs.add_argument("--name", default="demo", help="repository name")
    gs.add_argument("--port", type=int, default=0, help="port (default: any free one)")
    args = parser.parse_args(argv)

    try:
        if args.cmd == "build":
            build.build(force=args.force)
        elif args.cmd == "build-peers":
            from testenv import peers  # never imported by CI's `build`

            for path in peers.build_peers(force=args.force):
                print(path)
            print(peers.build_helm_controller(force=args.force))
        elif args.cmd == "up":
            state = plane.up(args.dir)
            print(f"export KUBECONFIG={state.kubeconfig}")
        elif args.cmd == "down":
            plane.down(args.dir)
        elif args.cmd == "status":
            for what, text in plane.status(args.dir):
                print(f"{what:<26} {text}")
        elif args.cmd == "git-serve":
            from testenv import demo_git

            return demo_git.serve(args.dir, args.seed, args.name, args.port)
        elif args.cmd == "kubeconfig":
            path = args.dir.resolve() / "kubeconfig"
            if not path.exists():
                print(f"no plane in {args.dir}; run `python -m testenv up`", file=sys.stderr)
                return 1
            print(path)
    except plane.PlaneError as e:
        print(f"testenv: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
