#!/usr/bin/env python3
"""Checks the report of bench/gpu_bench.py (scripts/gpu-check.sh runs it after the bench): every
preset x precision x batch the bench planned for the towers is a row of gpu-bench.json and of the
table in gpu-bench.md, or is listed as skipped (time budget, a failed model_bench); every preset
has its end-to-end row or a skip. With --require-all (the CPU dry run, which has time for all of
it) nothing may be skipped. Exit 0 when the report is complete, 1 (with what is missing) if not.

  gpu_bench_check.py DIR [--require-all]
"""
import argparse
import json
import os
import sys


def problems(out_dir, require_all):
    with open(os.path.join(out_dir, "gpu-bench.json")) as f:
        report = json.load(f)
    with open(os.path.join(out_dir, "gpu-bench.md")) as f:
        table = f.read().splitlines()
    planned = report["planned"]
    results, skipped = report["results"], report["skipped"]
    found = []

    def skip_of(name):
        # gpu_bench.py's skip lines start with the measurement's name ("<preset> <precision>").
        return next((s for s in skipped if s.startswith(name + " ") or s.startswith(name + ":")),
                    None)

    def missing(name, what):
        skip = skip_of(name)
        if skip is None or require_all:
            found.append(f"{name}: {what}" + (f" (skipped: {skip})" if skip else ""))

    for preset in planned["presets"]:
        for precision in planned["precisions"]:
            name = f"{preset} {precision}"
            rows = [r for r in results if r["kind"] == "towers" and r["preset"] == preset
                    and r["precision"] == precision]
            if not rows:
                missing(name, "no towers rows in gpu-bench.json")
                continue
            batches = sorted(r["batch"] for r in rows)
            if batches != sorted(planned["batches"]):
                found.append(f"{name}: towers batches {batches}, planned {planned['batches']}")
            for b in batches:
                row = f"| towers | {preset} | {precision} | {b} |"
                if not any(line.startswith(row) for line in table):
                    found.append(f"{name}: batch {b} is not in the table of gpu-bench.md")
        if not any(r["kind"] == "end_to_end" and r["preset"] == preset for r in results):
            missing(f"{preset} end to end", "no end-to-end row in gpu-bench.json")
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("dir", help="gpu_bench.py's --out directory")
    ap.add_argument("--require-all", action="store_true", help="a skipped measurement is an error")
    a = ap.parse_args()
    found = problems(a.dir, a.require_all)
    for p in found:
        print(f"gpu_bench_check: {p}")
    if not found:
        print("gpu_bench_check: every planned measurement is in gpu-bench.json and gpu-bench.md")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
