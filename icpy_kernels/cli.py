"""The ``icpy`` command: serve | exec | run | kernels."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from . import __version__
from .config import add_arguments, load_settings


def cmd_serve(args: argparse.Namespace) -> int:
    from .server.app import serve

    settings = load_settings(args)
    asyncio.run(serve(settings))
    return 0


def cmd_kernels(args: argparse.Namespace) -> int:
    from .runtime.kernelspecs import install_kernelspecs, kernel_spec_manager
    from .runtime.languages import LanguageTable

    if args.kernels_command == "install":
        for name, path in install_kernelspecs(user=args.user, prefix=args.prefix or (sys.prefix if args.sys_prefix else None)):
            print(f"installed {name} -> {path}")
        return 0
    ksm = kernel_spec_manager()
    table = LanguageTable(ksm, load_settings(None).language_overrides)
    by_kernel = {}
    for lang in table.languages():
        by_kernel.setdefault(lang.kernel_name, []).append(lang.name)
    for name, path in sorted(ksm.find_kernel_specs().items()):
        langs = ", ".join(by_kernel.get(name, [])) or f"kernel:{name}"
        print(f"{name:<20} {langs:<20} {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="icpy", description=__doc__)
    parser.add_argument("--version", action="version", version=f"icpy_kernels {__version__}")
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the WebSocket/REST server",
                           description="Run the server. Every option can also be set by its ICPY_* environment variable.")
    add_arguments(serve)
    serve.set_defaults(func=cmd_serve)

    kernels = sub.add_parser("kernels", help="list or install kernelspecs")
    ksub = kernels.add_subparsers(dest="kernels_command", required=True)
    ksub.add_parser("list", help="kernelspecs the bridge can run")
    install = ksub.add_parser("install", help="install python3, icpy-bash and icpy-javascript specs")
    where = install.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="into the user's Jupyter data dir")
    where.add_argument("--sys-prefix", action="store_true", help="into sys.prefix (this venv)")
    where.add_argument("--prefix", help="into PREFIX/share/jupyter/kernels")
    kernels.set_defaults(func=cmd_kernels)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
