// maas-serve end to end: the real HTTP server in-process on an ephemeral port, plus the binary.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <future>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <thread>

#include "artifact.h"
#include "cpu_info.h"
#include "explainer.h"
#include "files.h"
#include "http_server.h"
#include "http_test_util.h"
#include "image.h"
#include "load_bench.h"
#include "test_util.h"

namespace maas {
namespace {

using nlohmann::json;
using testing::TempDir;

const std::vector<std::string>& kClasses = testing::kCifar10Classes;

// Writes an artifact of a randomly initialized seed CNN (seeded: same seed, same weights).
void write_model(const std::string& path, uint64_t seed) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  testing::write_bytes(path, testing::random_cnn_artifact(seed, kClasses));
}

torch::Tensor reference_logits(const std::string& path, const torch::Tensor& images) {
  torch::NoGradGuard no_grad;
  return load_artifact(path).module.forward({images}).toTensor();
}

std::vector<float> floats_of(const json& data) { return data.get<std::vector<float>>(); }

class HttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    write_model(repo_.file("cifar10/1/model.pt"), 1);
    options_.port = 0;
    options_.models_dir = repo_.path();
    options_.batching.max_batch_size = 16;
  }
  void TearDown() override { stop(); }

  void start() {
    served_ = std::make_unique<testing::ServerUnderTest>(options_);
    server_ = &served_->server();
    repository_ = &served_->repository();
    port_ = served_->port();
  }
  void stop() { served_.reset(); }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(30, 0);
    return c;
  }
  httplib::Result infer(const json& body, const std::string& model = "cifar10") const {
    return client().Post(("/v2/models/" + model + "/infer").c_str(), body.dump(), "application/json");
  }
  // Starts `count` threads; thread t sends inputs[t * requests .. (t + 1) * requests) one by one
  // and counts answers that fail or whose logits differ from `expected`'s rows by more than 1e-4.
  void add_prediction_clients(std::vector<std::thread>& clients, const std::vector<torch::Tensor>& inputs,
                              const torch::Tensor& expected, int count, int requests, std::atomic<int>& wrong,
                              std::atomic<int>& failed) const {
    for (int t = 0; t < count; ++t) {
      clients.emplace_back([&, t, requests] {
        for (int r = 0; r < requests; ++r) {
          const int i = t * requests + r;
          auto res = infer(uint8_request(inputs[i]));
          if (!res || res->status != 200) {
            ++failed;
            continue;
          }
          const auto got = floats_of(json::parse(res->body)["outputs"][0]["data"]);
          for (int k = 0; k < 10; ++k)
            if (std::abs(got[k] - expected[i][k].item<float>()) > 1e-4) ++wrong;
        }
      });
    }
  }
  static json uint8_request(const torch::Tensor& images) {
    const auto flat = images.contiguous();
    std::vector<int> data(flat.data_ptr<uint8_t>(), flat.data_ptr<uint8_t>() + flat.numel());
    return {{"inputs", {{{"name", "image"}, {"shape", images.sizes().vec()}, {"datatype", "UINT8"}, {"data", data}}}}};
  }

  TempDir repo_;
  ServeOptions options_;
  std::unique_ptr<testing::ServerUnderTest> served_;
  HttpServer* server_ = nullptr;  // served_'s
  ModelRepository* repository_ = nullptr;
  int port_ = 0;
};

TEST_F(HttpTest, HealthMetadataConfigAndPage) {
  start();
  auto c = client();
  EXPECT_EQ(c.Get("/v2/health/live")->status, 200);
  EXPECT_EQ(json::parse(c.Get("/v2/health/ready")->body)["ready"], true);
  const auto server = json::parse(c.Get("/v2")->body);
  EXPECT_EQ(server["name"], "maas");
  EXPECT_NE(std::find(server["extensions"].begin(), server["extensions"].end(), "binary_tensor_data"),
            server["extensions"].end());
  for (const char* path : {"/v2/models/cifar10", "/v2/models/cifar10/versions/1"}) {
    const auto meta = json::parse(c.Get(path)->body);
    EXPECT_EQ(meta["platform"], "pytorch_torchscript");
    EXPECT_EQ(meta["inputs"][0]["shape"], json({-1, 3, 32, 32}));
    EXPECT_EQ(meta["outputs"][1]["name"], "probabilities");
    EXPECT_EQ(meta["versions"], json({"1"}));
    EXPECT_EQ(meta["parameters"]["tta"], "none");  // an artifact without the "tta" key
  }
  EXPECT_EQ(c.Get("/v2/models/cifar10/ready")->status, 200);
  const auto config = json::parse(c.Get("/v2/models/cifar10/config")->body);
  EXPECT_EQ(config["max_batch_size"], 16);
  EXPECT_EQ(config["dynamic_batching"]["max_queue_images"], options_.batching.max_queue_images);
  EXPECT_EQ(json::parse(c.Get("/models")->body)["models"][0]["name"], "cifar10");
  const auto page = c.Get("/");
  EXPECT_EQ(page->status, 200);
  EXPECT_NE(page->body.find("id=\"model\""), std::string::npos);
  server_->set_ready(false);
  EXPECT_EQ(c.Get("/v2/health/ready")->status, 503);
}

