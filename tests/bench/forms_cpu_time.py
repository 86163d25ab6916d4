#!/usr/bin/python3
# Forms of one run side by side as Debian's Python torch runs them: batch 32, 1 thread, the
# artifacts measured in turn (5 rounds of 1 s each), timed in the thread's CPU time, so that other
# work on a shared machine does not count. "opt:FILE" applies torch.jit.optimize_for_inference
# first (what maas-serve does to float32 and bf16 artifacts). Prints medians and ratios to the first.
# --wall times wall-clock time instead (for a quiet machine); --batch=N another batch size than 32.
# Usage: /usr/bin/python3 tests/bench/forms_cpu_time.py [--wall] [--batch=N] opt:f32.pt int8.pt opt:bf16.pt
import sys, time, torch
torch.set_num_threads(1)
torch.backends.quantized.engine = 'onednn'
wall = "--wall" in sys.argv[1:]
clock = time.perf_counter if wall else time.thread_time
batch = int(next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--batch=")), 32))
paths = [a for a in sys.argv[1:] if a != "--wall" and not a.startswith("--batch=")]
mods = []
for p in paths:
    m = torch.jit.load(p.replace("opt:", "")).eval()
    if p.startswith("opt:"): m = torch.jit.optimize_for_inference(m)
    mods.append(m)
x = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8)
res = {p: [] for p in paths}
with torch.no_grad():
    for m in mods:
        for _ in range(20): m(x)
    for r in range(5):
        for p, m in zip(paths, mods):
            n = 0; s = clock()
            while clock() - s < 1.0: m(x); n += 1
            res[p].append(batch * n / (clock() - s))
for p in paths:
    v = sorted(res[p]); print("%-45s median %8.0f img/s  (runs %s)" % (p, v[len(v)//2], " ".join("%.0f" % a for a in res[p])))
base = sorted(res[paths[0]])[2]
for p in paths[1:]: print("ratio %s / %s = %.2f" % (p, paths[0], sorted(res[p])[2] / base))
