#!/usr/bin/env python3
"""PEM upload parsing benchmark (issue 16, finding 5: quadratic splitting of PEM blocks).

`parse_upload` of hostile 256 KB PEM files (unterminated BEGIN lines, stray END lines, a body
with no END) ÷ the floor: `parse_upload` of a normal PEM bundle of the same size (a private
key, then leaf → intermediate → root certificates made here with cryptography, repeated to
256 KB), timed in the same run. A linear parser keeps every ratio near or below 1; the former
lazy DOTALL regex took ~25 s on 256 KB of "-----BEGIN A-----" lines.

Each case runs up to --runs times and stops early once it has used --budget seconds; a run
holds the GIL and cannot be interrupted, so at least one always completes. Everything runs in
this process: no other processes, no database, no network. Prints figures; asserts nothing.

Usage: .venv/bin/python bench/pem_parse.py [--runs N] [--budget S]
"""

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

from lbadmin.engines.certificates import (  # noqa: E402
    MAX_UPLOAD_BYTES,
    CertificateError,
    parse_upload,
)

FLOOR = "normal bundle (floor)"


def fill(unit: bytes, *, head: bytes = b"", tail: bytes = b"") -> bytes:
    """head + as many whole units as fit + tail: an upload of the largest allowed size."""
    return head + unit * ((MAX_UPLOAD_BYTES - len(head) - len(tail)) // len(unit)) + tail


def chain() -> tuple[bytes, bytes]:
    """(leaf key PEM, leaf + intermediate + root PEM): RSA 2048, SHA-256, valid now."""
    now = datetime.now(UTC)
    keys = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)]
    names = [
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        for cn in ("Bench Root CA", "Bench Issuing CA", "bench.example.com")
    ]
    certs: list[x509.Certificate] = []
    for n, (key, name) in enumerate(zip(keys, names, strict=True)):
        issuer = max(n - 1, 0)  # the root signs itself, then each signs the next
        certs.append(
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(names[issuer])
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=n < 2, path_length=None), critical=True)
            .sign(keys[issuer], hashes.SHA256())
        )
    key_pem = keys[2].private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    certs_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in reversed(certs))
    return key_pem, certs_pem


def cases() -> dict[str, bytes]:
    key_pem, certs_pem = chain()
    bundle = key_pem + certs_pem
    mixed = b"".join(
        f"-----BEGIN {label}-----\nMIIBAAAA\n".encode()
        for label in ("CERTIFICATE", "PRIVATE KEY", "RSA PRIVATE KEY", "PKCS7", "A")
    )
    return {
        # The same chain again and again, as a careless export might; duplicates are merged.
        FLOOR: fill(certs_pem, head=key_pem),
        "BEGIN A lines": fill(b"-----BEGIN A-----\n"),
        "unterminated, mixed labels": fill(mixed),
        "BEGIN A / END B pairs": fill(b"-----BEGIN A-----\n-----END B-----\n"),
        "one BEGIN, then END lines": fill(
            b"-----END CERTIFICATE-----\n", head=b"-----BEGIN A-----\n"
        ),
        "one BEGIN, base64, no END": fill(
            b"QUFBQUFB" * 8 + b"\n", head=b"-----BEGIN CERTIFICATE-----\n"
        ),
        "BEGIN A lines, one END A": fill(b"-----BEGIN A-----\n", tail=b"-----END A-----\n"),
        "bundle + BEGIN A lines": fill(b"-----BEGIN A-----\n", head=bundle),
    }


def outcome(data: bytes) -> str:
    try:
        parse_upload(data, password=None)
    except CertificateError as error:
        return f"refused: {str(error)[:44]}"
    return "accepted"


def timed(action: Callable[[], str], runs: int, budget: float) -> tuple[list[float], str]:
    """(up to `runs` timings, stopping once `budget` seconds are spent, the action's answer)."""
    samples: list[float] = []
    answer = ""
    while not samples or (len(samples) < runs and sum(samples) < budget):
        start = time.perf_counter()
        answer = action()
        samples.append(time.perf_counter() - start)
    return samples, answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--budget", type=float, default=5.0, help="seconds per case")
    args = parser.parse_args()
    results: dict[str, tuple[int, float, float, str]] = {}
    for name, data in cases().items():
        # The answer comes from the timed runs: a slow parser is not run once more for it.
        samples, answer = timed(lambda data=data: outcome(data), args.runs, args.budget)
        ordered = sorted(samples)
        results[name] = (len(ordered), ordered[0], statistics.median(ordered), answer)
    floor = results[FLOOR][2]
    print(
        f"PEM upload parsing, parse_upload of {MAX_UPLOAD_BYTES // 1024} KB files "
        f"(up to {args.runs} runs or {args.budget:g} s each)"
    )
    print(f"  {'case':<28} runs    min ms  median ms  ratio to floor  outcome")
    for name, (runs, low, median, result) in results.items():
        print(
            f"  {name:<28} {runs:>4} {low * 1000:9.2f} {median * 1000:10.2f}"
            f" {median / floor:15.2f}  {result}"
        )


if __name__ == "__main__":
    main()