TEST_F(HttpTest, InferJsonUint8AndFp32MatchTheModel) {
  start();
  const auto images = torch::randint(0, 256, {2, 3, 32, 32}, torch::kUInt8);
  const auto expected = reference_logits(repo_.file("cifar10/1/model.pt"), images);

  json request = uint8_request(images);
  request["id"] = "req-7";
  auto res = infer(request);
  ASSERT_EQ(res->status, 200) << res->body;
  const auto body = json::parse(res->body);
  EXPECT_EQ(body["id"], "req-7");
  EXPECT_EQ(body["model_version"], "1");
  ASSERT_EQ(body["outputs"][0]["name"], "logits");
  EXPECT_EQ(body["outputs"][0]["shape"], json({2, 10}));
  const auto logits = floats_of(body["outputs"][0]["data"]);
  for (int i = 0; i < 20; ++i) EXPECT_NEAR(logits[i], expected.view(-1)[i].item<float>(), 1e-4);
  const auto probabilities = floats_of(body["outputs"][1]["data"]);
  EXPECT_NEAR(std::accumulate(probabilities.begin(), probabilities.begin() + 10, 0.0), 1.0, 1e-5);

  // FP32 pixels, nested data, classification output.
  const auto floats = images.to(torch::kFloat32);
  json nested = json::array();
  for (int64_t n = 0; n < 2; ++n) {
    json channels = json::array();
    for (int64_t c = 0; c < 3; ++c) {
      json rows = json::array();
      for (int64_t y = 0; y < 32; ++y) {
        const auto row = floats[n][c][y].contiguous();
        rows.push_back(std::vector<float>(row.data_ptr<float>(), row.data_ptr<float>() + 32));
      }
      channels.push_back(rows);
    }
    nested.push_back(channels);
  }
  json fp32 = {{"inputs", {{{"name", "image"}, {"shape", {2, 3, 32, 32}}, {"datatype", "FP32"}, {"data", nested}}}},
               {"outputs", {{{"name", "probabilities"}, {"parameters", {{"classification", 3}}}}}}};
  res = infer(fp32);
  ASSERT_EQ(res->status, 200) << res->body;
  const auto top = json::parse(res->body)["outputs"][0];
  EXPECT_EQ(top["datatype"], "BYTES");
  EXPECT_EQ(top["shape"], json({2, 3}));
  const std::string first = top["data"][0];
  const int64_t best = expected[0].argmax().item<int64_t>();
  EXPECT_NE(first.find(":" + std::to_string(best) + ":" + kClasses[best]), std::string::npos) << first;
}

TEST_F(HttpTest, BinaryTensorDataInAndOut) {
  start();
  const auto images = torch::randint(0, 256, {3, 3, 32, 32}, torch::kUInt8);
  const auto expected = reference_logits(repo_.file("cifar10/1/model.pt"), images);
  const std::string header =
      json{{"inputs", {{{"name", "image"}, {"shape", {3, 3, 32, 32}}, {"datatype", "UINT8"},
                        {"parameters", {{"binary_data_size", images.numel()}}}}}},
           {"outputs", {{{"name", "logits"}, {"parameters", {{"binary_data", true}}}}}}}
          .dump();
  const std::string body = header + std::string(static_cast<const char*>(images.data_ptr()), images.numel());
  httplib::Headers headers = {{"Inference-Header-Content-Length", std::to_string(header.size())}};
  auto res = client().Post("/v2/models/cifar10/infer", headers, body, "application/octet-stream");
  ASSERT_EQ(res->status, 200) << res->body;
  const size_t json_length = std::stoul(res->get_header_value("Inference-Header-Content-Length"));
  const auto meta = json::parse(res->body.substr(0, json_length));
  EXPECT_EQ(meta["outputs"][0]["parameters"]["binary_data_size"], 3 * 10 * 4);
  ASSERT_EQ(res->body.size() - json_length, 120u);
  const auto got = torch::from_blob(const_cast<char*>(res->body.data()) + json_length, {3, 10}, torch::kFloat32);
  EXPECT_LE((got - expected).abs().max().item<double>(), 1e-4);

  // Size mismatches are 400.
  auto bad = client().Post("/v2/models/cifar10/infer", headers, body.substr(0, body.size() - 1), "application/octet-stream");
  EXPECT_EQ(bad->status, 400);
}

TEST_F(HttpTest, ImageUploadByPostPutAndMultipart) {
  const std::string sample = std::string(MAAS_SOURCE_DIR) + "/../shared/datasets/cifar10-samples/cat_0004.jpg";
  if (!std::filesystem::exists(sample)) GTEST_SKIP() << "no shared samples";
  start();
  const std::string bytes = read_text(sample);
  auto c = client();
  for (const bool put : {false, true}) {
    auto res = put ? c.Put("/predictions/cifar10/1", bytes, "image/jpeg") : c.Post("/predictions/cifar10", bytes, "image/jpeg");
    ASSERT_EQ(res->status, 200) << res->body;
    const auto top = nlohmann::ordered_json::parse(res->body);  // keeps the server's order
    EXPECT_EQ(top.size(), 5u);
    double previous = 1.0;
    for (const auto& [label, p] : top.items()) {
      EXPECT_NE(std::find(kClasses.begin(), kClasses.end(), label), kClasses.end());
      EXPECT_LE(p.get<double>(), previous);  // most probable first
      previous = p.get<double>();
    }
  }
  EXPECT_EQ(json::parse(c.Post("/predictions/cifar10?topk=2", bytes, "image/jpeg")->body).size(), 2u);
  httplib::MultipartFormDataItems form = {{"data", bytes, "cat.jpg", "image/jpeg"}};
  auto multipart = c.Post("/predictions/cifar10", form);
  ASSERT_EQ(multipart->status, 200) << multipart->body;
  EXPECT_EQ(json::parse(multipart->body).size(), 5u);
}

