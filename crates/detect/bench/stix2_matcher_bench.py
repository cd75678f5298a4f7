#!/usr/bin/env python3
"""Runs the OASIS stix2-matcher over the slice the Rust benchmark exported and prints
pattern-observation pairs per second, next to the Rust figures.

    cargo run --release -p phalanx-detect --example bench -- \
        --indicators 1000000 --lines 2000000 --export /tmp/detect-slice
    .venv/bin/python crates/detect/bench/stix2_matcher_bench.py /tmp/detect-slice

The slice holds patterns.txt (one pattern a line), observations.jsonl (one
observed-data a line, SCOs embedded under "objects") and expected.txt (pairs and
matches counted by phalanx-pattern's evaluator, and its pairs/s). Every pattern is
compiled once, then matched against every observation on its own, as the Rust
evaluator did; the number of matching pairs must agree.
"""

import json
import sys
import time
from pathlib import Path

from stix2matcher.matcher import Pattern


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    slice_dir = Path(sys.argv[1])
    patterns = [
        line for line in (slice_dir / "patterns.txt").read_text().splitlines() if line
    ]
    observations = [
        json.loads(line)
        for line in (slice_dir / "observations.jsonl").read_text().splitlines()
        if line
    ]
    expected = dict(
        line.split(" ", 1)
        for line in (slice_dir / "expected.txt").read_text().splitlines()
        if line
    )
    # STIX 2.0 mode: it reads observed-data with embedded "objects" (2.1 mode wants
    # bundles); patterns and comparison semantics are the same for this slice.
    compiled = [Pattern(p, stix_version="2.0") for p in patterns]
    pairs = 0
    matched = 0
    start = time.perf_counter()
    for p in compiled:
        for od in observations:
            pairs += 1
            if p.match([od]):
                matched += 1
    secs = time.perf_counter() - start
    rate = pairs / secs
    print(f"stix2-matcher: {pairs} pairs in {secs:.2f} s = {rate:.0f} pairs/s, {matched} matched")
    rust_pairs = int(expected["pairs"])
    rust_matched = int(expected["matched"])
    rust_rate = float(expected["phalanx_evaluator_pairs_per_sec"])
    print(f"phalanx evaluator: {rust_pairs} pairs, {rust_matched} matched, {rust_rate:.0f} pairs/s")
    print(f"ratio (phalanx evaluator / stix2-matcher): {rust_rate / rate:.1f}")
    if (pairs, matched) != (rust_pairs, rust_matched):
        print("MISMATCH: the two evaluators disagree on this slice", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
