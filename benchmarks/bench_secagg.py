"""Cost of secure aggregation (fedrule.privacy.secagg) against the plain sum of the same vectors.

A cohort of ``--devices`` devices each holds a histogram of ``--items`` counts (3,706 = ML-1M's
items). Plain: the server adds the int64 histograms. Secure: every device masks its own vector
(X25519 with each neighbour, ChaCha20 masks, Shamir shares of its two seeds) and the server
unmasks the sum (reconstructing every survivor's self-mask seed). ``--neighbors 0`` is SecAgg's
complete graph (O(n^2) masks, O(n^3) Shamir work in all: keep n small); k > 0 is the SecAgg+
ring, O(n k) masks. ``--drop`` devices drop out after sharing (recovered from shares).

The simulator runs every device of a cohort in one process, so "devices" is the summed time of
all of them; per device it is that divided by n. One run, wall-clock, on whatever machine runs
it (the figures in docs/privacy.md came from 2 cores shared with other jobs).

    python benchmarks/bench_secagg.py --devices 1000 --items 3706 --neighbors 20
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from fedrule.privacy import secagg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--items", type=int, default=3706)
    parser.add_argument("--neighbors", type=int, default=20, help="0: every device (SecAgg)")
    parser.add_argument("--drop", type=int, default=0, help="devices that drop after sharing")
    parser.add_argument("--min-cohort", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n, length = args.devices, args.items
    counts = rng.poisson(0.05, size=(n, length)).astype(np.int64)  # ~185 items per device
    alive = np.ones(n, bool)
    alive[rng.choice(n, size=args.drop, replace=False)] = False
    params = secagg.SecAggParams(args.min_cohort, args.neighbors)

    start = time.perf_counter()
    plain = counts[alive].sum(axis=0)
    plain_s = time.perf_counter() - start

    start = time.perf_counter()
    upload = secagg.mask_cohort(secagg.encode_ints(counts), alive, params)
    devices_s = time.perf_counter() - start
    start = time.perf_counter()
    total = secagg.decode_ints(secagg.unmask_sum(upload, length, params))
    server_s = time.perf_counter() - start
    assert np.array_equal(total, plain), "the secure sum differs from the plain sum"

    plain_bytes = counts[alive].nbytes
    masked_bytes = upload.masked.nbytes + upload.shares.nbytes + upload.share_index.nbytes
    graph = "every device (SecAgg)" if args.neighbors == 0 else f"{args.neighbors} (SecAgg+)"
    print(f"{n} devices x {length} items, neighbours {graph}, {args.drop} dropped after sharing")
    print(f"plain sum                      {plain_s * 1e3:10.1f} ms")
    per_device = f"({devices_s / n * 1e3:.2f} ms per device)"
    print(f"secure: all devices' masking   {devices_s * 1e3:10.1f} ms  {per_device}")
    print(f"secure: server unmasking       {server_s * 1e3:10.1f} ms")
    ratio = (devices_s + server_s) / max(plain_s, 1e-9)
    print(f"secure / plain                 {ratio:10.0f}x  (exact: yes)")
    print(f"upload bytes: plain {plain_bytes:,}, masked + shares {masked_bytes:,}")


if __name__ == "__main__":
    main()