TEST_F(HttpTest, BadRequestsGetTheRightStatusAndAJsonError) {
  options_.max_body_bytes = 64 << 10;
  start();
  auto c = client();
  const auto images = torch::zeros({1, 3, 32, 32}, torch::kUInt8);
  auto expect = [&](const httplib::Result& res, int status, const std::string& fragment) {
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, status) << res->body;
    const auto body = json::parse(res->body);
    EXPECT_NE(body["error"].get<std::string>().find(fragment), std::string::npos) << body;
  };
  expect(c.Post("/v2/models/cifar10/infer", "{not json", "application/json"), 400, "malformed JSON");
  expect(c.Post("/v2/models/cifar10/infer", "", "application/json"), 400, "empty");
  json wrong_type = uint8_request(images);
  wrong_type["inputs"][0]["datatype"] = "INT32";
  expect(infer(wrong_type), 400, "INT32");
  json wrong_count = uint8_request(images);
  wrong_count["inputs"][0]["shape"] = {2, 3, 32, 32};
  expect(infer(wrong_count), 400, "values but shape needs");
  expect(infer(uint8_request(torch::zeros({1, 3, 28, 28}, torch::kUInt8))), 400, "expects images of shape");
  json out_of_range = uint8_request(images);
  out_of_range["inputs"][0]["data"][0] = 256;
  expect(infer(out_of_range), 400, "0..255");
  json bad_output = uint8_request(images);
  bad_output["outputs"] = {{{"name", "features"}}};
  expect(infer(bad_output), 400, "unknown output");
  expect(c.Post("/predictions/cifar10", "not an image", "image/jpeg"), 400, "cannot decode image");
  expect(c.Post("/predictions/cifar10", "", "image/jpeg"), 400, "empty");
  expect(infer(uint8_request(images), "nope"), 404, "unknown model");
  expect(c.Post("/v2/models/cifar10/versions/9/infer", uint8_request(images).dump(), "application/json"), 404,
         "no version 9");
  expect(c.Get("/v2/models/nope"), 404, "unknown model");
  expect(c.Get("/no/such/route"), 404, "no route");
  expect(c.Get("/v2/models/cifar10/infer"), 405, "not allowed");
  expect(c.Delete("/v2/models/cifar10"), 405, "not allowed");
  expect(c.Post("/v2/models/cifar10/infer", std::string(70 << 10, ' '), "application/json"), 413, "max_body_bytes");
  repository_->stop_accepting();
  auto unavailable = infer(uint8_request(images));
  expect(unavailable, 503, "shutting down");
  EXPECT_EQ(unavailable->get_header_value("Retry-After"), "1");
}

