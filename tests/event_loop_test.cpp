// maas-serve's event loops: request framing, requests run on the caller's thread, pipelining,
// hand-over to a connection thread mid-connection, clients that leave, and the same answers as
// the thread-per-connection path. (The HTTP suites run through the loops too: they are the default.)
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "http_event_loop.h"
#include "http_server.h"
#include "http_test_util.h"
#include "model_runner.h"
#include "test_util.h"

namespace maas {
namespace {

using nlohmann::json;
using testing::RawConnection;
using testing::TempDir;

// ---- frame_request ----

TEST(FrameRequest, AWholeRequestWithItsBodyIsComplete) {
  const std::string request = "POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody";
  const std::string input = request + "GET / HTTP/1.1\r\n";  // the next one's start is not counted
  const auto framing = frame_request(input, 1 << 16);
  ASSERT_EQ(framing.kind, RequestFraming::kComplete);
  EXPECT_EQ(framing.bytes, request.size());
  EXPECT_EQ(framing.method, "POST");
  EXPECT_EQ(framing.target, "/v2/models/m/infer");
  EXPECT_EQ(frame_request("GET /v2/health/live HTTP/1.1\r\n\r\n", 1 << 16).kind, RequestFraming::kComplete);
}

TEST(FrameRequest, PartsOfARequestAreIncomplete) {
  const std::string request = "POST /p HTTP/1.1\r\ncontent-length: 10\r\n\r\n0123456789";
  for (size_t size : {size_t{0}, size_t{5}, request.find("\r\n\r\n") + 2, request.size() - 1})
    EXPECT_EQ(frame_request(request.substr(0, size), 1 << 16).kind, RequestFraming::kIncomplete) << size;
}

TEST(FrameRequest, WhatOnlyAThreadReadsIsOther) {
  const auto kind = [](const std::string& head) { return frame_request(head + "\r\n", 1 << 16).kind; };
  EXPECT_EQ(kind("POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"), RequestFraming::kOther);
  EXPECT_EQ(kind("POST /p HTTP/1.1\r\nContent-Length: 0\r\nContent-Encoding: gzip\r\n"), RequestFraming::kOther);
  EXPECT_EQ(kind("POST /p HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 0\r\n"), RequestFraming::kOther);
  EXPECT_EQ(kind("POST /p HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 0\r\n"), RequestFraming::kOther);
  EXPECT_EQ(kind("POST /p HTTP/1.1\r\nContent-Length: -1\r\n"), RequestFraming::kOther);
  EXPECT_EQ(kind("POST /p HTTP/1.1\r\nX: a\r\n folded\r\n"), RequestFraming::kOther);
  EXPECT_EQ(kind("POST /p HTTP/1.1\r\nBad Name: a\r\n"), RequestFraming::kOther);
  EXPECT_EQ(kind("get /p HTTP/1.1\r\n"), RequestFraming::kOther);
  EXPECT_EQ(kind("GET /p HTTP/2\r\n"), RequestFraming::kOther);
  EXPECT_EQ(kind("GET /\xff HTTP/1.1\r\n"), RequestFraming::kOther);
  EXPECT_EQ(frame_request("GET / HTTP/1.1\n\n", 1 << 16).kind, RequestFraming::kOther);  // bare LF
  // Over the loop's size: a body declared too large, or headers that never end within it.
  EXPECT_EQ(kind("POST /p HTTP/1.1\r\nContent-Length: 100\r\n"), RequestFraming::kIncomplete);
  EXPECT_EQ(frame_request("POST /p HTTP/1.1\r\nContent-Length: 100\r\n\r\n", 64).kind, RequestFraming::kOther);
  EXPECT_EQ(frame_request("GET /p HTTP/1.1\r\nX: " + std::string(100, 'a'), 64).kind, RequestFraming::kOther);
}

// ---- ModelRunner: requests run on the caller's thread ----

Artifact random_artifact() {
  return load_artifact_from_bytes(testing::random_cnn_artifact(5, testing::kCifar10Classes), "test artifact");
}

TEST(ModelRunner, RunQueuedRunsTheCallersRequestsOnItsThreadInOneBatch) {
  BatchingOptions options;
  options.instances = 1;
  options.idle_spin_us = 0;  // a polling worker could take a request before run_queued()
  const Artifact artifact = random_artifact();
  torch::jit::Module reference = artifact.module.clone();
  ModelRunner runner("cnn", 1, artifact, options);
  std::vector<torch::Tensor> images, answers(3);
  std::vector<std::thread::id> threads(3);
  std::vector<int64_t> batch_images(3);
  for (int i = 0; i < 3; ++i) {
    images.push_back(torch::randint(0, 256, {1 + i, 3, 32, 32}, torch::kUInt8));
    runner.submit(
        images.back(),
        [&, i](torch::Tensor logits, const InferTiming& timing, std::exception_ptr error) {
          EXPECT_FALSE(error);
          answers[i] = logits;
          threads[i] = std::this_thread::get_id();
          batch_images[i] = timing.batch_images;
        },
        nullptr, ModelRunner::RunOn::kCaller);
  }
  runner.run_queued();
  torch::NoGradGuard no_grad;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(threads[i], std::this_thread::get_id()) << i;
    EXPECT_EQ(batch_images[i], 6) << i;  // 1 + 2 + 3 images, one forward
    ASSERT_TRUE(answers[i].defined()) << i;
    EXPECT_LE((answers[i] - reference.forward({images[i]}).toTensor()).abs().max().item<double>(), 1e-4) << i;
  }
}

TEST(ModelRunner, ALoneRequestInAnIdleRunnerGoesToAWorker) {
  for (const int64_t spin : {int64_t{0}, int64_t{1000}}) {
    BatchingOptions options;
    options.instances = 1;
    options.idle_spin_us = spin;
    ModelRunner runner("cnn", 1, random_artifact(), options);
    std::promise<std::thread::id> ran_on;
    runner.submit(
        torch::zeros({1, 3, 32, 32}, torch::kUInt8),
        [&](torch::Tensor, const InferTiming&, std::exception_ptr) { ran_on.set_value(std::this_thread::get_id()); },
        nullptr, ModelRunner::RunOn::kCaller);
    runner.run_queued();
    const auto thread = ran_on.get_future().get();
    // With polling on (and a core to spare) a worker runs it; without, the caller does.
    if (spin > 0 && core_count() >= 2) EXPECT_NE(thread, std::this_thread::get_id());
    else EXPECT_EQ(thread, std::this_thread::get_id());
  }
}

// ---- The server ----

std::string infer_body(int64_t id, uint8_t pixel) {
  std::vector<int> data(3 * 32 * 32, pixel);
  return json{{"id", std::to_string(id)},
              {"inputs", {{{"name", "image"}, {"shape", {1, 3, 32, 32}}, {"datatype", "UINT8"}, {"data", data}}}}}
      .dump();
}

std::string post(const std::string& path, const std::string& body, const std::string& extra_headers = "") {
  return "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n" + extra_headers + "\r\n" + body;
}

class EventLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(repo_.file("cifar10/1"));
    testing::write_bytes(repo_.file("cifar10/1/model.pt"), testing::random_cnn_artifact(1, testing::kCifar10Classes));
    options_.port = 0;
    options_.models_dir = repo_.path();
  }
  void start() { served_ = std::make_unique<testing::ServerUnderTest>(options_); }
  int port() const { return served_->port(); }
  // Waits (polling the server's state, at most 20 s) until it has `n` open connections.
  bool wait_for_connections(int64_t n) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (served_->server().open_connections() != n) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));  // polling the server's state
    }
    return true;
  }

  TempDir repo_;
  ServeOptions options_;
  std::unique_ptr<testing::ServerUnderTest> served_;
};

