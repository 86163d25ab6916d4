// maas-serve against hostile and foreign clients: raw sockets against the real server in-process
// (and the built binary for signals). Each test reproduces a request that crashed, exhausted or
// held the server before, or a call of NVIDIA's tritonclient that failed.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "heap_counter.h"
#include "http_server.h"
#include "http_test_util.h"
#include "image.h"
#include "test_util.h"

namespace maas {
namespace {

using nlohmann::json;
using testing::gzip;
using testing::RawConnection;
using testing::TempDir;
using Clock = std::chrono::steady_clock;

const std::vector<std::string>& kClasses = testing::kCifar10Classes;

std::string post(const std::string& path, const std::string& body, const std::string& extra_headers = "") {
  return "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n" + extra_headers + "\r\n" + body;
}

json uint8_request(int64_t n) {
  std::vector<int> data(static_cast<size_t>(n * 3 * 32 * 32), 7);
  return {{"inputs", {{{"name", "image"}, {"shape", {n, 3, 32, 32}}, {"datatype", "UINT8"}, {"data", data}}}}};
}

// The binary tensor request of `images` (uint8 or float32 [N, 3, 32, 32]) with `outputs`.
std::pair<std::string, size_t> binary_request(const torch::Tensor& images, const json& outputs,
                                              const json& parameters = json::object()) {
  const auto flat = images.contiguous();
  const size_t bytes = static_cast<size_t>(flat.numel() * flat.element_size());
  json header = {{"inputs", {{{"name", "image"},
                              {"shape", images.sizes().vec()},
                              {"datatype", images.scalar_type() == torch::kUInt8 ? "UINT8" : "FP32"},
                              {"parameters", {{"binary_data_size", bytes}}}}}}};
  if (!outputs.is_null()) header["outputs"] = outputs;
  if (!parameters.empty()) header["parameters"] = parameters;
  const std::string text = header.dump();
  return {text + std::string(static_cast<const char*>(flat.data_ptr()), bytes), text.size()};
}

class HostileClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(repo_.file("cifar10/1"));
    testing::write_bytes(repo_.file("cifar10/1/model.pt"), testing::random_cnn_artifact(1, kClasses));
    options_.port = 0;
    options_.models_dir = repo_.path();
    options_.batching.max_batch_size = 8;
    options_.batching.max_queue_images = 64;
    options_.admin_token = "secret";
  }
  void TearDown() override { stop(); }

  void start() {
    served_ = std::make_unique<testing::ServerUnderTest>(options_);
    server_ = &served_->server();
    port_ = served_->port();
  }
  void stop() { served_.reset(); }
  // One request on a fresh connection.
  RawConnection::Response exchange(const std::string& request) {
    RawConnection s(port_);
    EXPECT_TRUE(s.connected());
    s.send(request);
    return s.read();
  }
  // The server still answers a health check.
  void expect_alive() {
    const auto r = exchange("GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(r.status, 200) << "the server no longer answers";
  }
  // Waits (polling the server's state, at most 20 s) until it has `n` open connections.
  bool wait_for_connections(int64_t n) {
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    while (server_->open_connections() != n) {
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));  // polling the server's state
    }
    return true;
  }

  TempDir repo_;
  ServeOptions options_;
  std::unique_ptr<testing::ServerUnderTest> served_;
  HttpServer* server_ = nullptr;  // served_'s
  int port_ = 0;
};

// ---- Critical: a byte that is not UTF-8 ----

TEST_F(HostileClientTest, InvalidUtf8InThePathIsA404NotACrash) {
  start();
  const auto r = exchange("GET /%FF HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.status, 404);
  EXPECT_NO_THROW(json::parse(r.body)) << r.body;  // valid JSON, the byte replaced
  const auto raw = exchange("GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(raw.status, 404);
  expect_alive();
}

TEST_F(HostileClientTest, InvalidUtf8InAnyEchoedFieldIsA400) {
  start();
  const std::vector<std::string> bodies = {
      R"({"inputs":[{"name":")" "\xff\xfe" R"(","shape":[1,3,32,32],"datatype":"UINT8","data":[1]}]})",
      R"({"inputs":[{"name":"image","shape":[1,3,32,32],"datatype":")" "\xc3\x28" R"(","data":[1]}]})",
      R"({"id":")" "\xed\xa0\x80" R"(","inputs":[]})",
      "{\"inputs\": \xff",
      R"({"inputs":[{"name":"image","shape":[1,3,32,32],"datatype":"UINT8","data":[1]}],"outputs":[{"name":")"
      "\xf8\x88" R"("}]})",
  };
  for (const auto& body : bodies) {
    const auto r = exchange(post("/v2/models/cifar10/infer", body));
    EXPECT_EQ(r.status, 400) << body << " -> " << r.body;
    EXPECT_NO_THROW(json::parse(r.body)) << r.body;
  }
  expect_alive();
}