TEST_F(HttpTest, ConcurrentClientsGetTheirOwnAnswersAndMetricsShowBatches) {
  options_.batching.max_queue_delay_us = 10'000'000;
  start();
  // A held announcement makes every batch wait until it is full (16 images), so batching does
  // not depend on timing: 16 clients, one image each, rounds of one full batch.
  ModelRunner::Arrival held(*repository_->get("cifar10"));
  const std::string model_path = repo_.file("cifar10/1/model.pt");
  constexpr int kClients = 16, kRequests = 4;
  std::vector<torch::Tensor> inputs;
  for (int i = 0; i < kClients * kRequests; ++i) inputs.push_back(torch::randint(0, 256, {1, 3, 32, 32}, torch::kUInt8));
  const auto expected = reference_logits(model_path, torch::cat(inputs));
  std::atomic<int> wrong{0}, failed{0};
  std::vector<std::thread> clients;
  add_prediction_clients(clients, inputs, expected, kClients, kRequests, wrong, failed);
  for (auto& c : clients) c.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(wrong.load(), 0);

  const std::string metrics = client().Get("/metrics")->body;
  EXPECT_NE(metrics.find("maas_requests_total{model=\"cifar10\",outcome=\"success\"} 64"), std::string::npos) << metrics;
  for (const char* name : {"maas_queue_seconds_bucket", "maas_compute_seconds_bucket", "maas_request_seconds_bucket",
                           "maas_queue_images{model=\"cifar10\"}"})
    EXPECT_NE(metrics.find(name), std::string::npos) << name;
  // Every request ran in a full batch of 16.
  EXPECT_NE(metrics.find("maas_batch_images_bucket{model=\"cifar10\",le=\"8\"} 0"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("maas_batch_images_bucket{model=\"cifar10\",le=\"16\"} 64"), std::string::npos) << metrics;

}

// promtool (Debian package prometheus) validates the exposition format.
TEST_F(HttpTest, MetricsPassPromtool) {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "promtool not installed (apt-get install prometheus)";
  start();
  auto c = client();
  ASSERT_EQ(infer(uint8_request(torch::zeros({1, 3, 32, 32}, torch::kUInt8)))->status, 200);
  EXPECT_EQ(infer(uint8_request(torch::zeros({1, 3, 28, 28}, torch::kUInt8)))->status, 400);
  const std::string png = encode_png(torch::zeros({3, 32, 32}, torch::kUInt8));
  ASSERT_EQ(c.Post("/explanations/cifar10", png, "image/png")->status, 200);
  EXPECT_EQ(c.Post("/explanations/cifar10?steps=0", png, "image/png")->status, 400);
  const std::string metrics = c.Get("/metrics")->body;
  testing::write_bytes(repo_.file("metrics.txt"), metrics);
  EXPECT_EQ(std::system(("promtool check metrics < " + repo_.file("metrics.txt") + " >&2").c_str()), 0) << metrics;
}

TEST_F(HttpTest, ModelControlNeedsTheTokenAndSwapsVersionsWithoutFailures) {
  {
    start();
    EXPECT_EQ(client().Post("/v2/repository/index", "", "application/json")->status, 403);  // off by default
    stop();
  }
  options_.admin_token = "s3cret";
  options_.batching.max_queue_delay_us = 100;
  start();
  auto c = client();
  EXPECT_EQ(c.Post("/v2/repository/index", "", "application/json")->status, 401);
  httplib::Headers wrong = {{"Authorization", "Bearer nope!!"}};
  EXPECT_EQ(c.Post("/v2/repository/index", wrong, "", "application/json")->status, 401);
  httplib::Headers admin = {{"Authorization", "Bearer s3cret"}};
  EXPECT_EQ(json::parse(c.Post("/v2/repository/index", admin, "", "application/json")->body)[0]["name"], "cifar10");
  EXPECT_EQ(c.Post("/v2/repository/models/nope/load", admin, "", "application/json")->status, 404);
  EXPECT_EQ(c.Post("/v2/repository/models/../load", admin, "", "application/json")->status, 400);

  // Clients keep inferring while version 2 is loaded and swapped in.
  const auto image = torch::randint(0, 256, {1, 3, 32, 32}, torch::kUInt8);
  std::atomic<bool> done{false};
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t)
    clients.emplace_back([&] {
      while (!done) {
        auto res = infer(uint8_request(image));
        (res && res->status == 200 ? ok : failed)++;
      }
    });
  write_model(repo_.file("cifar10/2/model.pt"), 2);
  auto load = c.Post("/v2/repository/models/cifar10/load", admin, "", "application/json");
  EXPECT_EQ(load->status, 200) << load->body;
  // Clients go on after the swap: wait until they have had 20 more answers (or failures).
  const int after_swap = ok + failed + 20;
  while (ok + failed < after_swap) std::this_thread::yield();
  done = true;
  for (auto& t : clients) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GT(ok.load(), 0);
  const auto meta = json::parse(c.Get("/v2/models/cifar10")->body);
  EXPECT_EQ(meta["versions"], json({"1", "2"}));
  const auto v2 = json::parse(infer(uint8_request(image))->body);
  EXPECT_EQ(v2["model_version"], "2");  // the newest version is the default

  // A broken new version fails to load; the old ones keep serving.
  std::filesystem::create_directories(repo_.file("cifar10/3"));
  testing::write_bytes(repo_.file("cifar10/3/model.pt"), "broken");
  auto broken = c.Post("/v2/repository/models/cifar10/load", admin, "", "application/json");
  EXPECT_EQ(broken->status, 400) << broken->body;
  EXPECT_EQ(json::parse(infer(uint8_request(image))->body)["model_version"], "2");

  EXPECT_EQ(c.Post("/v2/repository/models/cifar10/unload", admin, "", "application/json")->status, 200);
  EXPECT_EQ(infer(uint8_request(image))->status, 404);
}

TEST_F(HttpTest, ShutdownFinishesInFlightRequests) {
  options_.batching.max_queue_delay_us = 2'000'000;
  start();
  // An announced request that never comes holds the batch, so the HTTP request stays in flight.
  auto held = std::make_unique<ModelRunner::Arrival>(*repository_->get("cifar10"));
  auto pending = std::async(std::launch::async, [&] {
    return infer(uint8_request(torch::zeros({1, 3, 32, 32}, torch::kUInt8)));
  });
  const auto runner = repository_->get("cifar10");
  while (runner->queued_images() < 1) std::this_thread::yield();  // the request is now queued
  server_->stop();
  EXPECT_EQ(client().Get("/v2/health/ready").error(), httplib::Error::Connection);  // no new connections
  held.reset();
  served_->join();
  auto res = pending.get();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_FALSE(server_->running());
}

TEST_F(HttpTest, ASecondServerOnTheSamePortFailsToBind) {
  start();
  ServeOptions same = options_;
  same.port = port_;
  HttpServer second(same, *repository_);
  EXPECT_THROW(second.bind(), std::runtime_error);
  EXPECT_EQ(client().Get("/v2/health/live")->status, 200);  // the first one still answers
}