TEST_F(EventLoopTest, PipelinedRequestsAreAnsweredInOrderWithTheThreadPathsLogits) {
  std::vector<json> answers[2];
  for (const bool loops : {true, false}) {
    options_.event_loops = loops;
    start();
    RawConnection c(port());
    ASSERT_TRUE(c.connected());
    std::string requests;
    for (int i = 0; i < 5; ++i) requests += post("/v2/models/cifar10/infer", infer_body(i, static_cast<uint8_t>(40 * i)));
    ASSERT_TRUE(c.send(requests));  // all at once: one read holds several requests
    for (int i = 0; i < 5; ++i) {
      const auto r = c.read();
      ASSERT_EQ(r.status, 200) << r.body;
      const auto answer = json::parse(r.body);
      EXPECT_EQ(answer["id"], std::to_string(i)) << "answers out of order";
      answers[loops].push_back(answer["outputs"][0]["data"]);
    }
    served_.reset();
  }
  ASSERT_EQ(answers[0].size(), answers[1].size());
  for (size_t i = 0; i < answers[0].size(); ++i)
    for (size_t j = 0; j < answers[0][i].size(); ++j)
      EXPECT_NEAR(answers[0][i][j].get<double>(), answers[1][i][j].get<double>(), 1e-5) << i;
}

