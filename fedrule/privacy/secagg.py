"""Secure aggregation of dense vectors by pairwise masking (SecAgg, Bonawitz et al. 2017).

The devices of one request (a cohort of n) each hold a vector x_u of L values. The server must
learn only sum_u x_u over the devices that finished, never one x_u. The protocol, in the
rounds of the paper (the simulator runs a cohort's rounds inside the node that simulates it; the
messages between devices are assumed to travel over authenticated encrypted channels relayed by
the server, as in the paper):

0. **Advertise keys.** Every device draws a key seed s_u (a field element, below) from which
   its X25519 key pair is derived, and a self-mask seed b_u; it publishes its public key. A
   device refuses to go on when fewer than ``min_cohort`` devices took part.
1. **Share keys.** Every device Shamir-shares s_u and b_u (threshold t) among its *holders*:
   itself and its neighbours (every other device of the cohort with ``neighbors: 0``; with k
   neighbours, the k nearest on the ring of the cohort's order, as in SecAgg+, Bell et al. 2020).
2. **Masked input.** Every surviving device sends, mod 2^64,
   ``y_u = x_u + PRG(b_u) + sum_{v in N(u), v > u} PRG(s_uv) - sum_{v in N(u), v < u} PRG(s_uv)``
   where s_uv is the X25519 shared secret of u and v (the same on both sides), so the pairwise
   masks cancel in the sum over all devices. A device that drops out sends nothing.
3. **Unmasking.** When at least ``min_cohort`` devices sent y_u, every survivor sends, for each
   device whose shares it holds, the share of b_w if w survived and the share of s_w if w
   dropped out (never both). The server reconstructs, from t shares each, the survivors' b_u
   (removing their self masks) and the dropped devices' s_v (recomputing, from s_v and the
   survivors' public keys, the pairwise masks that no longer cancel). It learns the sum and
   nothing more as long as fewer than t holders of a device collude with it.

Arithmetic: every value is a uint64 and every sum is mod 2^64 (numpy's uint64 wraps). Integers
(histograms) travel as they are. Floats travel in fixed point: ``round(x * 2^FRACTION_BITS)`` as
a two's-complement int64, so the resolution is 2^-32 (each value is rounded by at most 2^-33)
and the decoded **sum** is exact as long as its magnitude stays below 2^31 (``FLOAT_RANGE``).

The PRG is ChaCha20's keystream (``cryptography``) under a 256-bit key derived by HKDF-SHA256
from the seed (b_u, or the X25519 shared secret) with a domain-separating label.

Shamir secret sharing is over the prime field of p = 2^127 - 1 (a Mersenne prime); seeds are
field elements, so a share is 16 bytes. The threshold is t = floor(2m/3) + 1 for m holders
(``threshold_of``): the sum survives up to m - t dropouts among a device's holders, and t > m/2.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fedrule.errors import FedruleError
from fedrule.scenario.schema import PrivacyConfig

MODULUS_BITS = 64  # every masked value and sum is mod 2^64
FRACTION_BITS = 32  # fixed point: resolution 2^-32
FLOAT_RANGE = 2.0 ** (MODULUS_BITS - 1 - FRACTION_BITS)  # |sum| < 2^31 decodes exactly
PRIME = 2**127 - 1  # Shamir's field
SHARE_BYTES = 16
KEY_BYTES = 32
SELF, KEY = 0, 1  # what a share is a share of: the self-mask seed b_u, the key seed s_u


class SecAggAbort(FedruleError):
    """Secure aggregation stopped: too few devices to reveal a sum, or too many dropouts."""


@dataclass(frozen=True)
class SecAggParams:
    """The protocol's settings: the smallest cohort whose sum may be revealed, the neighbours
    of each device (0: all), and the share of a device's holders needed to recover its seeds."""

    min_cohort: int = 2
    neighbors: int = 0
    threshold: float = 2 / 3

    def holders(self, n: int) -> list[np.ndarray]:
        """Per device position, the positions holding its shares (itself first, then its
        neighbours): the cohort's mask graph."""
        return [np.concatenate([[u], neighbours(n, self.neighbors, u)]) for u in range(n)]

    def threshold_of(self, holders: int) -> int:
        return min(holders, int(np.floor(self.threshold * holders)) + 1)