// Without accept() running, the kernel completes handshakes only up to the listen backlog; a
// burst of clients must not overflow it (httplib's own backlog is 5, and a dropped SYN is
// retried only after a second).
TEST_F(HttpTest, ABurstOfNewConnectionsFitsTheListenBacklog) {
  options_.port = 0;
  ModelRepository repository(options_.models_dir, options_.batching);
  HttpServer server(options_, repository);
  const int port = server.bind();  // bound and listening, but nothing accepts
  std::vector<pollfd> sockets;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < 64; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ASSERT_GE(fd, 0);
    ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);  // EINPROGRESS
    sockets.push_back({fd, POLLOUT, 0});
  }
  size_t connected = 0;
  for (int waited_ms = 0; waited_ms < 500 && connected < sockets.size(); waited_ms += 10) {
    ::poll(sockets.data(), sockets.size(), 10);
    connected = 0;
    for (auto& s : sockets) {
      int error = 0;
      socklen_t size = sizeof error;
      if ((s.revents & POLLOUT) && ::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &error, &size) == 0 && error == 0)
        ++connected;
    }
  }
  for (auto& s : sockets) ::close(s.fd);
  EXPECT_EQ(connected, sockets.size());
}

// maas-bench serve against the real server: every protocol and request size gets a row without
// errors, beside the in-process rows; cases that cannot fit the server's queue are skipped.
TEST_F(HttpTest, LoadBenchMeasuresEveryProtocolAgainstTheServer) {
  options_.batching.max_queue_images = 16;
  start();
  LoadBenchOptions bench;
  bench.url = "http://127.0.0.1:" + std::to_string(port_);
  bench.artifact = repo_.file("cifar10/1/model.pt");
  bench.concurrency = {1, 8};
  bench.images_per_request = {1, 4};
  bench.seconds = 0.2;
  std::ostringstream out;
  run_load_bench(bench, out);
  const std::string table = out.str();
  for (const char* row : {"| in-process | 4 | 1 |", "| binary | 1 | 8 |", "| json | 4 | 1 |", "| image | 1 | 8 |"})
    EXPECT_NE(table.find(row), std::string::npos) << row << "\n" << table;
  EXPECT_EQ(table.find("| image | 4 |"), std::string::npos) << table;     // an upload is one image
  EXPECT_EQ(table.find("| binary | 4 | 8 |"), std::string::npos) << table;  // 32 images > queue of 16
  EXPECT_NE(table.find("Skipped 4 images/request at concurrency 8"), std::string::npos) << table;
  EXPECT_EQ(table.rfind(cpu_line(this_cpu()) + "\n", 0), 0u) << table;  // the report names its CPU first
  EXPECT_EQ(table.find("Errors:"), std::string::npos) << table;
}

// The docs' Python client (docs/serving.md, the python block after its marker), run as written
// against this server.
TEST_F(HttpTest, ReadmePythonClientRunsAgainstTheServer) {
  if (std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "Debian's python3 with numpy is missing (apt-get install python3-torch brings both)";
  const std::string readme = read_text(std::string(MAAS_SOURCE_DIR) + "/docs/serving.md");
  const size_t marker = readme.find("ReadmePythonClientRunsAgainstTheServer runs the next python block");
  ASSERT_NE(marker, std::string::npos);
  const size_t begin = readme.find("```python\n", marker) + 10, end = readme.find("```", begin);
  std::string script = readme.substr(begin, end - begin);
  start();
  const std::string url = "http://127.0.0.1:8000";
  ASSERT_NE(script.find(url), std::string::npos);
  script.replace(script.find(url), url.size(), "http://127.0.0.1:" + std::to_string(port_));
  TempDir dir;
  // The script's random images, saved so the answers can be checked against the model itself.
  script += "\nopen(" + json(dir.file("images.bin")).dump() + ", 'wb').write(images.tobytes())\n";
  testing::write_bytes(dir.file("client.py"), script);
  const std::string out = dir.file("out.txt");
  ASSERT_EQ(std::system(("/usr/bin/python3 " + dir.file("client.py") + " > " + out + " 2>&1").c_str()), 0)
      << read_text(out);
  std::string pixels = read_text(dir.file("images.bin"));
  ASSERT_EQ(pixels.size(), 8u * 3 * 32 * 32);
  const auto images = torch::from_blob(pixels.data(), {8, 3, 32, 32}, torch::kUInt8).clone();
  const auto expected = torch::softmax(reference_logits(repo_.file("cifar10/1/model.pt"), images), 1);
  std::istringstream lines(read_text(out));
  std::string label;
  double probability = 0;
  int count = 0;
  while (count < 8 && lines >> label >> probability) {
    EXPECT_EQ(label, kClasses.at(static_cast<size_t>(expected[count].argmax().item<int64_t>()))) << "image " << count;
    EXPECT_NEAR(probability, expected[count].max().item<float>(), 1e-3) << "image " << count;
    ++count;
  }
  EXPECT_EQ(count, 8) << read_text(out);
}

// A signal can come between bind() and listen(): stop() then makes listen() return at once.
TEST_F(HttpTest, StopBeforeListenMakesListenReturn) {
  ModelRepository repository(options_.models_dir, options_.batching);
  HttpServer server(options_, repository);
  server.bind();
  server.stop();
  auto listening = std::async(std::launch::async, [&] { server.listen(); });
  if (listening.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
    server.stop();  // it is serving now: end it, then fail
    listening.wait();
    FAIL() << "listen() served after stop()";
  }
  EXPECT_FALSE(server.running());
}

TEST_F(HttpTest, AccessLogWritesOneLinePerRequest) {
  options_.access_log = true;
  start();
  ::testing::internal::CaptureStderr();
  client().Get("/v2/health/live");
  client().Get("/v2/models/nope");
  stop();  // joins the HTTP threads, so every line is written
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("GET /v2/health/live 200 "), std::string::npos) << log;
  EXPECT_NE(log.find("GET /v2/models/nope 404 "), std::string::npos) << log;
}