// ---- High: bodies, headers and lists without bounds ----

TEST_F(HostileClientTest, AGzipBombIsRefusedWith413AfterInflatingOnlyTheLimit) {
  options_.max_body_bytes = 1 << 20;
  start();
  const std::string bomb = gzip(std::string(64 << 20, ' '));  // 64 MiB of spaces in ~64 KiB
  ASSERT_LT(bomb.size(), size_t{1} << 20);
  const auto r = exchange(post("/v2/models/cifar10/infer", bomb, "Content-Encoding: gzip\r\n"));
  EXPECT_EQ(r.status, 413) << r.body;
  EXPECT_NE(r.body.find("max_body_bytes"), std::string::npos) << r.body;
  expect_alive();
}

TEST_F(HostileClientTest, GzipBodiesWithinTheLimitAreInflatedOtherEncodingsRefused) {
  start();
  const std::string body = uint8_request(1).dump();
  const auto r = exchange(post("/v2/models/cifar10/infer", gzip(body), "Content-Encoding: gzip\r\n"));
  EXPECT_EQ(r.status, 200) << r.body;
  const auto brotli = exchange(post("/v2/models/cifar10/infer", body, "Content-Encoding: br\r\n"));
  EXPECT_EQ(brotli.status, 415) << brotli.body;
}

TEST_F(HostileClientTest, AChunkedBodyOverTheLimitIsCutWith413) {
  options_.max_body_bytes = 1 << 20;
  start();
  RawConnection s(port_);
  s.send("POST /v2/models/cifar10/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
  const std::string chunk(64 << 10, 'a');
  char size[16];
  std::snprintf(size, sizeof size, "%zx\r\n", chunk.size());
  for (int i = 0; i < 64; ++i)  // 4 MiB; the server stops reading after about 1 MiB
    if (!s.send(size + chunk + "\r\n")) break;
  const auto r = s.read();
  EXPECT_EQ(r.status, 413) << r.head << r.body;
  expect_alive();
}

TEST_F(HostileClientTest, ADeclaredLengthOverTheLimitIsRefusedBeforeTheBody) {
  options_.max_body_bytes = 1 << 20;
  start();
  RawConnection s(port_);
  s.send("POST /v2/models/cifar10/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 209715200\r\n\r\n");
  const auto r = s.read();  // answered without sending a byte of the 200 MiB
  EXPECT_EQ(r.status, 413) << r.body;
}

TEST_F(HostileClientTest, APostWithNeitherLengthNorChunkingHasAnEmptyBody) {
  start();
  // tritonclient's get_model_repository_index and curl -X POST send no body and no length.
  const auto r = exchange("POST /v2/repository/index HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer secret\r\n\r\n");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)[0]["name"], "cifar10");
}

TEST_F(HostileClientTest, AHugeRequestLineIsCutWith431) {
  options_.max_header_bytes = 16 << 10;
  start();
  RawConnection s(port_);
  s.send("GET /");
  const std::string filler(64 << 10, 'a');
  for (int i = 0; i < 64; ++i)  // 4 MiB of path; the server stops reading after its limit
    if (!s.send(filler)) break;
  const auto r = s.read();
  EXPECT_EQ(r.status, 431) << r.head << r.body;
  expect_alive();
}

TEST_F(HostileClientTest, MillionsOfHeaderLinesAreCutWith431) {
  options_.max_header_bytes = 16 << 10;
  start();
  RawConnection s(port_);
  s.send("GET /v2/health/live HTTP/1.1\r\nHost: x\r\n");
  std::string lines;
  for (int i = 0; i < 10000; ++i) lines += "a: b\r\n";
  for (int i = 0; i < 200; ++i)  // 2 million lines
    if (!s.send(lines)) break;
  const auto r = s.read();
  EXPECT_EQ(r.status, 431) << r.head << r.body;
}

