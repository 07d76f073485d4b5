"""``edge card``: a development issuer (init-issuer, issue, revoke) and the offline verifier (verify).

The reference registry issues cards with the same ``CardIssuer``; these commands exist so a card can be
made and checked on one machine without it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

from edge.cli.common import (
    EXIT_DENIED,
    EXIT_OK,
    EXIT_UNREADABLE,
    EXIT_USAGE,
    config_from_args,
    emit,
    existing_file,
    fail,
    hex_bytes,
)
from edge.credential.issuer import CardIssuer, render_qr_png
from edge.credential.keys import generate_issuer_key, load_private_pem, private_pem
from edge.credential.model import CARD_PREFIX, CARD_TYPES, Card
from edge.credential.trust import RevocationList, TrustList
from edge.credential.verifier import CardVerifier
from edge.errors import CredentialError, ImageError
from edge.imageio import load_image
from edge.qr.stage import QRStage
from edge.vision.matcher import FACE_MODELS, SFACE

KEY_FILE, TRUST_FILE, REVOCATION_FILE = "issuer_key.pem", "trust.json", "revocations.json"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("card", help="issue (development) and verify health cards")
    cmds = p.add_subparsers(dest="card_command", metavar="ACTION", required=True)

    init = cmds.add_parser("init-issuer", help="make an issuer key, trust list and empty revocation list")
    init.add_argument("dir", type=Path)
    init.add_argument("--issuer", default="dev-issuer", help="issuer id written in cards (iss)")
    init.add_argument("--alg", choices=["ES256", "Ed25519"], default="ES256")
    init.set_defaults(func=run_init)

    issue = cmds.add_parser("issue", help="issue a card: writes OUT.txt (QR text) and OUT.png")
    issue.add_argument("--issuer-dir", type=Path, required=True)
    issue.add_argument("--type", choices=sorted(CARD_TYPES), required=True)
    issue.add_argument("--site", required=True)
    issue.add_argument("--ward")
    issue.add_argument("--station")
    issue.add_argument("--window", help="appointment window START,END in unix seconds")
    issue.add_argument("--valid-for", type=int, default=365 * 86400, help="seconds (default one year)")
    issue.add_argument("--holder", type=hex_bytes(16), help="holder pseudonym, 32 hex chars (default random)")
    issue.add_argument("--template-sha256", type=hex_bytes(32),
                       help="SHA-256 hex of the enrolled template (face commitment)")
    issue.add_argument("--model-id", default=SFACE.model_id, choices=[m.model_id for m in FACE_MODELS.values()],
                       help="face model of the enrolled template (a card naming another is refused at every gate)")
    issue.add_argument("--out", type=Path, required=True, help="output prefix: OUT.txt and OUT.png")
    issue.set_defaults(func=run_issue)

    revoke = cmds.add_parser("revoke", help="add a card id to the issuer's revocation list")
    revoke.add_argument("--issuer-dir", type=Path, required=True)
    revoke.add_argument("card_id", help="card id (cti) in hex")
    revoke.set_defaults(func=run_revoke)

    verify = cmds.add_parser("verify", help="verify a card offline from its QR text or an image of it")
    verify.add_argument("card", help="QR text, or the path of an image showing the QR code")
    verify.add_argument("--json", action="store_true")
    verify.add_argument("--trust", type=Path, help="trust list JSON (default: [card] trust_list in config)")
    verify.add_argument("--revocations", type=Path, help="revocation list JSON")
    verify.add_argument("--site", help="this site's id (default: [site] id in config; '*' for any)")
    verify.add_argument("--config", help="TOML config file")
    verify.set_defaults(func=run_verify)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def run_init(args: argparse.Namespace) -> int:
    args.dir.mkdir(parents=True, exist_ok=True)
    if (args.dir / KEY_FILE).exists():
        fail(f"{args.dir / KEY_FILE} exists; refusing to overwrite an issuer key")
        return EXIT_USAGE
    key = generate_issuer_key(args.alg)
    _write_private(args.dir / KEY_FILE, private_pem(key))
    trust = TrustList(version=1)
    entry = trust.add(args.issuer, key.public_key())
    (args.dir / TRUST_FILE).write_text(json.dumps(trust.to_json(), indent=2))
    (args.dir / REVOCATION_FILE).write_text(json.dumps(RevocationList(version=1).to_json(), indent=2))
    (args.dir / "issuer.txt").write_text(args.issuer + "\n")
    emit({"issuer": args.issuer, "kid": entry.kid.hex(), "alg": args.alg, "dir": str(args.dir)})
    return EXIT_OK


def _issuer_from(dir_: Path) -> CardIssuer:
    key = load_private_pem((dir_ / KEY_FILE).read_bytes())
    return CardIssuer(key, (dir_ / "issuer.txt").read_text().strip())


def card_json(card: Card) -> dict:
    return {"card_id": card.card_id.hex(), "issuer": card.issuer, "type": card.card_type,
            "holder": card.holder.hex(), "site": card.scope.site, "ward": card.scope.ward,
            "station": card.scope.station, "window": list(card.scope.window) if card.scope.window else None,
            "not_before": card.not_before, "expires_at": card.expires_at, "kid": card.kid.hex(),
            "template_sha256": card.face.template_sha256.hex(), "model_id": card.face.model_id}


def run_issue(args: argparse.Namespace) -> int:
    try:
        window = tuple(int(x) for x in args.window.split(",")) if args.window else None
        if window is not None and len(window) != 2:
            raise ValueError("--window takes START,END")
        holder = args.holder or os.urandom(16)
        digest = args.template_sha256 or hashlib.sha256(b"").digest()
        issuer = _issuer_from(args.issuer_dir)
        text, card = issuer.issue(card_type=args.type, holder=holder, site=args.site, ward=args.ward,
                                  station=args.station, window=window, valid_for_s=args.valid_for,
                                  template_sha256=digest, model_id=args.model_id)
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
        return EXIT_USAGE
    args.out.parent.mkdir(parents=True, exist_ok=True)
    txt, png = args.out.with_suffix(".txt"), args.out.with_suffix(".png")
    txt.write_text(text + "\n")
    version = render_qr_png(text, png)
    emit({**card_json(card), "text": text, "text_path": str(txt), "png_path": str(png), "qr_version": version})
    return EXIT_OK


def run_revoke(args: argparse.Namespace) -> int:
    path = args.issuer_dir / REVOCATION_FILE
    revocations = RevocationList.load(path)
    try:
        revocations.revoke(bytes.fromhex(args.card_id))
    except ValueError:
        fail("card id must be hex")
        return EXIT_USAGE
    revocations.version += 1
    path.write_text(json.dumps(revocations.to_json(), indent=2))
    emit({"revoked": args.card_id, "revocation_list_version": revocations.version})
    return EXIT_OK


def _texts_from(argument: str, budget_ms: float) -> list[str]:
    """The card text given, or the codes read from the image file it names, searched until a card is read
    (a poster's code beside it does not end the search: edge/qr/stage.py)."""
    path = existing_file(argument)
    if path is not None:
        codes = QRStage(budget_ms=budget_ms).decode(load_image(path), wanted=lambda c: c.text.startswith(CARD_PREFIX))
        return [code.text for code in codes]
    return [argument]


def run_verify(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    trust_path = args.trust or config.card.trust_list
    if trust_path is None:
        fail("no trust list: pass --trust FILE or set [card] trust_list")
        return EXIT_USAGE
    revocation_path = args.revocations or config.card.revocations
    verifier = CardVerifier(TrustList.load(Path(trust_path)),
                            RevocationList.load(Path(revocation_path)) if revocation_path else None,
                            accepted_types=config.card.accepted_types, site=args.site or config.site.id,
                            clock_skew_s=config.card.clock_skew_s, clock=time.time)
    result: dict = {"valid": False, "reason": None, "message": None, "card": None}
    try:
        texts = _texts_from(args.card, config.qr.budget_ms)
    except ImageError as exc:
        result.update(reason=exc.code, message=exc.message)
        emit(result) if args.json else fail(exc.message)
        return EXIT_UNREADABLE
    if not texts:
        result.update(reason="qr_not_found", message="no QR code found in the image")
    for text in texts:
        try:
            card = verifier.verify(text)
        except CredentialError as exc:
            result.update(reason=exc.code, message=exc.message)
            continue
        result = {"valid": True, "reason": None, "message": "card verified", "card": card_json(card)}
        break
    if args.json:
        emit(result)
    else:
        print(("VALID  " + result["card"]["type"] + "  " + result["card"]["card_id"]) if result["valid"]
              else f"REFUSED  {result['reason']}: {result['message']}")
    return EXIT_OK if result["valid"] else EXIT_DENIED