// The web page in Debian's headless Chromium (driven by playwright-core): the model card shows
// the artifact's metadata; an upload shows the preview, the same top class as the API and a
// heatmap, and clicking another class changes the heatmap.
TEST_F(HttpTest, WebPageShowsTheModelCardTopClassesAndHeatmapsInChromium) {
  const std::string web = std::string(MAAS_SOURCE_DIR) + "/tests/web";
  if (const std::string missing = testing::missing_browser_tools(); !missing.empty()) GTEST_SKIP() << missing;
  // The metadata keys maas-export writes (export/exporter.cpp), with recognisable values.
  const json card = {{"created", "2026-11-29T14:00:00Z"},
                     {"maas_version", "0.1.0"},
                     {"dataset", "cifar10"},
                     {"model", {{"widths", {32, 64, 128}}, {"parameters", 1234567}, {"macs_per_image", 12500000},
                                {"weights", "int8"}, {"frozen", false}}},
                     {"training", {{"config", {{"train", {{"epochs", 10}}}}}, {"checkpoint", "best.pt"},
                                   {"epoch", 9}, {"final_test_acc", 0.8012}, {"best_test_acc", 0.8123}}}};
  testing::write_bytes(repo_.file("cifar10/1/model.pt"), testing::random_cnn_artifact(1, kClasses, card.dump()));
  start();
  TempDir dir;
  torch::manual_seed(3);
  const std::string png = encode_png(torch::randint(0, 256, {3, 32, 32}, torch::kUInt8));
  testing::write_bytes(dir.file("upload.png"), png);
  const auto api = client().Post("/predictions/cifar10", png, "image/png");
  ASSERT_EQ(api->status, 200);
  const std::string expected = nlohmann::ordered_json::parse(api->body).begin().key();
  // What each card field must show (page_test.mjs checks that the field's text contains it).
  const json fields = {{"architecture", "cnn (widths 32, 64, 128)"},
                       {"parameters", "1,234,567"},
                       {"macs", "12.5 M"},
                       {"accuracy", "best 81.23%, final 80.12%"},
                       {"classes", "10: airplane, automobile"},
                       {"created", "2026-11-29T14:00:00Z"},
                       {"format", "format 2, maas 0.1.0, TTA none"},
                       {"weights", "int8"},
                       {"training", "epoch 9, best.pt"}};
  testing::write_bytes(dir.file("card.json"), fields.dump());
  const std::string command = "node " + web + "/page_test.mjs http://127.0.0.1:" + std::to_string(port_) + "/ " +
                              dir.file("upload.png") + " '" + expected + "' " + dir.file("card.json");
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
}

// Integrated gradients as the in-process explainer computes them, for a target given by index
// or label, by POST or PUT; by default for the predicted class; gradient x input; multipart.
TEST_F(HttpTest, ExplanationsAnswerWhatTheExplainerComputes) {
  start();
  torch::manual_seed(4);
  const auto pixels = torch::randint(0, 256, {1, 3, 32, 32}, torch::kUInt8);
  const std::string png = encode_png(pixels[0]);
  const Artifact artifact = load_artifact(repo_.file("cifar10/1/model.pt"));
  const Explainer reference(artifact.module, artifact.info);
  const Explanation expected = reference.explain({pixels, 3});
  const double tolerance = 1e-3 * expected.attribution.abs().max().item<double>();
  auto c = client();
  for (const bool put : {false, true}) {
    auto res = put ? c.Put("/explanations/cifar10/1?target=cat", png, "image/png")
                   : c.Post("/explanations/cifar10?target=3", png, "image/png");
    ASSERT_EQ(res->status, 200) << res->body;
    const auto body = json::parse(res->body);
    EXPECT_EQ(body["model_name"], "cifar10");
    EXPECT_EQ(body["model_version"], "1");
    EXPECT_EQ(body["method"], "integrated_gradients");
    EXPECT_EQ(body["parameters"], json({{"steps", 16}, {"baseline", 0.0}, {"rule", "riemann_midpoint"}}));
    EXPECT_EQ(body["target"], 3);
    EXPECT_EQ(body["label"], "cat");
    EXPECT_NEAR(body["probability"].get<double>(), expected.probability, 1e-4);
    const auto& a = body["attribution"];
    ASSERT_EQ(a.size(), 3u);
    ASSERT_EQ(a[0].size(), 32u);
    ASSERT_EQ(a[0][0].size(), 32u);
    const auto got = torch::tensor(a.get<std::vector<std::vector<std::vector<float>>>>()[0][0]);
    EXPECT_LE((got - expected.attribution[0][0]).abs().max().item<double>(), tolerance);
    const auto& completeness = body["completeness"];
    EXPECT_NEAR(completeness["attribution_sum"].get<double>(), expected.completeness->attribution_sum, 32 * 32 * 3 * tolerance);
    EXPECT_NEAR(completeness["delta"].get<double>(),
                completeness["attribution_sum"].get<double>() -
                    (completeness["logit_input"].get<double>() - completeness["logit_baseline"].get<double>()),
                1e-6);
    EXPECT_TRUE(completeness["relative_error"].is_number());
  }
  const std::string top = nlohmann::ordered_json::parse(c.Post("/predictions/cifar10", png, "image/png")->body).begin().key();
  EXPECT_EQ(json::parse(c.Post("/explanations/cifar10", png, "image/png")->body)["label"], top);

  const auto gradient = json::parse(c.Post("/explanations/cifar10?method=gradient&target=3", png, "image/png")->body);
  EXPECT_EQ(gradient["method"], "gradient");
  EXPECT_EQ(gradient["parameters"], json::object());
  EXPECT_TRUE(gradient["completeness"].is_null());
  const Explanation times_input = reference.explain({pixels, 3, ExplainMethod::kGradientTimesInput});
  const auto got = torch::tensor(gradient["attribution"].get<std::vector<std::vector<std::vector<float>>>>()[2][31]);
  EXPECT_LE((got - times_input.attribution[2][31]).abs().max().item<double>(),
            1e-3 * times_input.attribution.abs().max().item<double>());

  // curl --data-binary labels the bytes a form: httplib's parameters from it are no query.
  ASSERT_LT(png.size(), 8192u);  // httplib's limit for form bodies
  auto labelled_form = c.Post("/explanations/cifar10?target=3", png, "application/x-www-form-urlencoded");
  ASSERT_EQ(labelled_form->status, 200) << labelled_form->body;

  httplib::MultipartFormDataItems form = {{"file", png, "x.png", "image/png"}};
  auto multipart = c.Post("/explanations/cifar10?target=3&steps=4&baseline=255", form);
  ASSERT_EQ(multipart->status, 200) << multipart->body;
  const auto white = json::parse(multipart->body);
  EXPECT_EQ(white["parameters"]["steps"], 4);
  EXPECT_EQ(white["parameters"]["baseline"], 255.0);
  const auto white_logits =
      reference_logits(repo_.file("cifar10/1/model.pt"), torch::full({1, 3, 32, 32}, 255, torch::kUInt8));
  EXPECT_NEAR(white["completeness"]["logit_baseline"].get<double>(), white_logits[0][3].item<double>(), 1e-3);
}

