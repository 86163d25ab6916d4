#!/usr/bin/python3
"""oneDNN primitives per training step of configs/cifar10_fast.yaml in maas-train, from DNNL_VERBOSE:
how many reorders (memory-layout or dtype conversions) and convolutions each step runs, and which
kernels. Two runs of 5 and 7 steps (same evaluation) are subtracted, so the counts are per step
and exclude set-up and evaluation. Prints a Markdown table per precision.

  /usr/bin/python3 tests/bench/reorder_count.py [--precision float32,bfloat16] [--binary build/bin/maas-train]
"""
import argparse, collections, os, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BATCH = 1024


def primitives(binary, root, precision, steps, threads, extra):
    """Counter of (kind, implementation, layouts) over a run of `steps` training steps."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [binary, "--config", os.path.join(ROOT, "configs/cifar10_fast.yaml"), "--out", out + "/run",
               "--set", f"data.root={root}", "--set", "train.epochs=1", "--set", f"train.threads={threads}",
               "--set", f"data.train_limit={steps * BATCH}", "--set", "data.test_limit=100",
               "--set", "eval.tta=none", "--set", f"train.precision={precision}"] + [a for s in extra for a in ("--set", s)]
        env = dict(os.environ, DNNL_VERBOSE="1")
        log = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    counts = collections.Counter()
    for line in log.stdout.splitlines():
        f = line.split(",")
        if len(f) > 6 and f[0] in ("dnnl_verbose", "onednn_verbose") and f[1] == "exec":
            counts[(f[3], f[4], f[5], f[6])] += 1  # kind, implementation, propagation, memory descriptors
    return counts


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", default=os.path.join(ROOT, "build/bin/maas-train"))
    p.add_argument("--root", default=os.path.join(ROOT, "data/cifar-10-batches-bin"))
    p.add_argument("--precision", default="float32,bfloat16")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--set", action="append", default=[], help="extra config overrides")
    p.add_argument("--detail", action="store_true", help="list every reorder's layouts")
    a = p.parse_args()
    for precision in a.precision.split(","):
        two, four = (primitives(a.binary, a.root, precision, n, a.threads, a.set) for n in (5, 7))
        per_step = collections.Counter({k: (four[k] - two[k]) / 2 for k in four if four[k] != two[k]})
        by_kind = collections.Counter()
        impls = collections.defaultdict(set)
        for (kind, impl, _, _), n in per_step.items():
            by_kind[kind] += n
            impls[kind].add(impl)
        print(f"\n### {precision}\n\n| oneDNN primitive | per training step | implementations |\n|---|---:|---|")
        for kind, n in sorted(by_kind.items()):
            print(f"| {kind} | {n:g} | {', '.join(sorted(impls[kind]))} |")
        if a.detail:
            for (kind, impl, prop, mds), n in sorted(per_step.items()):
                if kind == "reorder":
                    print(f"  {n:g} x reorder {impl} {mds}", file=sys.stderr)


if __name__ == "__main__":
    main()
