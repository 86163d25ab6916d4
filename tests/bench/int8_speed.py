#!/usr/bin/python3
"""Float32 (frozen + optimize_for_inference) vs int8 artifact, in-process images/s at batch 1 and 32.

Usage: /usr/bin/python3 tests/bench/int8_speed.py FLOAT32.pt INT8.pt THREADS"""
import sys, time, torch
torch.backends.quantized.engine = "onednn"
torch.set_num_threads(int(sys.argv[3]))
f32 = torch.jit.optimize_for_inference(torch.jit.load(sys.argv[1]))
i8 = torch.jit.load(sys.argv[2])
for batch in (1, 32):
    x = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8)
    for name, m in (("f32", f32), ("int8", i8), ("f32", f32), ("int8", i8)):
        with torch.no_grad():
            for _ in range(20): m(x)
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < 1.5:
                m(x); n += 1
        print(f"threads {sys.argv[3]} batch {batch} {name}: {n * batch / (time.perf_counter() - t0):.0f} images/s")
