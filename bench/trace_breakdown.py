#!/usr/bin/python3
"""Per-operator breakdown of a Chrome trace written by `model_bench --trace` (bench/README.md).

The trace holds the ATen operators of one image batch followed by one text batch, nested (an
operator's duration includes the operators it calls). This script computes each operator's *self*
time (its duration minus that of the operators directly inside it), splits the trace into the image
and the text tower at the first `aten::embedding`/`aten::index_select` of the text tower, and sums
self time per category (GEMM, layer norm, softmax, activation, copies, ...).

    bench/trace_breakdown.py TRACE.json [TRACE.json ...] [--json]

With several traces of the same forward (same model, batch and text length: the operators come in
the same order), each operator's self time is the minimum over the traces, which removes the spikes
of a shared machine (a thread preempted in the middle of one operator).
"""
import argparse
import collections
import json
import sys

# Category of an operator by name (self time). oneDNN's GEMMs are reached through convolutions.
CATEGORIES = [
    ("GEMM (oneDNN conv / linear / matmul)",
     ("aten::mkldnn_convolution", "aten::addmm", "aten::mm", "aten::bmm", "aten::matmul",
      "aten::linear", "aten::baddbmm", "aten::mkldnn_linear", "aten::_convolution",
      "aten::convolution", "aten::conv2d", "aten::mkldnn_matmul")),
    ("layer norm", ("aten::layer_norm", "aten::native_layer_norm")),
    ("softmax", ("aten::softmax", "aten::_softmax")),
    ("activation (QuickGELU / GELU)", ("aten::sigmoid", "aten::sigmoid_", "aten::gelu",
                                        "aten::silu", "aten::silu_")),
    ("elementwise mul / add (scale, residual, mask, QuickGELU's product)",
     ("aten::mul", "aten::mul_", "aten::add", "aten::add_", "aten::div", "aten::div_")),
    ("copies (contiguous / copy_ / cat / to)",
     ("aten::copy_", "aten::contiguous", "aten::clone", "aten::cat", "aten::_cat", "aten::to",
      "aten::_to_copy", "aten::reshape", "aten::index", "aten::index_select", "aten::embedding")),
    ("allocation (empty)", ("aten::empty", "aten::empty_like", "aten::empty_strided",
                             "aten::zeros", "aten::full")),
]


def category(name):
    for cat, names in CATEGORIES:
        if name in names:
            return cat
    return "views and other (as_strided, view, permute, select, narrow, ...)"


def self_times(events):
    """[(name, ts, self_us)] for complete events, per thread, by nesting."""
    out = []
    by_tid = collections.defaultdict(list)
    for e in events:
        if e.get("ph") == "X":
            by_tid[e.get("tid")].append(e)
    for evs in by_tid.values():
        evs.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack = []  # [event, child_time]
        def close(item):
            ev, child = item
            out.append((ev["name"], ev["ts"], max(0.0, ev["dur"] - child)))
        for e in evs:
            while stack and e["ts"] >= stack[-1][0]["ts"] + stack[-1][0]["dur"] - 1e-6:
                close(stack.pop())
            if stack:
                stack[-1][1] += e["dur"]
            stack.append([e, 0.0])
        while stack:
            close(stack.pop())
    return out


# The oneDNN GEMMs of one CLIP transformer layer, in the order clip_model.cpp calls them.
LAYER_GEMMS = ("qkv projection", "attention q.k^T", "attention p.v", "out projection", "mlp c_fc",
               "mlp c_proj")


def gemm_roles(rows):
    """Self time per GEMM role of one tower's mkldnn_convolution calls: the image tower's first is
    the patch embedding, then LAYER_GEMMS per layer. None when the count does not match."""
    convs = [us for name, _, us in rows if name == "aten::mkldnn_convolution"]
    per = len(LAYER_GEMMS)
    roles = collections.Counter()
    if not convs:
        return None
    if len(convs) % per == 0:  # text tower (any number of micro-batches)
        for i, us in enumerate(convs):
            roles[LAYER_GEMMS[i % per]] += us
        return roles
    # Image tower: k micro-batches of (patch embedding + layers × per).
    for k in range(1, 17):
        if len(convs) % k == 0 and (len(convs) // k) % per == 1:
            step = len(convs) // k
            for b in range(k):
                chunk = convs[b * step:(b + 1) * step]
                roles["patch embedding"] += chunk[0]
                for i, us in enumerate(chunk[1:]):
                    roles[LAYER_GEMMS[i % per]] += us
            return roles
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace", nargs="+")
    ap.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = ap.parse_args()
    runs = []
    for path in args.trace:
        events = json.load(open(path))
        if isinstance(events, dict):
            events = events.get("traceEvents", [])
        runs.append(sorted(self_times(events), key=lambda r: r[1]))
    rows = runs[0]
    for other in runs[1:]:
        if [r[0] for r in other] != [r[0] for r in rows]:
            sys.exit("trace_breakdown: %s does not hold the same operators as %s" %
                     (args.trace[runs.index(other)], args.trace[0]))
        rows = [(a[0], a[1], min(a[2], b[2])) for a, b in zip(rows, other)]
    # The text tower starts at its token embedding lookup (index_select); the image tower has none.
    text_start = min((ts for name, ts, _ in rows if name in ("aten::index_select",
                                                             "aten::embedding")),
                     default=float("inf"))
    result = {}
    for tower, pick in (("image", lambda ts: ts < text_start), ("text", lambda ts: ts >= text_start)):
        cats = collections.Counter()
        ops = collections.Counter()
        calls = collections.Counter()
        for name, ts, us in rows:
            if pick(ts):
                cats[category(name)] += us
                ops[name] += us
                calls[name] += 1
        total = sum(cats.values())
        roles = gemm_roles([r for r in rows if pick(r[1])])
        result[tower] = {"total_ms": total / 1e3,
                         "categories_ms": {k: v / 1e3 for k, v in cats.most_common()},
                         "gemm_roles_ms": {k: v / 1e3 for k, v in roles.items()} if roles else None,
                         "ops": [{"name": k, "self_ms": v / 1e3, "calls": calls[k]}
                                 for k, v in ops.most_common(15)]}
    if args.json:
        json.dump(result, sys.stdout, indent=1)
        print()
        return
    for tower, r in result.items():
        print("%s tower: %.1f ms of operator self time" % (tower, r["total_ms"]))
        for k, v in r["categories_ms"].items():
            print("  %-70s %8.1f ms %5.1f %%" % (k, v, 100 * v / max(r["total_ms"], 1e-9)))
        if r["gemm_roles_ms"]:
            print("  GEMMs by role (oneDNN convolutions in call order):")
            for k, v in r["gemm_roles_ms"].items():
                print("    %-40s %8.1f ms %5.1f %%" % (k, v, 100 * v / max(r["total_ms"], 1e-9)))
        print("  top operators:")
        for o in r["ops"]:
            print("    %-40s %8.1f ms %5d calls" % (o["name"], o["self_ms"], o["calls"]))


if __name__ == "__main__":
    main()
