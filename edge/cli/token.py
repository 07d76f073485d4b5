"""``edge token verify --json TOKEN --key PUB``: check a verification token offline."""

from __future__ import annotations

import argparse
import base64
import time
from typing import Any

from edge.cli.common import EXIT_DENIED, EXIT_OK, EXIT_USAGE, emit, existing_file, fail
from edge.errors import SecurityError
from edge.security.tokens import load_public_key, verify_token


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("token", help="verification tokens")
    cmds = p.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    v = cmds.add_parser("verify", help="verify a token's signature and claims")
    v.add_argument("token", help="the token as hex or base64, or a file holding it (raw or text)")
    v.add_argument("--key", required=True, help="device public key: PEM file, or 32-byte hex")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=run)


def _read_token(value: str) -> bytes:
    path = existing_file(value)
    if path is not None:
        data = path.read_bytes()
        try:
            return _read_token(data.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            return data
    try:
        return bytes.fromhex(value)
    except ValueError:
        pass
    try:  # standard or URL-safe alphabet, padding optional
        text = value.replace("-", "+").replace("_", "/")
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except ValueError:
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise ValueError(f"the token is not hex, base64 or a file: {shown!r}") from None


def jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


def run(args: argparse.Namespace) -> int:
    key_file = existing_file(args.key)
    try:
        key = load_public_key(key_file.read_bytes() if key_file else args.key.encode())
        token = _read_token(args.token)
    except (SecurityError, ValueError) as exc:
        fail(str(exc))
        return EXIT_USAGE
    try:
        claims = verify_token(token, key, now=time.time())
        result = {"valid": True, "reason": None, "claims": jsonable(claims)}
    except SecurityError as exc:
        result = {"valid": False, "reason": exc.code, "message": exc.message, "claims": None}
    if args.json:
        emit(result)
    else:
        print("VALID" if result["valid"] else f"INVALID {result['reason']}: {result['message']}")
    return EXIT_OK if result["valid"] else EXIT_DENIED