// format=png: the heatmap over the input enlarged 8x, as a PNG.
TEST_F(HttpTest, ExplanationPngIsAHeatmapOfTheEnlargedInput) {
  start();
  torch::manual_seed(5);
  const auto pixels = torch::randint(0, 256, {3, 32, 32}, torch::kUInt8);
  auto res = client().Put("/explanations/cifar10?format=png", encode_png(pixels), "image/png");
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(res->get_header_value("Content-Type"), "image/png");
  // The IHDR chunk: width and height, big-endian, at bytes 16 and 20.
  ASSERT_GT(res->body.size(), 24u);
  const auto be32 = [&](size_t at) {
    uint32_t v = 0;
    for (size_t i = 0; i < 4; ++i) v = v << 8 | static_cast<uint8_t>(res->body[at + i]);
    return v;
  };
  EXPECT_EQ(be32(16), 256u);
  EXPECT_EQ(be32(20), 256u);
  const auto heat = decode_image(res->body, 3, 256, 256)[0];
  const auto enlarged = pixels.repeat_interleave(8, 1).repeat_interleave(8, 2);
  const double changed = heat.ne(enlarged).any(0).to(torch::kFloat64).mean().item<double>();
  EXPECT_GT(changed, 0.01);  // coloured where the attribution is
  EXPECT_LT(changed, 1.0);   // the image shows through where it is weak
}

TEST_F(HttpTest, ExplanationErrorsGetTheRightStatusAndCountApartFromInference) {
  options_.explain.max_steps = 32;
  start();
  auto c = client();
  const std::string png = encode_png(torch::zeros({3, 32, 32}, torch::kUInt8));
  auto expect = [&](const httplib::Result& res, int status, const std::string& fragment) {
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, status) << res->body;
    const auto body = json::parse(res->body);
    EXPECT_NE(body["error"].get<std::string>().find(fragment), std::string::npos) << body;
  };
  expect(c.Post("/explanations/nope", png, "image/png"), 404, "unknown model");
  expect(c.Post("/explanations/cifar10/7", png, "image/png"), 404, "no version 7");
  expect(c.Post("/explanations/cifar10", "not an image", "image/png"), 400, "cannot decode image");
  expect(c.Post("/explanations/cifar10", "", "image/png"), 400, "empty");
  httplib::MultipartFormDataItems wrong_field = {{"picture", png, "x.png", "image/png"}};
  expect(c.Post("/explanations/cifar10", wrong_field), 400, "'data' or 'file'");
  expect(c.Post("/explanations/cifar10?target=unicorn", png, "image/png"), 400, "target 'unicorn'");
  expect(c.Post("/explanations/cifar10?target=10", png, "image/png"), 400, "class index in 0..9");
  expect(c.Post("/explanations/cifar10?steps=33", png, "image/png"), 400, "steps must be an integer in 1..32");
  expect(c.Post("/explanations/cifar10?steps=0", png, "image/png"), 400, "steps");
  expect(c.Post("/explanations/cifar10?baseline=-1", png, "image/png"), 400, "baseline");
  expect(c.Post("/explanations/cifar10?method=lime", png, "image/png"), 400, "method 'lime' unknown");
  expect(c.Post("/explanations/cifar10?format=gif", png, "image/png"), 400, "format 'gif' unknown");
  expect(c.Post("/explanations/cifar10?topk=5", png, "image/png"), 400, "unknown query parameter 'topk'");
  expect(c.Get("/explanations/cifar10"), 405, "not allowed");
  // Client bytes come back JSON-escaped, invalid UTF-8 replaced: the body parses.
  auto hostile = c.Post("/explanations/cifar10?target=%FF%00%22%3Cscript%3E", png, "image/png");
  expect(hostile, 400, "<script>");
  EXPECT_EQ(hostile->body.find('\xff'), std::string::npos);
  EXPECT_EQ(c.Post("/explanations/cifar10?steps=32", png, "image/png")->status, 200);

  const std::string metrics = c.Get("/metrics")->body;
  EXPECT_NE(metrics.find("maas_explanations_total{model=\"cifar10\",outcome=\"client_error\"} 12"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("maas_explanations_total{model=\"cifar10\",outcome=\"success\"} 1"), std::string::npos);
  EXPECT_NE(metrics.find("maas_explanation_seconds_count{model=\"cifar10\"} 13"), std::string::npos) << metrics;
  EXPECT_EQ(metrics.find("maas_requests_total{model=\"cifar10\""), std::string::npos);  // no inference counted
  EXPECT_EQ(json::parse(c.Get("/v2/models/cifar10/stats")->body)["model_stats"][0]["inference_count"], 0);

  repository_->stop_accepting();
  auto unavailable = c.Post("/explanations/cifar10", png, "image/png");
  expect(unavailable, 503, "shutting down");
  EXPECT_EQ(unavailable->get_header_value("Retry-After"), "1");
}