// ---- A request line httplib cannot parse: one 400, then close (no desync) ----

TEST_F(HostileClientTest, AMalformedRequestLineGetsOne400AndTheConnectionCloses) {
  start();
  const std::string cases[] = {
      "FOO /v2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",  // was four 400s, then held open
      "GET /\r\n" + [] {
        std::string blank;
        for (int i = 0; i < 1000; ++i) blank += "\r\n";
        return blank;
      }(),  // was 1001 answers
      // was a 400 and then a 200: the header line served as a request
      "FOO /x HTTP/1.1\r\nGET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n",
  };
  for (const std::string& request : cases) {
    RawConnection s(port_);
    ASSERT_TRUE(s.connected());
    s.send(request);
    const auto first = s.read();
    EXPECT_EQ(first.status, 400) << request.substr(0, 40);
    EXPECT_NE(first.body.find("\"error\":\"malformed request"), std::string::npos) << first.body;
    EXPECT_NE(first.head.find("Connection: close"), std::string::npos) << first.head;
    const auto second = s.read(std::chrono::seconds(2));
    EXPECT_EQ(second.status, 0) << "a second answer on a desynced connection: " << second.head;
    EXPECT_TRUE(s.closed_by_server(std::chrono::seconds(5)));
  }
  expect_alive();
}

// ---- A FIFO named model.pt ----

TEST_F(HostileClientTest, AFifoModelFileIsRefusedWith400AtOnce) {
  start();
  std::filesystem::create_directories(repo_.file("fifo/1"));
  testing::make_fifo(repo_.file("fifo/1/model.pt"));
  RawConnection s(port_);
  s.send(post("/v2/repository/models/fifo/load", "", "Authorization: Bearer secret\r\n"));
  const auto r = s.read(std::chrono::seconds(20));
  if (r.status == 0) testing::unblock_fifo_readers(repo_.file("fifo/1/model.pt"));  // the old hang: free the thread
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("fifo/1/model.pt: not a regular file (a FIFO)"), std::string::npos) << r.body;
  expect_alive();
}

// ---- JSON requests: memory a small multiple of the body ----

TEST_F(HostileClientTest, AJsonRequestCostsASmallMultipleOfItsBodyInMemory) {
  start();
  // 1365 images of "7," (8 MiB), far over max_batch_size 8: the old parser held ~9.5x the body
  // (a double per value, doubling copies, a float64 tensor) before refusing it.
  const std::string request = post("/v2/models/cifar10/infer", uint8_request(1365).dump());
  const auto body = static_cast<int64_t>(request.size());
  RawConnection s(port_);
  testing::reset_heap_peak();
  const int64_t before = testing::heap_bytes_in_use();
  s.send(request);
  const auto r = s.read();
  const int64_t peak = testing::heap_peak_bytes() - before;
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("max_batch_size"), std::string::npos) << r.body;
  EXPECT_LT(peak, 4 * body) << "peak heap growth " << peak << " bytes for a body of " << body << " bytes";
  std::cout << "peak heap growth " << peak << " bytes for a " << body << "-byte JSON body: "
            << static_cast<double>(peak) / static_cast<double>(body) << "x\n";
}

TEST_F(HostileClientTest, TheOutputsListIsBounded) {
  start();
  json many = uint8_request(1);
  many["outputs"] = json::array();
  for (int i = 0; i < 1000; ++i) many["outputs"].push_back({{"name", "logits"}});
  const auto r = exchange(post("/v2/models/cifar10/infer", many.dump()));
  EXPECT_EQ(r.status, 400) << r.body.substr(0, 200);
  EXPECT_LT(r.body.size(), 1000u);
  json twice = uint8_request(1);
  twice["outputs"] = {{{"name", "logits"}}, {{"name", "logits"}}};
  EXPECT_EQ(exchange(post("/v2/models/cifar10/infer", twice.dump())).status, 400);
}

TEST_F(HostileClientTest, DeeplyNestedOrSprawlingJsonIsRefused) {
  start();
  EXPECT_EQ(exchange(post("/v2/models/cifar10/infer", std::string(100000, '[') + std::string(100000, ']'))).status, 400);
  json sprawl = uint8_request(1);
  sprawl["parameters"] = {{"x", std::vector<json>(100000, json::object())}};
  EXPECT_EQ(exchange(post("/v2/models/cifar10/infer", sprawl.dump())).status, 400);
  expect_alive();
}

