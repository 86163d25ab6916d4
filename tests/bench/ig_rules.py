#!/usr/bin/python3
"""Integrated gradients' completeness error by quadrature rule and steps, in Python torch.

For each shared sample image, the predicted class and class 3: |sum of attributions - (logit(image)
- logit(black))| / |logit difference|, with the path points of the Riemann midpoint rule (maas),
Gauss-Legendre (Captum's default) and the trapezoid rule. Prints max, median and the share above 5%.

Usage: /usr/bin/python3 tests/bench/ig_rules.py ARTIFACT.pt [SAMPLES_DIR]"""
import glob, sys
import numpy as np
import torch
from PIL import Image


def rule(name, n):
    if name == "midpoint":
        a, w = (np.arange(n) + 0.5) / n, np.full(n, 1.0 / n)
    elif name == "gauss-legendre":
        x, w = np.polynomial.legendre.leggauss(n)
        a, w = (x + 1) / 2, w / 2
    else:  # trapezoid
        a, w = np.linspace(0, 1, n), np.full(n, 1.0 / (n - 1))
        w[0] /= 2
        w[-1] /= 2
    return torch.tensor(a, dtype=torch.float32), torch.tensor(w, dtype=torch.float32)


model = torch.jit.load(sys.argv[1]).eval()
torch.set_num_threads(1)
samples = sys.argv[2] if len(sys.argv) > 2 else "../shared/datasets/cifar10-samples"
files = sorted(glob.glob(samples + "/*.jpg"))
if not files:
    sys.exit(f"no .jpg samples in {samples}")
for steps in (16, 32, 64):
    for name in ("midpoint", "gauss-legendre", "trapezoid"):
        errors = []
        for f in files:
            image = torch.tensor(np.array(Image.open(f).convert("RGB").resize((32, 32)))).permute(2, 0, 1).float()[None]
            alphas, weights = rule(name, steps)
            batch = torch.cat([alphas.view(-1, 1, 1, 1) * image, image, torch.zeros_like(image)]).requires_grad_(True)
            logits = model(batch)
            for target in (int(logits[steps].argmax()), 3):
                (grad,) = torch.autograd.grad(logits[:steps, target].sum(), batch, retain_graph=True)
                attribution_sum = float((image * (grad[:steps] * weights.view(-1, 1, 1, 1)).sum(0, keepdim=True)).sum())
                difference = float(logits[steps, target] - logits[steps + 1, target])
                errors.append(abs(attribution_sum - difference) / max(abs(difference), 1e-9))
        e = np.array(errors)
        print(f"steps {steps:3d} {name:15s} max {e.max():6.1%}  median {np.median(e):6.1%}  above 5%: {(e > 0.05).mean():4.0%}")
