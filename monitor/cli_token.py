"""`primewatch token new|hash`: make API tokens whose plaintext never enters the config.

`new` prints a fresh random token once, with the `server.tokens` entry holding only its
sha256 digest; `hash` prints the digest of a token read from stdin (not from argv,
which other users of the machine can read in the process list and the shell keeps in
its history). Neither needs a config file.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from typing import TextIO

from pydantic import ValidationError

from monitor.config import ApiToken

EXIT_OK, EXIT_USAGE = 0, 2
TOKEN_BYTES = 32
"""256 bits of randomness: a digest of it cannot be reversed by guessing."""
PREFIX = "pw_"
"""Marks the string as a primewatch token for secret scanners and people."""


def add_parsers(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser("token", help="create or hash API tokens (server.tokens)")
    actions = parser.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    new = actions.add_parser(
        "new", help="print a new random token once, and its config entry",
        description="Print a new random API token (shown only this once) and the "
                    "server.tokens entry to paste into the config, which holds only the "
                    "token's sha256 digest.")
    new.add_argument("name", metavar="NAME",
                     help="the token's name: the author of its writes in the audit log")
    new.add_argument("--scope", choices=["read", "write"], default="write",
                     help="read: GET routes and pages; write: also ack, resolve, silence "
                          "(default: write)")
    actions.add_parser(
        "hash", help="print the token_hash of a token read from stdin",
        description="Read a token from stdin (one line) and print the token_hash value "
                    "for it, e.g. to move an existing token out of the config.")


def run(args: argparse.Namespace, *, stdin: TextIO | None = None,
        stdout: TextIO | None = None) -> int:
    out = stdout or sys.stdout
    if args.token_command == "hash":
        return _hash(stdin or sys.stdin, out)
    return _new(args.name, args.scope, out)


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def _new(name: str, scope: str, out: TextIO) -> int:
    token = new_token()
    try:
        entry = ApiToken.model_validate({"name": name, "token_hash": ApiToken.hash(token),
                                         "scope": scope})
    except ValidationError as exc:
        problems = "; ".join(e["msg"] for e in exc.errors(include_url=False))
        print(f"error: invalid token name {name!r}: {problems}", file=sys.stderr)
        return EXIT_USAGE
    out.write(f"New {scope} token {name!r}; it is shown only now, store it safely:\n\n"
              f"    {token}\n\n"
              "Add this entry under server.tokens in the config (it holds only the "
              "token's digest):\n\n"
              f"  - name: {json.dumps(entry.name)}\n"  # quoted: "1.0" stays a string
              f"    token_hash: \"{entry.token_hash}\"\n"
              f"    scope: {entry.scope}\n")
    return EXIT_OK


def _hash(stdin: TextIO, out: TextIO) -> int:
    token = stdin.readline().strip()
    if not token:
        print("error: no token on stdin (e.g. `primewatch token hash < token.txt`)",
              file=sys.stderr)
        return EXIT_USAGE
    out.write(ApiToken.hash(token) + "\n")
    return EXIT_OK