TEST_F(EventLoopTest, AConnectionHandedToAThreadKeepsItsBytesAndGoesOn) {
  start();
  RawConnection c(port());
  ASSERT_TRUE(c.connected());
  // A loop request, then a chunked one (a thread's to read) whose head arrives with the first:
  // the connection moves to a thread carrying those bytes, and both are answered.
  const std::string body = infer_body(7, 9);
  std::string chunked = "POST /v2/models/cifar10/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n";
  ASSERT_TRUE(c.send(post("/v2/models/cifar10/infer", infer_body(6, 9)) + chunked));
  const auto first = c.read();
  ASSERT_EQ(first.status, 200) << first.body;
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", body.size());
  ASSERT_TRUE(c.send(size + body + "\r\n0\r\n\r\n"));
  const auto second = c.read();
  ASSERT_EQ(second.status, 200) << second.body;
  EXPECT_EQ(json::parse(second.body)["id"], "7");
  EXPECT_EQ(json::parse(first.body)["outputs"], json::parse(second.body)["outputs"]);  // same pixels
  // A request whose body arrives in two parts is answered too (by the loop or, if slow, a thread).
  const std::string request = post("/v2/models/cifar10/infer", infer_body(8, 9));
  ASSERT_TRUE(c.send(request.substr(0, request.size() / 2)));
  ASSERT_TRUE(c.send(request.substr(request.size() / 2)));
  EXPECT_EQ(c.read().status, 200);
}

TEST_F(EventLoopTest, AClientThatLeavesBeforeItsAnswerLeavesTheServerServing) {
  start();
  for (int i = 0; i < 20; ++i) {
    RawConnection c(port());
    ASSERT_TRUE(c.connected());
    ASSERT_TRUE(c.send(post("/v2/models/cifar10/infer", infer_body(i, 1))));
  }  // closed before reading: the answer has nobody to go to
  ASSERT_TRUE(wait_for_connections(0)) << "connections left open: " << served_->server().open_connections();
  RawConnection c(port());
  ASSERT_TRUE(c.send(post("/v2/models/cifar10/infer", infer_body(1, 1))));
  EXPECT_EQ(c.read().status, 200);
}

// server.max_header_bytes held only on a connection thread's own reads (with a buffer of slack),
// so a loop, which receives a request whole, served any head up to 64 KiB.
TEST_F(EventLoopTest, HeadersOverMaxHeaderBytesGet431OnBothPaths) {
  options_.max_header_bytes = 1024;
  for (const bool loops : {true, false}) {
    options_.event_loops = loops;
    start();
    RawConnection c(port());
    ASSERT_TRUE(c.send("GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(2000, 'a') + "\r\n\r\n"));
    EXPECT_EQ(c.read().status, 431) << (loops ? "event loop" : "thread");
    RawConnection small(port());
    ASSERT_TRUE(small.send("GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"));
    EXPECT_EQ(small.read().status, 200);
    served_.reset();
  }
}

// A client that sends its requests and then its end (shutdown(SHUT_WR), as nc does) gets every
// answer: the loop closed after the first deferred answer.
TEST_F(EventLoopTest, AHalfClosedClientGetsTheAnswersToAllItSent) {
  start();
  RawConnection c(port());
  ASSERT_TRUE(c.send(post("/v2/models/cifar10/infer", infer_body(1, 1)) + post("/v2/models/cifar10/infer", infer_body(2, 1)) +
                     "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"));
  c.shutdown_write();
  const auto first = c.read(), second = c.read(), third = c.read();
  ASSERT_EQ(first.status, 200);
  ASSERT_EQ(second.status, 200) << "the second answer was lost";
  EXPECT_EQ(json::parse(second.body)["id"], "2");
  EXPECT_EQ(third.status, 200);
}

}  // namespace
}  // namespace maas
