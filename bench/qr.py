"""QR benchmark: decode rate per category and time per frame, each decoder alone and our stage.

Same generated frames for everyone (edge.qr.synthetic, seed 0), at 640x480 and 1280x720; negatives are
the face photos of shared/data (no QR code in them). Also card verifications per second.
Run: .venv/bin/python bench/qr.py [--per-category N]  (writes bench/results/qr.json)
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DATA, save

from edge.credential.issuer import CardIssuer
from edge.credential.keys import generate_issuer_key
from edge.credential.trust import TrustList
from edge.credential.verifier import CardVerifier
from edge.imageio import load_image
from edge.qr.decoders import OpenCVDecoder, ZBarDecoder, ZXingDecoder
from edge.qr.stage import QRStage, to_grey
from edge.qr.synthetic import CATEGORIES, generate


def decode_rates(per_category: int, width: int, height: int) -> dict:
    decoders = {"zxing": ZXingDecoder(), "zbar": ZBarDecoder(), "opencv": OpenCVDecoder()}
    stage = QRStage()
    table: dict = {c: {name: {"hits": 0, "ms": []} for name in [*decoders, "stage"]} for c in CATEGORIES}
    for sample in generate(per_category, width=width, height=height, data_dir=DATA):
        grey = to_grey(sample.frame)
        for name, decoder in decoders.items():
            start = time.perf_counter()
            codes = decoder.decode(grey)
            table[sample.category][name]["ms"].append((time.perf_counter() - start) * 1000)
            table[sample.category][name]["hits"] += any(c.text == sample.text for c in codes)
        start = time.perf_counter()
        codes = stage.decode(sample.frame)
        table[sample.category]["stage"]["ms"].append((time.perf_counter() - start) * 1000)
        table[sample.category]["stage"]["hits"] += any(c.text == sample.text for c in codes)
    out = {}
    for category, row in table.items():
        out[category] = {name: {"rate": round(v["hits"] / per_category, 3), "hits": v["hits"], "n": per_category,
                                "median_ms": round(statistics.median(v["ms"]), 2)} for name, v in row.items()}
    return out


def negatives() -> dict:
    stage = QRStage()
    images = sorted((DATA / "faces").glob("*/*.jp*g")) + sorted((DATA / "faces").glob("*/*/*.jp*g"))
    false_positives = sum(bool(stage.decode(load_image(p))) for p in images)
    return {"images": len(images), "false_positives": false_positives}


def verifications_per_second() -> dict:
    result = {}
    for alg in ("ES256", "Ed25519"):
        key = generate_issuer_key(alg)
        trust = TrustList()
        trust.add("h", key.public_key())
        text, _ = CardIssuer(key, "h").issue(card_type="health_card", holder=b"x" * 16, site="s",
                                             template_sha256=hashlib.sha256(b"").digest(), model_id="m")
        verifier = CardVerifier(trust, site="s")
        runs = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(200):
                verifier.verify(text)
            runs.append(200 / (time.perf_counter() - start))
        result[alg] = round(statistics.median(runs), 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-category", type=int, default=30)
    args = parser.parse_args()
    results = {"per_category": args.per_category}
    for width, height in ((640, 480), (1280, 720)):
        results[f"{width}x{height}"] = decode_rates(args.per_category, width, height)
        print(f"{width}x{height}")
        for category, row in results[f"{width}x{height}"].items():
            print(f"  {category:13s}", "  ".join(f"{n} {v['hits']:>2}/{v['n']} {v['median_ms']:6.1f}ms"
                                               for n, v in row.items()), flush=True)
    results["negatives"] = negatives()
    results["card_verifications_per_s"] = verifications_per_second()
    print(results["negatives"], results["card_verifications_per_s"])
    save("qr", results)


if __name__ == "__main__":
    main()
