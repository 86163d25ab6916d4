#!/usr/bin/python3
# Where an artifact's forward spends its time, per operator and input shape (torch.autograd.profiler,
# 50 forwards of a uint8 batch, 1 thread, after 20 warm-up forwards). ATen's kernels follow
# ATEN_CPU_CAPABILITY from the environment. --dnnl also prints oneDNN's own time per primitive
# (DNNL_VERBOSE) for one forward. --pooling instead times LibTorch's quantized max-pooling alone
# (quint8, channels-last, 2x2, batch 32) over channel counts. "opt:FILE" applies
# torch.jit.optimize_for_inference first (how maas-serve runs float32 artifacts).
# Usage: ATEN_CPU_CAPABILITY=avx2 /usr/bin/python3 tests/bench/int8_op_profile.py model.pt [--batch 32] [--dnnl]
#        ATEN_CPU_CAPABILITY=avx512 /usr/bin/python3 tests/bench/int8_op_profile.py --pooling
import argparse, os, sys, time

parser = argparse.ArgumentParser()
parser.add_argument("artifact", nargs="?")
parser.add_argument("--batch", type=int, default=32)
parser.add_argument("--dnnl", action="store_true")
parser.add_argument("--pooling", action="store_true")
args = parser.parse_args()
if args.dnnl:
    os.environ["DNNL_VERBOSE"] = "1"  # read when oneDNN loads, so before torch is imported
import torch

torch.set_num_threads(1)
torch.backends.quantized.engine = "onednn"


def micro_us(fn, n=50):
    for _ in range(5):
        fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


if args.pooling:
    print("| channels | side | quantized max_pool2d, channels-last, batch 32: us |")
    print("|---:|---:|---:|")
    for channels, side in [(16, 32), (32, 32), (32, 16), (64, 16), (64, 8), (128, 8)]:
        q = torch.quantize_per_tensor(torch.rand(32, channels, side, side), 0.01, 0, torch.quint8)
        q = q.contiguous(memory_format=torch.channels_last)
        print(f"| {channels} | {side} | {micro_us(lambda: torch.nn.functional.max_pool2d(q, 2)):.0f} |")
    sys.exit(0)

if not args.artifact:
    parser.error("an artifact is required (or --pooling)")
module = torch.jit.load(args.artifact.replace("opt:", "", 1)).eval()
if args.artifact.startswith("opt:"):
    module = torch.jit.optimize_for_inference(module)
images = torch.randint(0, 256, (args.batch, 3, 32, 32), dtype=torch.uint8)
with torch.no_grad():
    for _ in range(20):
        module(images)
    if args.dnnl:
        print("---- oneDNN primitives of one forward (kind, implementation, shape, ms):", flush=True)
        module(images)
        sys.stdout.flush()
        sys.exit(0)
    with torch.autograd.profiler.profile(record_shapes=True) as profile:
        for _ in range(50):
            module(images)
print(profile.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=20,
                                                             max_name_column_width=40, max_shapes_column_width=60))