// Explanations share the workers and queue with inference: under a load of predictions both
// answer right, and inference statistics count only the predictions.
TEST_F(HttpTest, ExplanationsUnderInferenceLoadAnswerRightAndLeavePredictionsAlone) {
  options_.batching.instances = 2;
  start();
  const Artifact artifact = load_artifact(repo_.file("cifar10/1/model.pt"));
  const Explainer reference(artifact.module, artifact.info);
  constexpr int kClients = 4, kRequests = 16, kExplanations = 4;
  std::vector<torch::Tensor> inputs;
  for (int i = 0; i < kClients * kRequests; ++i) inputs.push_back(torch::randint(0, 256, {1, 3, 32, 32}, torch::kUInt8));
  const auto expected = reference_logits(repo_.file("cifar10/1/model.pt"), torch::cat(inputs));
  std::vector<std::string> images;
  std::vector<Explanation> explained;
  for (int i = 0; i < kExplanations; ++i) {
    const auto pixels = torch::randint(0, 256, {1, 3, 32, 32}, torch::kUInt8);
    images.push_back(encode_png(pixels[0]));
    explained.push_back(reference.explain({pixels, i}));
  }
  std::atomic<int> wrong{0}, failed{0};
  std::vector<std::thread> clients;
  add_prediction_clients(clients, inputs, expected, kClients, kRequests, wrong, failed);
  std::atomic<int> explanations_wrong{0}, explanations_failed{0};
  clients.emplace_back([&] {
    for (int i = 0; i < kExplanations; ++i) {
      auto res = client().Post("/explanations/cifar10?target=" + std::to_string(i), images[i], "image/png");
      if (!res || res->status != 200) {
        ++explanations_failed;
        continue;
      }
      const auto body = json::parse(res->body);
      const auto got = torch::tensor(body["attribution"].get<std::vector<std::vector<std::vector<float>>>>()[1][16]);
      const auto& e = explained[i];
      if (body["target"] != i ||
          (got - e.attribution[1][16]).abs().max().item<double>() > 1e-3 * e.attribution.abs().max().item<double>())
        ++explanations_wrong;
    }
  });
  for (auto& c : clients) c.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(explanations_failed.load(), 0);
  EXPECT_EQ(explanations_wrong.load(), 0);
  const auto stats = json::parse(client().Get("/v2/models/cifar10/stats")->body)["model_stats"][0];
  EXPECT_EQ(stats["inference_count"], kClients * kRequests);
}

// The built binary: starts, answers, and exits 0 on SIGTERM.
TEST(ServeBinary, ServesAndStopsCleanlyOnSigterm) {
  const std::string binary = std::string(MAAS_BINARY_DIR) + "/maas-serve";
  TempDir dir;
  write_model(dir.file("repo/cifar10/1/model.pt"), 1);
  const std::string log = dir.file("serve.log");
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    freopen(log.c_str(), "w", stderr);
    execl(binary.c_str(), binary.c_str(), "--models", dir.file("repo").c_str(), "--port", "0", nullptr);
    _exit(127);
  }
  int port = 0;
  for (int i = 0; i < 600 && port == 0; ++i) {  // up to 60 s for loading and warm-up
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const std::string text = std::filesystem::exists(log) ? read_text(log) : "";
    const auto at = text.find("ready on http://127.0.0.1:");
    if (at != std::string::npos) port = std::stoi(text.substr(at + 26));
  }
  ASSERT_GT(port, 0) << read_text(log);
  httplib::Client c("127.0.0.1", port);
  EXPECT_EQ(c.Get("/v2/health/ready")->status, 200);
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << read_text(log);
}

}  // namespace
}  // namespace maas