def params_of(privacy: PrivacyConfig) -> SecAggParams | None:
    """A scenario's secure-aggregation settings (None: off); both sides use the same."""
    if not privacy.secure_aggregation:
        return None
    return SecAggParams(min_cohort=privacy.min_cohort, neighbors=privacy.secagg_neighbors)


def neighbours(n: int, k: int, u: int) -> np.ndarray:
    """The positions device u masks with: all others (k = 0 or k >= n - 1), or its k nearest on
    the cohort's ring (k // 2 on each side; k rounded up to even)."""
    if k <= 0 or k >= n - 1:
        return np.array([v for v in range(n) if v != u], dtype=np.int64)
    half = (k + 1) // 2
    around = {(u + j) % n for j in range(1, half + 1)} | {(u - j) % n for j in range(1, half + 1)}
    around.discard(u)
    return np.array(sorted(around), dtype=np.int64)


# ---------------------------------------------------------------------- fixed point
def encode_ints(values: np.ndarray) -> np.ndarray:
    """Integers as elements of Z/2^64 (two's complement)."""
    return np.ascontiguousarray(np.asarray(values, dtype=np.int64)).view(np.uint64)


def decode_ints(total: np.ndarray) -> np.ndarray:
    return np.asarray(total, dtype=np.uint64).view(np.int64)


def encode_fixed(values: np.ndarray) -> np.ndarray:
    """Floats in fixed point (scale 2^FRACTION_BITS), as elements of Z/2^64."""
    values = np.asarray(values, dtype=np.float64)
    if values.size and not (np.isfinite(values).all() and np.abs(values).max() < FLOAT_RANGE):
        raise ValueError(f"secure aggregation encodes floats of magnitude < {FLOAT_RANGE:g}")
    return encode_ints(np.rint(values * 2.0**FRACTION_BITS))


def decode_fixed(total: np.ndarray) -> np.ndarray:
    """The float sum of fixed-point values (exact up to the rounding of each value)."""
    return decode_ints(total).astype(np.float64) / 2.0**FRACTION_BITS


# ---------------------------------------------------------------------- PRG and keys
def _hkdf(secret: bytes, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=label).derive(secret)


def prg(seed: bytes, length: int, label: bytes = b"fedrule secagg mask") -> np.ndarray:
    """``length`` uniform uint64 values: ChaCha20's keystream under HKDF(seed)."""
    key = _hkdf(seed, label)
    stream = Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor()
    return np.frombuffer(stream.update(bytes(8 * length)), dtype=np.uint64).copy()


def _seed_bytes(seed: int) -> bytes:
    return seed.to_bytes(SHARE_BYTES, "big")


def private_key(key_seed: int) -> X25519PrivateKey:
    """The X25519 key pair derived from a device's key seed (so that the seed can be shared)."""
    return X25519PrivateKey.from_private_bytes(_hkdf(_seed_bytes(key_seed), b"fedrule x25519"))


