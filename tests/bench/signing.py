"""Cost of authenticating messages: Ed25519 sign and verify per record, next to the envelope.

Measured on a typical message (a draft result of about 2 KB) so the ratio says what signing
adds to what every publish and consume already does: CloudEvents encoding and decoding.

    python -m tests.bench.signing [n]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from schemas.messages import DraftResult, Provenance
from shared.auth import Authenticator, Keyring, Principal, Role, Signer, Verifier
from shared.auth.keys import TrustedKey
from shared.transport.envelope import RawRecord, decode_envelope, encode_envelope

__all__ = ["bench_signing"]

_DRAFT = DraftResult(
    workflow_id="wf-bench",
    task_id="writer-3",
    attempt=1,
    provenance=Provenance(provider="offline", model="m", strategy_version="v"),
    draft="# Report\n\n" + "Replay rebuilds state from recorded events [a.md#1]. " * 40,
    cited_source_ids=["a.md#1"],
)


def _per_op_us(op: Callable[[], object], n: int) -> float:
    for _ in range(min(n, 200)):
        op()
    started = time.perf_counter()
    for _ in range(n):
        op()
    return (time.perf_counter() - started) / n * 1e6


def bench_signing(n: int = 5_000) -> dict[str, float]:
    """Microseconds per sign, verify (with authorisation) and envelope encode/decode."""
    key = Ed25519PrivateKey.generate()
    writer = Principal("writer", Role.AGENT, "writer")
    signer = Signer("writer", key)
    authenticator = Authenticator(Verifier(Keyring([TrustedKey(writer, key.public_key())])))
    envelope = encode_envelope(_DRAFT, key="wf-bench", source="agentlog/writer")
    headers = dict(envelope.headers)
    signed = {**headers, "agentlog-signature": signer.header(headers, envelope.key, envelope.value)}
    record = RawRecord("t", 0, 0, envelope.key, envelope.value, tuple(envelope.headers))
    now = datetime.now(UTC)

    def verify() -> object:
        return authenticator.authenticate(
            signed,
            envelope.key,
            envelope.value,
            ce_type=_DRAFT.TYPE,
            message=_DRAFT,
            record_time=now,
            signed_time=now,
        )

    sign_us = _per_op_us(lambda: signer.header(headers, envelope.key, envelope.value), n)
    verify_us = _per_op_us(verify, n)
    encode_us = _per_op_us(lambda: encode_envelope(_DRAFT, key="wf-bench", source="s"), n)
    decode_us = _per_op_us(lambda: decode_envelope(record), n)
    return {
        "n": float(n),
        "record_bytes": float(record.size),
        "sign_us": sign_us,
        "verify_us": verify_us,
        "encode_us": encode_us,
        "decode_us": decode_us,
        "sign_over_encode": sign_us / encode_us,
        "verify_over_decode": verify_us / decode_us,
    }


if __name__ == "__main__":
    print(bench_signing(int(sys.argv[1]) if len(sys.argv) > 1 else 5_000))
