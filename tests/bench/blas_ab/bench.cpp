// A/B: the seed CNN with its fc layers as whole-map convolutions (A, its code before OpenBLAS)
// against plain Linear on flatten (B, its code now). Standalone: see docs/benchmarks.md "BLAS" for the commands.
#include <torch/torch.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

struct NetImpl : torch::nn::Module {
  bool conv_trick;
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  explicit NetImpl(bool trick) : conv_trick(trick) {
    conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 32, 3)));
    conv2 = register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(32, 64, 3)));
    conv3 = register_module("conv3", torch::nn::Conv2d(torch::nn::Conv2dOptions(64, 64, 3)));
    fc1 = register_module("fc1", torch::nn::Linear(64 * 4 * 4, 64));
    fc2 = register_module("fc2", torch::nn::Linear(64, 10));
  }
  torch::Tensor forward(torch::Tensor x) {
    x = torch::max_pool2d(conv1->forward(x), 2).relu_();
    x = torch::max_pool2d(conv2->forward(x), 2).relu_();
    x = conv3->forward(x).relu_();
    if (conv_trick) {  // exactly as CnnImpl::forward did
      x = torch::conv2d(x, fc1->weight.view({fc1->weight.size(0), x.size(1), x.size(2), x.size(3)}), fc1->bias).relu_();
      x = torch::conv2d(x, fc2->weight.view({fc2->weight.size(0), fc2->weight.size(1), 1, 1}), fc2->bias);
      return x.flatten(1);
    }
    x = fc1->forward(x.flatten(1)).relu_();
    return fc2->forward(x);
  }
};
TORCH_MODULE(Net);

static void to_channels_last(torch::nn::Module& m) {  // as train/trainer.cpp
  torch::NoGradGuard g;
  for (auto& p : m.parameters())
    if (p.dim() == 4) p.set_data(p.contiguous(torch::MemoryFormat::ChannelsLast));
}

static Net make(bool trick) {
  torch::manual_seed(1);  // same seed -> same init; B copies A's weights explicitly anyway in `check`
  Net n(trick);
  to_channels_last(*n);
  return n;
}

static double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "check";
  bool trick = argc > 2 ? std::string(argv[2]) == "A" : true;
  int threads = argc > 3 ? std::atoi(argv[3]) : 1;
  int64_t batch = argc > 4 ? std::atoll(argv[4]) : 32;
  int steps = argc > 5 ? std::atoi(argv[5]) : 200;
  torch::set_num_threads(threads);

  if (mode == "check") {
    Net a = make(true), b = make(false);
    {
      torch::NoGradGuard g;
      auto pa = a->named_parameters(), pb = b->named_parameters();
      for (auto& item : pa) pb[item.key()].copy_(item.value());
    }
    auto x = torch::randn({32, 3, 32, 32}).contiguous(torch::MemoryFormat::ChannelsLast);
    auto y = torch::randint(0, 10, {32}, torch::kLong);
    auto la = torch::cross_entropy_loss(a->forward(x), y), lb = torch::cross_entropy_loss(b->forward(x), y);
    double dout = (a->forward(x) - b->forward(x)).abs().max().item<double>();
    la.backward();
    lb.backward();
    double dgrad = 0;
    auto pb = b->named_parameters();
    for (auto& item : a->named_parameters())
      dgrad = std::max(dgrad, (item.value().grad() - pb[item.key()].grad()).abs().max().item<double>());
    std::printf("max|outA-outB| = %.3g  max|gradA-gradB| = %.3g  %s\n", dout, dgrad,
                dout < 1e-5 && dgrad < 1e-5 ? "OK" : "MISMATCH");
    return dout < 1e-5 && dgrad < 1e-5 ? 0 : 1;
  }

  if (mode == "abtrain" || mode == "abinfer") {
    // Both variants in one process, alternating blocks of `block` steps, so machine-load noise hits both alike.
    const bool train = mode == "abtrain";
    const int block = argc > 6 ? std::atoi(argv[6]) : 5;
    Net nets[2] = {make(true), make(false)};
    torch::optim::Adam opts[2] = {torch::optim::Adam(nets[0]->parameters(), torch::optim::AdamOptions(1e-3)),
                                  torch::optim::Adam(nets[1]->parameters(), torch::optim::AdamOptions(1e-3))};
    auto x = torch::randn({batch, 3, 32, 32}).contiguous(torch::MemoryFormat::ChannelsLast);
    auto y = torch::randint(0, 10, {batch}, torch::kLong);
    std::vector<double> t[2];
    auto step = [&](int v) {
      if (train) {
        opts[v].zero_grad();
        torch::cross_entropy_loss(nets[v]->forward(x), y).backward();
        opts[v].step();
      } else {
        torch::NoGradGuard g;
        nets[v]->forward(x);
      }
    };
    for (int v = 0; v < 2; ++v) {
      if (train) nets[v]->train(); else nets[v]->eval();
      for (int i = 0; i < std::max(10, steps / 10); ++i) step(v);  // warmup
    }
    for (int done = 0, r = 0; done < steps; done += block, ++r)
      for (int k = 0; k < 2; ++k) {
        int v = (k + r) % 2;  // ABBAAB... order
        for (int i = 0; i < block && done + i < steps; ++i) {
          double s0 = now();
          step(v);
          t[v].push_back(now() - s0);
        }
      }
    for (int v = 0; v < 2; ++v) {
      std::vector<double> s = t[v];
      double total = 0;
      for (double d : s) total += d;
      std::sort(s.begin(), s.end());
      double med = s[s.size() / 2];
      std::printf("%s %s threads=%d batch=%lld steps=%zu median_ms=%.4f img/s@median=%.1f img/s@total=%.1f\n",
                  mode.c_str(), v == 0 ? "A" : "B", threads, (long long)batch, s.size(), 1000 * med, batch / med,
                  batch * s.size() / total);
    }
    return 0;
  }

  Net net = make(trick);
  auto x = torch::randn({batch, 3, 32, 32}).contiguous(torch::MemoryFormat::ChannelsLast);
  auto y = torch::randint(0, 10, {batch}, torch::kLong);
  int warmup = std::max(10, steps / 10);
  double t0 = 0;
  if (mode == "train") {
    net->train();
    torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(1e-3));
    for (int i = 0; i < warmup + steps; ++i) {
      if (i == warmup) t0 = now();
      opt.zero_grad();
      auto loss = torch::cross_entropy_loss(net->forward(x), y);
      loss.backward();
      opt.step();
    }
  } else {  // infer
    net->eval();
    torch::NoGradGuard g;
    for (int i = 0; i < warmup + steps; ++i) {
      if (i == warmup) t0 = now();
      auto out = net->forward(x);
    }
  }
  double dt = now() - t0;
  std::printf("%s %s threads=%d batch=%lld steps=%d img/s=%.1f ms/batch=%.4f\n", mode.c_str(), trick ? "A" : "B",
              threads, (long long)batch, steps, batch * steps / dt, 1000 * dt / steps);
}
