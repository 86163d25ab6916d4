#!/usr/bin/python3
"""The seed CNN trained in PyTorch eager, as a researcher would write it: the reference peer for
maas-train's speed and accuracy. Reads the same CIFAR-10 binary files; prints one JSON line."""
import argparse, json, os, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset


def load(root, names, limit):
    raw = np.concatenate([np.fromfile(os.path.join(root, n), dtype=np.uint8) for n in names]).reshape(-1, 3073)
    if limit:
        raw = raw[:limit]
    images = torch.from_numpy(raw[:, 1:].reshape(-1, 3, 32, 32).copy())
    labels = torch.from_numpy(raw[:, 0].astype(np.int64))
    return images, labels


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.conv3 = nn.Conv2d(64, 64, 3)
        self.fc1 = nn.Linear(1024, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.conv3(x))
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(x)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--root", default="data/cifar-10-batches-bin")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--train-limit", type=int, default=0)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    train_x, train_y = load(args.root, [f"data_batch_{i}.bin" for i in range(1, 6)], args.train_limit)
    test_x, test_y = load(args.root, ["test_batch.bin"], 0)
    mean = (train_x.float() / 255).mean(dim=(0, 2, 3)).view(1, 3, 1, 1)
    std = (train_x.float() / 255).std(dim=(0, 2, 3)).view(1, 3, 1, 1)
    norm = lambda x: (x.float() / 255 - mean) / std

    model = Net()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(train_x, train_y), batch_size=args.batch_size, shuffle=True)
    train_seconds = 0.0
    for epoch in range(args.epochs):
        model.train()
        start = time.perf_counter()
        for x, y in loader:
            opt.zero_grad()
            loss = F.cross_entropy(model(norm(x)), y)
            loss.backward()
            opt.step()
        train_seconds += time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        correct = sum((model(norm(test_x[i:i + 500])).argmax(1) == test_y[i:i + 500]).sum().item()
                      for i in range(0, len(test_y), 500))
    print(json.dumps({"images_per_s": len(train_y) * args.epochs / train_seconds,
                      "test_acc": correct / len(test_y), "seconds": train_seconds}))


if __name__ == "__main__":
    main()
