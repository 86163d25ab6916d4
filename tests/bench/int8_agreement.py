#!/usr/bin/python3
# How close other forms of a run stay to its reference form over the test set: accuracy, how often the
# top-1 class agrees with the reference's, and the mean and largest absolute logit difference.
# oneDNN's kernels follow DNNL_MAX_CPU_ISA (e.g. AVX2 or AVX512_CORE: int8 without VNNI on a VNNI CPU).
# Usage: /usr/bin/python3 tests/bench/int8_agreement.py DATA/test_batch.bin f32.pt int8.pt [more.pt ...]
import sys
import numpy as np
import torch

torch.set_num_threads(2)
torch.backends.quantized.engine = "onednn"
records = np.fromfile(sys.argv[1], dtype=np.uint8).reshape(-1, 3073)  # CIFAR-10 binary: label, 3072 pixels
labels = torch.from_numpy(records[:, 0].astype(np.int64))
images = torch.from_numpy(records[:, 1:].reshape(-1, 3, 32, 32).copy())


def logits(path):
    module = torch.jit.load(path).eval()
    with torch.no_grad():
        return torch.cat([module(images[i:i + 500]) for i in range(0, len(images), 500)])


reference = logits(sys.argv[2])
print(f"| artifact | test acc ({len(images)} images) | top-1 agrees with {sys.argv[2]} | mean abs logit diff | max |")
print("|---|---:|---:|---:|---:|")
print(f"| {sys.argv[2]} | {(reference.argmax(1) == labels).float().mean() * 100:.2f}% | - | - | - |")
for path in sys.argv[3:]:
    out = logits(path)
    print(f"| {path} | {(out.argmax(1) == labels).float().mean() * 100:.2f}% | "
          f"{(out.argmax(1) == reference.argmax(1)).float().mean() * 100:.2f}% | "
          f"{(out - reference).abs().mean():.4f} | {(out - reference).abs().max():.3f} |")