def public_bytes(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


def pair_mask(key: X25519PrivateKey, peer_public: bytes, length: int) -> np.ndarray:
    """The mask two devices agree on: the PRG seeded with their X25519 shared secret."""
    shared = key.exchange(X25519PublicKey.from_public_bytes(peer_public))
    return prg(shared, length, b"fedrule secagg pair")


def self_mask(self_seed: int, length: int) -> np.ndarray:
    return prg(_seed_bytes(self_seed), length, b"fedrule secagg self")


# ---------------------------------------------------------------------- Shamir
def share(secret: int, xs: Sequence[int], threshold: int) -> list[int]:
    """Shamir shares of ``secret`` (a field element) at the points ``xs`` (distinct, non-zero):
    any ``threshold`` of them recover it, fewer reveal nothing."""
    if not 0 <= secret < PRIME:
        raise ValueError("a shared secret must be a field element")
    if not 1 <= threshold <= len(xs):
        raise ValueError("the threshold must lie between 1 and the number of shares")
    coefficients = [secret] + [secrets.randbelow(PRIME) for _ in range(threshold - 1)]
    points = np.array([int(x) for x in xs], dtype=object)
    values = np.zeros(len(points), dtype=object)
    for c in reversed(coefficients):  # Horner, over every point at once (Python integers)
        values = (values * points + c) % PRIME
    return [int(v) for v in values]


def reconstruct(points: Sequence[tuple[int, int]]) -> int:
    """The secret (the polynomial at 0) from (x, share) points, by Lagrange interpolation."""
    xs = [x for x, _ in points]
    if len(set(xs)) != len(xs) or any(x % PRIME == 0 for x in xs):
        raise ValueError("shares must be at distinct non-zero points")
    secret = 0
    for j, (xj, yj) in enumerate(points):
        num, den = 1, 1
        for m, xm in enumerate(xs):
            if m != j:
                num = num * xm % PRIME
                den = den * (xm - xj) % PRIME
        secret = (secret + yj * num * pow(den, -1, PRIME)) % PRIME
    return secret


# ---------------------------------------------------------------------- the protocol
@dataclass(frozen=True)
class MaskedUpload:
    """What the server receives from a cohort: the survivors' masked vectors (rows in cohort
    order), every device's public key, who survived, and the survivors' unmasking shares
    (``share_index`` rows: owner position, holder position, SELF or KEY)."""

    masked: np.ndarray  # survivors x L, uint64
    public_keys: np.ndarray  # n x 32, uint8
    survived: np.ndarray  # n, bool
    share_index: np.ndarray  # S x 3, int64
    shares: np.ndarray  # S x 16, uint8

    def reply_fields(self) -> dict[str, np.ndarray]:
        """As a reply's secure-aggregation fields (``fedrule.protocol``)."""
        return {
            "masked": self.masked,
            "sa_public_keys": self.public_keys,
            "sa_survived": self.survived,
            "sa_share_index": self.share_index,
            "sa_shares": self.shares,
        }

    @staticmethod
    def from_reply(reply: object) -> MaskedUpload:
        """From a reply's secure-aggregation fields (``CountReply``, ``LabelReply``)."""
        return MaskedUpload(
            np.asarray(reply.masked, dtype=np.uint64),  # type: ignore[attr-defined]
            np.asarray(reply.sa_public_keys, dtype=np.uint8),  # type: ignore[attr-defined]
            np.asarray(reply.sa_survived, dtype=bool),  # type: ignore[attr-defined]
            np.asarray(reply.sa_share_index, dtype=np.int64),  # type: ignore[attr-defined]
            np.asarray(reply.sa_shares, dtype=np.uint8),  # type: ignore[attr-defined]
        )

    @staticmethod
    def refused(n: int, length: int) -> MaskedUpload:
        """A cohort's devices refused (too few of them): nothing is sent."""
        return MaskedUpload(
            np.zeros((0, length), np.uint64),
            np.zeros((n, KEY_BYTES), np.uint8),
            np.zeros(n, bool),
            np.zeros((0, 3), np.int64),
            np.zeros((0, SHARE_BYTES), np.uint8),
        )


def mask_cohort(vectors: np.ndarray, survived: np.ndarray, params: SecAggParams) -> MaskedUpload:
    """Every device of a cohort runs its side of the protocol on its own vector (row u of
    ``vectors``, uint64); devices with ``survived[u]`` false drop out after sharing their keys.
    Devices refuse (send nothing) when fewer than ``min_cohort`` devices take part or survive."""
    vectors = np.asarray(vectors, dtype=np.uint64)
    survived = np.asarray(survived, dtype=bool)
    n, length = vectors.shape
    if n < params.min_cohort or survived.sum() < params.min_cohort:
        return MaskedUpload.refused(n, length)
    # round 0: key seeds, self-mask seeds, public keys
    key_seed = [secrets.randbelow(PRIME) for _ in range(n)]
    self_seed = [secrets.randbelow(PRIME) for _ in range(n)]
    keys = [private_key(s) for s in key_seed]
    public = [public_bytes(k) for k in keys]
    # round 1: Shamir shares of both seeds, held by each device's holders (x = position + 1)
    holders = params.holders(n)
    held: dict[tuple[int, int, int], int] = {}  # (owner, holder, what) -> share
    for u in range(n):
        xs = [int(h) + 1 for h in holders[u]]
        t = params.threshold_of(len(xs))
        for what, seed in ((SELF, self_seed[u]), (KEY, key_seed[u])):
            for h, value in zip(holders[u], share(seed, xs, t), strict=True):
                held[(u, int(h), what)] = value
    # round 2: masked input of the survivors
    masked = []
    for u in np.flatnonzero(survived):
        y = vectors[u] + self_mask(self_seed[u], length)
        for v in neighbours(n, params.neighbors, int(u)):
            mask = pair_mask(keys[u], public[v], length)
            y = y + mask if v > u else y - mask
        masked.append(y)
    # round 3: every survivor reveals b_w of surviving w and s_w of dropped w, for the w it holds
    index, values = [], []
    for (owner, holder, what), value in held.items():
        if survived[holder] and what == (SELF if survived[owner] else KEY):
            index.append((owner, holder, what))
            values.append(np.frombuffer(_seed_bytes(value), dtype=np.uint8))
    return MaskedUpload(
        np.stack(masked).astype(np.uint64),
        np.stack([np.frombuffer(p, dtype=np.uint8) for p in public]),
        survived.copy(),
        np.asarray(index, dtype=np.int64).reshape(-1, 3),
        np.stack(values).astype(np.uint8),
    )


def unmask_sum(upload: MaskedUpload, length: int, params: SecAggParams) -> np.ndarray:
    """The server's side: the sum (uint64, mod 2^64) of the survivors' vectors, and nothing
    else. Raises ``SecAggAbort`` below ``min_cohort`` survivors or with too few shares."""
    survived = np.asarray(upload.survived, dtype=bool)
    n, alive = survived.size, int(survived.sum())
    if alive < params.min_cohort:
        raise SecAggAbort(
            f"secure aggregation aborted: {alive} of {n} devices sent a masked vector, fewer "
            f"than privacy.min_cohort = {params.min_cohort}",
            hint="lower privacy.min_cohort or raise engine.devices_per_node",
        )
    masked = np.asarray(upload.masked, dtype=np.uint64)
    if masked.shape != (alive, length):
        raise SecAggAbort(f"secure aggregation: expected {alive} masked vectors of {length}")
    total = masked.sum(axis=0, dtype=np.uint64)
    holders = params.holders(n)
    points: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for (owner, holder, what), value in zip(upload.share_index, upload.shares, strict=True):
        points.setdefault((int(owner), int(what)), []).append(
            (int(holder) + 1, int.from_bytes(value.tobytes(), "big"))
        )

    def recover(owner: int, what: int) -> int:
        got = points.get((owner, what), [])
        t = params.threshold_of(len(holders[owner]))
        if len(got) < t:
            raise SecAggAbort(
                f"secure aggregation aborted: {len(got)} shares of device {owner}'s seed, "
                f"{t} needed (too many dropouts)"
            )
        return reconstruct(got[:t])

    for u in np.flatnonzero(survived):
        total = total - self_mask(recover(int(u), SELF), length)
    public = [upload.public_keys[u].tobytes() for u in range(n)]
    for v in np.flatnonzero(~survived):
        key = private_key(recover(int(v), KEY))
        for u in neighbours(n, params.neighbors, int(v)):
            if survived[u]:  # u added +mask if v > u, else -mask: take it out
                mask = pair_mask(key, public[u], length)
                total = total - mask if v > u else total + mask
    return total


def secure_sum(
    vectors: np.ndarray, params: SecAggParams, survived: np.ndarray | None = None
) -> np.ndarray:
    """Mask and unmask in one call (tests, benchmarks): the survivors' sum mod 2^64."""
    vectors = np.asarray(vectors, dtype=np.uint64)
    alive = np.ones(len(vectors), bool) if survived is None else np.asarray(survived, bool)
    return unmask_sum(mask_cohort(vectors, alive, params), vectors.shape[1], params)
