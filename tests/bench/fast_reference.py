#!/usr/bin/python3
"""The fast config's training step (configs/cifar10_fast.yaml) in PyTorch eager, Python, channels-last:
the same airbench network (whitened frozen stem, BatchNorm scales frozen), batched augmentation
(alternating flip, 2-pixel reflect translate), Nesterov SGD with the same groups, label smoothing,
lookahead every 5 steps. Times --steps training steps after 2 warm-up steps (no evaluation) and
prints JSON {"images_per_s": ...}. Used by fast_speed.py; reads CIFAR-10's binary files. --bf16 runs
forward and loss under CPU autocast to bfloat16 (PyTorch's recommended mixed precision on CPU);
ATen's kernels follow ATEN_CPU_CAPABILITY from the environment.

  /usr/bin/python3 tests/bench/fast_reference.py --root data/cifar-10-batches-bin [--steps 10] [--bf16]
"""
import argparse, json, os, time
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F


def load(root):
    raw = np.concatenate([np.fromfile(os.path.join(root, f"data_batch_{i}.bin"), np.uint8) for i in range(1, 6)])
    raw = raw.reshape(-1, 3073)
    return torch.from_numpy(raw[:, 1:].reshape(-1, 3, 32, 32).copy()), torch.from_numpy(raw[:, 0].astype(np.int64))


def bn(c):
    b = nn.BatchNorm2d(c, momentum=0.4, eps=1e-12)
    b.weight.requires_grad_(False)
    return b


class Group(nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(i, o, 3, padding=1, bias=False), bn(o)
        self.conv2, self.bn2 = nn.Conv2d(o, o, 3, padding=1, bias=False), bn(o)

    def forward(self, x):
        x = F.gelu(self.bn1(F.max_pool2d(self.conv1(x), 2)))
        return F.gelu(self.bn2(self.conv2(x)))


class Airbench(nn.Module):
    def __init__(self, widths):
        super().__init__()
        self.stem = nn.Conv2d(3, 24, 2)
        self.group1, self.group2, self.group3 = Group(24, widths[0]), Group(widths[0], widths[1]), Group(widths[1], widths[2])
        self.fc = nn.Linear(widths[2], 10, bias=False)

    def forward(self, x):
        x = self.group3(self.group2(self.group1(F.gelu(self.stem(x)))))
        return self.fc(x.amax((2, 3))) / 9


def augment(x, epoch, coins):
    flip = coins ^ (epoch % 2 == 0)
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    padded = F.pad(x, (2, 2, 2, 2), mode="reflect")
    dx, dy = torch.randint(0, 5, (2,)).tolist()  # one shift per group, as airbench's batched crop
    return padded[:, :, dy:dy + 32, dx:dx + 32]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--root", required=True)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--widths", type=int, nargs=3, default=[64, 128, 128])
    p.add_argument("--bf16", action="store_true", help="forward and loss under torch.autocast('cpu', bfloat16)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    images, labels = load(a.root)
    mean = images.float().mean((0, 2, 3)) / 255
    std = images.float().std((0, 2, 3)) / 255
    model = Airbench(a.widths).to(memory_format=torch.channels_last)
    model.stem.weight.requires_grad_(False)  # whitened and fixed (its values do not change the speed)
    norm_params = [p for n, p in model.named_parameters() if "bn" in n and p.requires_grad]
    other = [p for n, p in model.named_parameters() if "bn" not in n and p.requires_grad]
    optimizer = torch.optim.SGD([dict(params=other, lr=1.5, weight_decay=1.33e-3),
                                 dict(params=norm_params, lr=96.0, weight_decay=0.0)],
                                momentum=0.85, nesterov=True)
    average = [t.detach().clone() for t in model.state_dict().values() if t.is_floating_point()]
    coins = torch.rand(len(labels)) < 0.5
    n = a.batch_size

    def step(i):
        index = torch.randint(0, len(labels), (n,))
        # normalized first: reflect padding has no uint8 kernel (airbench also augments float images)
        x = images[index].float().div_(255).sub_(mean[None, :, None, None]).div_(std[None, :, None, None])
        x = augment(x, 2, coins[index])
        x = x.contiguous(memory_format=torch.channels_last)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            loss = F.cross_entropy(model(x), labels[index], label_smoothing=0.2)
        loss.backward()
        optimizer.step()
        if (i + 1) % 5 == 0:
            with torch.no_grad():
                live = [t for t in model.state_dict().values() if t.is_floating_point()]
                for avg, t in zip(average, live):
                    avg.lerp_(t, 0.3)
                    t.copy_(avg)

    for i in range(2):
        step(i)
    start = time.perf_counter()
    for i in range(a.steps):
        step(i)
    print(json.dumps({"images_per_s": a.steps * n / (time.perf_counter() - start)}))


if __name__ == "__main__":
    main()