TEST_F(HostileClientTest, ImageBombsAndOtherFormatsAreRefusedBeforeDecoding) {
  start();
  // A 35-byte GIF declaring 16384 x 16384 pixels (decoded, it cost 3.85 GB and 27 s).
  const std::string gif("GIF89a\x00\x40\x00\x40\x00\x00\x00"
                        "\x2c\x00\x00\x00\x00\x00\x40\x00\x40\x00"
                        "\x02\x02\x44\x01\x00\x3b",
                        29);
  const auto bomb = exchange("PUT /predictions/cifar10 HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                             std::to_string(gif.size()) + "\r\n\r\n" + gif);
  EXPECT_EQ(bomb.status, 400) << bomb.body;
  EXPECT_NE(bomb.body.find("pixels"), std::string::npos) << bomb.body;
  // Radiance HDR (whose decoder looped forever on a 49-byte file) is not a format maas decodes.
  const std::string hdr = "#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 8 +X 8\n" + std::string(16, '\x02');
  const auto other = exchange("PUT /predictions/cifar10 HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                              std::to_string(hdr.size()) + "\r\n\r\n" + hdr);
  EXPECT_EQ(other.status, 400) << other.body;
  expect_alive();
}

// ---- High: slow clients ----

TEST_F(HostileClientTest, AThousandSlowClientsDoNotBlockHealthOrInference) {
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = std::min<rlim_t>(limit.rlim_max, 8192);
  setrlimit(RLIMIT_NOFILE, &limit);
  ASSERT_GE(limit.rlim_cur, 2300u) << "the test needs 2 descriptors per slow client";
  start();
  std::vector<std::unique_ptr<RawConnection>> slow;
  for (int i = 0; i < 1000; ++i) {
    slow.push_back(std::make_unique<RawConnection>(port_));
    ASSERT_TRUE(slow.back()->connected());
  }
  ASSERT_TRUE(wait_for_connections(1000));
  const std::string request = "GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ";
  for (int round = 0; round < 3; ++round) {
    for (auto& s : slow) s->send(std::string(1, request[static_cast<size_t>(round)]));  // one byte each
    // Each answers within a bound far below the slow clients' patience (no fixed pool to wait for).
    RawConnection health(port_);
    health.send("GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(health.read(std::chrono::milliseconds(2000)).status, 200) << "round " << round;
    RawConnection inference(port_);
    inference.send(post("/v2/models/cifar10/infer", uint8_request(1).dump()));
    EXPECT_EQ(inference.read(std::chrono::milliseconds(5000)).status, 200) << "round " << round;
  }
}

TEST_F(HostileClientTest, ARequestThatTricklesInIsCutAtTheRequestDeadline) {
  options_.request_timeout_s = 0.5;
  start();
  RawConnection s(port_);
  s.send("GET /v2/health/live HTTP/1.1\r\n");  // and never the rest
  const auto r = s.read();
  EXPECT_EQ(r.status, 408) << r.head << r.body;
  EXPECT_TRUE(s.closed_by_server(std::chrono::seconds(5)));
}

TEST_F(HostileClientTest, AnIdleKeepAliveConnectionIsClosed) {
  options_.idle_timeout_s = 0.2;
  start();
  RawConnection s(port_);
  s.send("GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(s.read().status, 200);
  EXPECT_TRUE(s.closed_by_server(std::chrono::seconds(3)));  // httplib's fixed 5 s would not
}

TEST_F(HostileClientTest, ConnectionsOverTheCapGet503AtOnce) {
  options_.max_connections = 4;
  start();
  std::vector<std::unique_ptr<RawConnection>> held;
  for (int i = 0; i < 4; ++i) held.push_back(std::make_unique<RawConnection>(port_));
  ASSERT_TRUE(wait_for_connections(4));
  RawConnection extra(port_);
  extra.send("GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n");
  const auto r = extra.read();
  EXPECT_EQ(r.status, 503) << r.head;
  EXPECT_NE(r.head.find("Retry-After"), std::string::npos);
  EXPECT_NE(r.body.find("max_connections"), std::string::npos);
  held.clear();  // slots free again
  ASSERT_TRUE(wait_for_connections(0));
  expect_alive();
}

TEST_F(HostileClientTest, BodiesInFlightShareOneMemoryBudget) {
  options_.max_body_bytes = 1 << 20;
  options_.max_inflight_body_bytes = 2 << 20;
  start();
  const std::string head = "POST /v2/models/cifar10/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n";
  RawConnection first(port_), second(port_);
  first.send(head + "{");  // each reserves its declared 1 MiB, then stalls
  second.send(head + "{");
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (server_->inflight_body_bytes() < (2 << 20) && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // polling the server's state
  ASSERT_EQ(server_->inflight_body_bytes(), 2 << 20);
  RawConnection third(port_);
  third.send(head);
  const auto r = third.read();  // refused at once, before its body
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_NE(r.head.find("Retry-After"), std::string::npos);
  // A chunked body declares nothing: it is counted as it arrives, and cut at the budget.
  RawConnection chunked(port_);
  chunked.send("POST /v2/models/cifar10/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
  chunked.send("10000\r\n" + std::string(0x10000, ' ') + "\r\n");
  const auto cut = chunked.read();
  EXPECT_EQ(cut.status, 503) << cut.head << cut.body;
}

// ---- Medium: admission and values ----

TEST_F(HostileClientTest, ARequestThatCanNeverFitGets400NamingTheLimit) {
  start();
  const auto r = exchange(post("/v2/models/cifar10/infer", uint8_request(9).dump()));  // max_batch_size 8
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("max_batch_size"), std::string::npos) << r.body;
  EXPECT_EQ(exchange(post("/v2/models/cifar10/infer", uint8_request(8).dump())).status, 200);
}

TEST_F(HostileClientTest, VersionZeroAndOverlongNamesAre404) {
  start();
  EXPECT_EQ(exchange("GET /v2/models/cifar10/versions/0 HTTP/1.1\r\nHost: x\r\n\r\n").status, 404);
  EXPECT_EQ(exchange(post("/v2/models/cifar10/versions/0/infer", uint8_request(1).dump())).status, 404);
  const std::string name(300, 'm');
  EXPECT_EQ(exchange("GET /v2/models/" + name + " HTTP/1.1\r\nHost: x\r\n\r\n").status, 404);
  EXPECT_EQ(exchange(post("/v2/models/" + name + "/infer", uint8_request(1).dump())).status, 404);
  const auto load = exchange(post("/v2/repository/models/" + name + "/load", "", "Authorization: Bearer secret\r\n"));
  EXPECT_EQ(load.status, 400) << load.body;
}

TEST_F(HostileClientTest, Fp32BinaryPixelsMustBeNumbersIn0To255) {
  start();
  for (const float bad : {std::nanf(""), 1e30f, -1.0f, 256.0f}) {
    auto images = torch::full({1, 3, 32, 32}, 10.0f);
    images[0][1][2][3] = bad;
    const auto [body, json_length] = binary_request(images, nullptr);
    const auto r = exchange(post("/v2/models/cifar10/infer", body,
                                 "Inference-Header-Content-Length: " + std::to_string(json_length) + "\r\n"));
    EXPECT_EQ(r.status, 400) << bad << ": " << r.body;
  }
}

// ---- Foreign clients: what tritonclient.http sends and reads ----

std::vector<std::string> bytes_elements(const std::string& data) {
  std::vector<std::string> out;
  for (size_t at = 0; at + 4 <= data.size();) {
    uint32_t n = 0;
    for (int i = 0; i < 4; ++i) n |= static_cast<uint32_t>(static_cast<unsigned char>(data[at + i])) << (8 * i);
    out.push_back(data.substr(at + 4, n));
    at += 4 + n;
  }
  return out;
}

TEST_F(HostileClientTest, BinaryClassificationOutputsAreBinaryBytesTensors) {
  start();
  const auto images = torch::randint(0, 256, {2, 3, 32, 32}, torch::kUInt8);
  const auto [body, json_length] = binary_request(
      images, {{{"name", "probabilities"}, {"parameters", {{"classification", 3}, {"binary_data", true}}}}});
  const auto r = exchange(post("/v2/models/cifar10/infer", body,
                               "Inference-Header-Content-Length: " + std::to_string(json_length) + "\r\n"));
  ASSERT_EQ(r.status, 200) << r.body;
  const auto at = r.head.find("Inference-Header-Content-Length: ");
  ASSERT_NE(at, std::string::npos) << r.head;
  const size_t header_length = std::stoul(r.head.substr(at + 33));
  const auto header = json::parse(r.body.substr(0, header_length));
  const auto& output = header["outputs"][0];
  EXPECT_EQ(output["datatype"], "BYTES");
  EXPECT_EQ(output["shape"], json({2, 3}));
  EXPECT_FALSE(output.contains("data"));
  const auto elements = bytes_elements(r.body.substr(header_length));
  ASSERT_EQ(elements.size(), 6u);
  EXPECT_EQ(output["parameters"]["binary_data_size"], r.body.size() - header_length);
  for (const auto& e : elements) {  // "score:index:label"
    const auto first = e.find(':'), second = e.find(':', first + 1);
    ASSERT_NE(second, std::string::npos) << e;
    EXPECT_EQ(e.substr(second + 1), kClasses.at(std::stoul(e.substr(first + 1, second - first - 1))));
  }
}

TEST_F(HostileClientTest, RequestLevelBinaryDataOutputMakesEveryOutputBinary) {
  start();
  const auto [body, json_length] =
      binary_request(torch::zeros({1, 3, 32, 32}, torch::kUInt8), nullptr, {{"binary_data_output", true}});
  const auto r = exchange(post("/v2/models/cifar10/infer", body,
                               "Inference-Header-Content-Length: " + std::to_string(json_length) + "\r\n"));
  ASSERT_EQ(r.status, 200) << r.body;
  const size_t header_length = std::stoul(r.head.substr(r.head.find("Inference-Header-Content-Length: ") + 33));
  const auto header = json::parse(r.body.substr(0, header_length));
  ASSERT_EQ(header["outputs"].size(), 2u);
  for (const auto& o : header["outputs"]) EXPECT_EQ(o["parameters"]["binary_data_size"], 40);
  EXPECT_EQ(r.body.size() - header_length, 80u);
}

TEST_F(HostileClientTest, StatisticsExtensionCountsInferencesInTritonsFormat) {
  start();
  for (int n : {1, 2, 3}) ASSERT_EQ(exchange(post("/v2/models/cifar10/infer", uint8_request(n).dump())).status, 200);
  ASSERT_EQ(exchange(post("/v2/models/cifar10/infer", uint8_request(99).dump())).status, 400);
  for (const std::string path : {"/v2/models/stats", "/v2/models/cifar10/stats", "/v2/models/cifar10/versions/1/stats"}) {
    const auto r = exchange("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_EQ(r.status, 200) << path;
    const auto stats = json::parse(r.body)["model_stats"];
    ASSERT_EQ(stats.size(), 1u) << r.body;
    EXPECT_EQ(stats[0]["name"], "cifar10");
    EXPECT_EQ(stats[0]["version"], "1");
    EXPECT_EQ(stats[0]["inference_count"], 6);
    EXPECT_EQ(stats[0]["execution_count"], 3);
    EXPECT_EQ(stats[0]["inference_stats"]["success"]["count"], 3);
    EXPECT_GT(stats[0]["inference_stats"]["compute_infer"]["ns"].get<uint64_t>(), 0u);
    EXPECT_EQ(stats[0]["batch_stats"].size(), 3u);  // batch sizes 1, 2 and 3
    EXPECT_GT(stats[0]["last_inference"].get<int64_t>(), 0);
  }
  EXPECT_EQ(exchange("GET /v2/models/nope/stats HTTP/1.1\r\nHost: x\r\n\r\n").status, 404);
  const auto server = json::parse(exchange("GET /v2 HTTP/1.1\r\nHost: x\r\n\r\n").body);
  EXPECT_NE(std::find(server["extensions"].begin(), server["extensions"].end(), "statistics"),
            server["extensions"].end());
}

TEST_F(HostileClientTest, TorchServePingAnswersHealthy) {
  start();
  const auto r = exchange("GET /ping HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body)["status"], "Healthy");
  server_->set_ready(false);
  EXPECT_EQ(exchange("GET /ping HTTP/1.1\r\nHost: x\r\n\r\n").status, 503);
}

// ---- Shutdown of the built binary ----

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// maas-serve as a child process with `settings`; waits (at most 60 s) until it is ready.
class ServeProcess {
 public:
  ServeProcess(const TempDir& dir, const std::vector<std::string>& settings) : log_(dir.file("serve.log")) {
    std::filesystem::create_directories(dir.file("repo/cifar10/1"));
    testing::write_bytes(dir.file("repo/cifar10/1/model.pt"), testing::random_cnn_artifact(1, kClasses));
    const std::string binary = std::string(MAAS_BINARY_DIR) + "/maas-serve";
    std::vector<std::string> args = {binary, "--models", dir.file("repo"), "--port", "0"};
    for (const auto& s : settings) args.insert(args.end(), {"--set", s});
    pid_ = fork();
    if (pid_ == 0) {
      if (!freopen(log_.c_str(), "w", stderr)) _exit(126);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(binary.c_str(), argv.data());
      _exit(127);
    }
    port_ = std::stoi(wait_for_log("ready on http://127.0.0.1:", std::chrono::seconds(60)));
  }
  ~ServeProcess() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  // The text after `marker` in the log, once it appears (at most `wait`); "" if it never does.
  std::string wait_for_log(const std::string& marker, std::chrono::seconds wait) const {
    const auto deadline = Clock::now() + wait;
    while (Clock::now() < deadline) {
      const std::string text = read_text(log_);
      const auto at = text.find(marker);
      if (at != std::string::npos) return text.substr(at + marker.size());
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling a file: nothing to wait on
    }
    return "";
  }
  // The exit status once the process ends within `wait`; -1 if it does not.
  int wait_exit(std::chrono::seconds wait) {
    const auto deadline = Clock::now() + wait;
    while (Clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }
  std::string log() const { return read_text(log_); }

 private:
  std::string log_;
  pid_t pid_ = -1;
  int port_ = 0;
  bool exited_ = false;
};

// Sends the headers of an upload and waits until the server has read them (it answers
// "100 Continue"): the request is then in flight, its body still to come.
bool start_upload(RawConnection& s) {
  s.send("POST /v2/models/cifar10/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n");
  const auto r = s.read();
  if (r.status != 100) return false;
  return s.send("{");
}

TEST(ServeShutdown, ASlowClientDoesNotHoldSigterm) {
  TempDir dir;
  ServeProcess serve(dir, {});
  RawConnection slow(serve.port());
  RawConnection idle(serve.port());
  // A request line trickling in, a byte every 200 ms: each byte would renew a per-read timeout.
  std::atomic<bool> done{false};
  std::thread trickle([&] {
    const std::string line = "GET /v2/health/live HTTP/1.1\r\nX-Slow: " + std::string(1000, 'a');
    for (size_t i = 0; i < line.size() && !done; ++i) {
      if (!slow.send(line.substr(i, 1))) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the client's pace, not a wait
    }
  });
  kill(serve.pid(), SIGTERM);
  const int status = serve.wait_exit(std::chrono::seconds(20));
  done = true;
  trickle.join();
  EXPECT_EQ(status, 0) << serve.log();
}

TEST(ServeShutdown, TheDrainEndsAtDrainSeconds) {
  TempDir dir;
  ServeProcess serve(dir, {"server.drain_seconds=1", "server.request_timeout_s=600"});
  // In flight: headers in, body still arriving (the drain lets such requests finish).
  RawConnection uploading(serve.port());
  ASSERT_TRUE(start_upload(uploading));
  kill(serve.pid(), SIGTERM);
  EXPECT_EQ(serve.wait_exit(std::chrono::seconds(30)), 1) << serve.log();
  EXPECT_NE(serve.log().find("drain_seconds"), std::string::npos) << serve.log();
}

TEST(ServeShutdown, ASecondSignalExitsAtOnce) {
  TempDir dir;
  ServeProcess serve(dir, {"server.drain_seconds=600", "server.request_timeout_s=600"});
  RawConnection uploading(serve.port());
  ASSERT_TRUE(start_upload(uploading));
  kill(serve.pid(), SIGTERM);
  ASSERT_NE(serve.wait_for_log("finishing in-flight requests", std::chrono::seconds(20)), "") << serve.log();
  kill(serve.pid(), SIGTERM);
  EXPECT_EQ(serve.wait_exit(std::chrono::seconds(20)), 128 + SIGTERM) << serve.log();
}

}  // namespace
}  // namespace maas
