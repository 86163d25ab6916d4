// maas-serve behind Debian's nginx with the shipped configs/nginx-maas.conf: the real server
// in-process on an ephemeral port, nginx as a child process (single process, no daemon, its
// own prefix in a temp folder) running the shipped server block with only the upstream port,
// the listen address and the log paths substituted. Checks that inference of every kind passes
// through unchanged, that /metrics and model control are refused at the proxy, and that slow
// clients stay at nginx instead of holding maas connections.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

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

std::string nginx_binary() {
  for (const char* path : {"/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"})
    if (::access(path, X_OK) == 0) return path;
  return "";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Replaces every `from` in `text`; returns how many.
int replace_all(std::string& text, const std::string& from, const std::string& to) {
  int count = 0;
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
    ++count;
  }
  return count;
}

// A v2 JSON request of `n` images [n, 3, 32, 32], pixels from `seed`.
json json_request(int64_t n, uint64_t seed) {
  torch::manual_seed(seed);
  const auto pixels = torch::randint(0, 256, {n * 3 * 32 * 32}, torch::kInt32);
  std::vector<int> data(pixels.data_ptr<int>(), pixels.data_ptr<int>() + pixels.numel());
  return {{"inputs", {{{"name", "image"}, {"shape", {n, 3, 32, 32}}, {"datatype", "UINT8"}, {"data", data}}}},
          {"outputs", {{{"name", "probabilities"}}}}};
}

// The probabilities of a JSON answer, one row per image.
std::vector<std::vector<float>> json_probabilities(const std::string& body) {
  const json answer = json::parse(body);
  for (const auto& output : answer.at("outputs"))
    if (output.at("name") == "probabilities") {
      const auto flat = output.at("data").get<std::vector<float>>();
      const size_t rows = output.at("shape").at(0).get<size_t>();
      std::vector<std::vector<float>> result;
      for (size_t i = 0; i < rows; ++i)
        result.emplace_back(flat.begin() + static_cast<std::ptrdiff_t>(i * kClasses.size()),
                            flat.begin() + static_cast<std::ptrdiff_t>((i + 1) * kClasses.size()));
      return result;
    }
  return {};
}

void expect_close(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].size(), b[i].size());
    for (size_t j = 0; j < a[i].size(); ++j) EXPECT_NEAR(a[i][j], b[i][j], 1e-5) << i << "," << j;
  }
}

class ProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    nginx_ = nginx_binary();
    if (nginx_.empty()) {
      const char* require = std::getenv("MAAS_REQUIRE_ALL_TESTS");
      if (require && std::string(require) == "1")
        GTEST_FAIL() << "nginx is not installed but MAAS_REQUIRE_ALL_TESTS=1 (apt-get install nginx; "
                        ".ci/install-deps installs it)";
      GTEST_SKIP() << "nginx not installed (apt-get install nginx)";
    }
    std::filesystem::create_directories(repo_.file("cifar10/1"));
    testing::write_bytes(repo_.file("cifar10/1/model.pt"), testing::random_cnn_artifact(1, kClasses));
    options_.port = 0;
    options_.models_dir = repo_.path();
    options_.batching.max_batch_size = 8;
    options_.batching.max_queue_images = 64;
    options_.admin_token = "secret";  // so maas itself would answer model control (and nginx must refuse it)
    served_ = std::make_unique<testing::ServerUnderTest>(options_);
    server_ = &served_->server();
    maas_port_ = served_->port();
    ASSERT_NO_FATAL_FAILURE(start_nginx());
  }

  void TearDown() override {
    stop_nginx();
    served_.reset();
  }

  // The shipped server block with the upstream, the listen address and the log paths replaced,
  // inside a minimal nginx.conf whose every path is in the temp folder.
  std::string nginx_conf() {
    std::string site = read_file(std::string(MAAS_SOURCE_DIR) + "/configs/nginx-maas.conf");
    EXPECT_FALSE(site.empty()) << "configs/nginx-maas.conf is missing";
    const std::string dir = prefix_.path();
    const std::pair<std::string, std::string> substitutions[] = {
        {"server 127.0.0.1:8000;", "server 127.0.0.1:" + std::to_string(maas_port_) + ";"},
        {"listen 80;", "listen 127.0.0.1:" + std::to_string(nginx_port_) + ";"},
        {"/var/log/nginx/", dir + "/"},
    };
    for (const auto& [from, to] : substitutions)
      EXPECT_GT(replace_all(site, from, to), 0)
          << "configs/nginx-maas.conf no longer contains \"" << from << "\", which this test substitutes";
    return "daemon off;\n"
           "master_process off;\n"  // one process: killed with its id, nothing left behind
           "pid " + dir + "/nginx.pid;\n"
           "error_log " + dir + "/error.log;\n"
           "events { worker_connections 256; }\n"
           "http {\n"
           "  access_log " + dir + "/access.log;\n"
           "  client_body_temp_path " + dir + "/client_body;\n"
           "  proxy_temp_path " + dir + "/proxy;\n"
           "  fastcgi_temp_path " + dir + "/fastcgi;\n"
           "  uwsgi_temp_path " + dir + "/uwsgi;\n"
           "  scgi_temp_path " + dir + "/scgi;\n" +
           site + "\n}\n";
  }

  void start_nginx() {
    std::string errors;
    for (int attempt = 0; attempt < 3; ++attempt) {  // another process may take the free port first
      nginx_port_ = testing::free_loopback_port();
      ASSERT_GT(nginx_port_, 0);
      const std::string conf = nginx_conf();
      ASSERT_FALSE(::testing::Test::HasFailure());
      testing::write_bytes(prefix_.file("nginx.conf"), conf);
      const std::string error_log = prefix_.file("error.log");
      std::vector<std::string> args = {nginx_, "-p", prefix_.path() + "/", "-e", error_log, "-c",
                                       prefix_.file("nginx.conf")};
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      const std::string out = prefix_.file("nginx.out");
      const pid_t parent = ::getpid();
      nginx_pid_ = ::fork();
      ASSERT_GE(nginx_pid_, 0) << std::strerror(errno);
      if (nginx_pid_ == 0) {  // child: only async-signal-safe calls until exec
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // dies with the test process, even if it crashes
        if (::getppid() != parent) ::_exit(127);
        const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
          ::dup2(fd, 1);
          ::dup2(fd, 2);
        }
        ::execv(argv[0], argv.data());
        ::_exit(127);
      }
      // Wait (polling, at most 20 s) until nginx accepts connections or exits.
      const auto deadline = Clock::now() + std::chrono::seconds(20);
      while (Clock::now() < deadline) {
        int status = 0;
        if (::waitpid(nginx_pid_, &status, WNOHANG) == nginx_pid_) {
          nginx_pid_ = -1;
          break;
        }
        if (RawConnection(nginx_port_).connected()) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));  // polling nginx's state
      }
      errors += read_file(out) + read_file(error_log);
      stop_nginx();
    }
    FAIL() << "nginx did not start: " << errors;
  }

  void stop_nginx() {
    if (nginx_pid_ > 0) {
      ::kill(nginx_pid_, SIGKILL);
      ::waitpid(nginx_pid_, nullptr, 0);
    }
    nginx_pid_ = -1;
  }

  httplib::Client client(int port) {
    httplib::Client c("127.0.0.1", port);
    c.set_connection_timeout(5);
    c.set_read_timeout(20);
    return c;
  }
  httplib::Client proxy() { return client(nginx_port_); }
  httplib::Client direct() { return client(maas_port_); }

  TempDir repo_, prefix_;
  ServeOptions options_;
  std::unique_ptr<testing::ServerUnderTest> served_;
  HttpServer* server_ = nullptr;  // served_'s
  std::string nginx_;
  int maas_port_ = 0, nginx_port_ = 0;
  pid_t nginx_pid_ = -1;
};

bool from_nginx(const httplib::Result& r) { return r && r->get_header_value("Server").rfind("nginx", 0) == 0; }

TEST_F(ProxyTest, InferenceOfEveryKindPassesThroughUnchanged) {
  const std::string body = json_request(2, 7).dump();
  const auto expected = direct().Post("/v2/models/cifar10/infer", body, "application/json");
  ASSERT_TRUE(expected && expected->status == 200);

  // v2 JSON
  const auto plain = proxy().Post("/v2/models/cifar10/infer", body, "application/json");
  ASSERT_TRUE(plain) << httplib::to_string(plain.error());
  EXPECT_EQ(plain->status, 200) << plain->body;
  EXPECT_TRUE(from_nginx(plain)) << "answered by something other than nginx";
  expect_close(json_probabilities(plain->body), json_probabilities(expected->body));

  // A gzip-compressed body: Content-Encoding reaches maas, which inflates it.
  const auto compressed = proxy().Post("/v2/models/cifar10/infer", {{"Content-Encoding", "gzip"}}, gzip(body),
                                       "application/json");
  ASSERT_TRUE(compressed);
  EXPECT_EQ(compressed->status, 200) << compressed->body;
  expect_close(json_probabilities(compressed->body), json_probabilities(expected->body));

  // A chunked body: nginx buffers it and sends maas a Content-Length.
  {
    RawConnection s(nginx_port_);
    ASSERT_TRUE(s.connected());
    char size[16];
    std::snprintf(size, sizeof size, "%zx\r\n", body.size());
    s.send("POST /v2/models/cifar10/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           "Transfer-Encoding: chunked\r\n\r\n" + std::string(size) + body + "\r\n0\r\n\r\n");
    const auto r = s.read();
    EXPECT_EQ(r.status, 200) << r.head << r.body;
    expect_close(json_probabilities(r.body), json_probabilities(expected->body));
  }

  // Binary tensor data: Inference-Header-Content-Length both ways.
  torch::manual_seed(7);
  const auto images = torch::randint(0, 256, {2 * 3 * 32 * 32}, torch::kInt32).to(torch::kUInt8);
  const json header = {
      {"inputs", {{{"name", "image"}, {"shape", {2, 3, 32, 32}}, {"datatype", "UINT8"},
                   {"parameters", {{"binary_data_size", images.numel()}}}}}},
      {"outputs", {{{"name", "probabilities"}, {"parameters", {{"binary_data", true}}}}}}};
  const std::string text = header.dump();
  const std::string binary = text + std::string(reinterpret_cast<const char*>(images.data_ptr<uint8_t>()),
                                                static_cast<size_t>(images.numel()));
  const auto r = proxy().Post("/v2/models/cifar10/infer",
                              {{"Inference-Header-Content-Length", std::to_string(text.size())}}, binary,
                              "application/octet-stream");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_TRUE(from_nginx(r));
  ASSERT_TRUE(r->has_header("Inference-Header-Content-Length")) << "the response header was dropped";
  const size_t json_length = std::stoul(r->get_header_value("Inference-Header-Content-Length"));
  ASSERT_LE(json_length, r->body.size());
  const json answer = json::parse(r->body.substr(0, json_length));
  const auto& output = answer.at("outputs").at(0);
  EXPECT_EQ(output.at("name"), "probabilities");
  const size_t bytes = output.at("parameters").at("binary_data_size").get<size_t>();
  ASSERT_EQ(bytes, 2 * kClasses.size() * sizeof(float));
  ASSERT_EQ(r->body.size(), json_length + bytes);
  std::vector<std::vector<float>> rows(2, std::vector<float>(kClasses.size()));
  for (size_t i = 0; i < 2; ++i)
    std::memcpy(rows[i].data(), r->body.data() + json_length + i * kClasses.size() * sizeof(float),
                kClasses.size() * sizeof(float));
  expect_close(rows, json_probabilities(expected->body));  // the same pixels as the JSON request

  // An image upload to /predictions.
  torch::manual_seed(3);
  const std::string png = encode_png(torch::randint(0, 256, {3, 32, 32}, torch::kUInt8));
  const auto upload = proxy().Post("/predictions/cifar10", png, "image/png");
  ASSERT_TRUE(upload);
  EXPECT_EQ(upload->status, 200) << upload->body;
  const auto direct_upload = direct().Post("/predictions/cifar10", png, "image/png");
  ASSERT_TRUE(direct_upload);
  const json top = json::parse(upload->body), direct_top = json::parse(direct_upload->body);
  EXPECT_EQ(top.size(), 5u) << upload->body;
  EXPECT_EQ(top.size(), direct_top.size());
  for (const auto& [label, probability] : direct_top.items()) {
    ASSERT_TRUE(top.contains(label)) << upload->body;
    EXPECT_NEAR(top[label].get<double>(), probability.get<double>(), 1e-5);
  }

  // maas's own errors pass through as they are (JSON, status).
  const auto missing = proxy().Get("/v2/models/nope");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_TRUE(json::parse(missing->body).contains("error")) << missing->body;
}

TEST_F(ProxyTest, MetricsAndModelControlAreRefusedAtTheProxy) {
  // maas itself answers both (the admin token is set) ...
  const httplib::Headers admin = {{"Authorization", "Bearer secret"}};
  const auto metrics = direct().Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  const auto index = direct().Post("/v2/repository/index", admin, std::string(), "application/json");
  ASSERT_TRUE(index);
  EXPECT_EQ(index->status, 200) << index->body;

  // ... nginx does not pass them on, however the path is spelled.
  const std::vector<std::string> refused = {
      "GET /metrics",
      "GET /metrics?name=maas",
      "GET //metrics",
      "GET /%6detrics",
      "POST /v2/repository/index",
      "POST /v2/%72epository/index",
      "POST /v2/models/../repository/index",
      "POST /v2//repository/index",
      "POST /v2/repository/models/cifar10/unload",
      "POST /v2/repository/models/cifar10/load",
  };
  for (const auto& request : refused) {
    RawConnection s(nginx_port_);
    ASSERT_TRUE(s.connected());
    s.send(request + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer secret\r\nContent-Length: 0\r\n\r\n");
    const auto r = s.read();
    EXPECT_EQ(r.status, 403) << request << " -> " << r.head << r.body;
    EXPECT_NE(r.head.find("Server: nginx"), std::string::npos) << request << ": " << r.head;
  }
  // The model was never unloaded.
  const auto ready = direct().Get("/v2/models/cifar10/ready");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);
}

TEST_F(ProxyTest, ABodyOverMaasLimitIsRefusedByNginxBeforeItIsSent) {
  // client_max_body_size is maas's server.max_body_bytes (64 MiB): one byte over is 413 at once,
  // before any of the body is sent.
  RawConnection s(nginx_port_);
  ASSERT_TRUE(s.connected());
  s.send("POST /v2/models/cifar10/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(options_.max_body_bytes + 1) + "\r\n\r\n");
  const auto r = s.read();
  EXPECT_EQ(r.status, 413) << r.head << r.body;
  EXPECT_NE(r.head.find("Server: nginx"), std::string::npos) << r.head;
}

TEST_F(ProxyTest, SlowClientsStayAtNginxAndHoldNoMaasConnection) {
  // Before: no connection to maas (nginx has proxied nothing yet).
  ASSERT_EQ(server_->open_connections(), 0);
  // Clients trickling a request line a byte at a time ...
  std::vector<std::unique_ptr<RawConnection>> slow;
  for (int i = 0; i < 4; ++i) {
    slow.push_back(std::make_unique<RawConnection>(nginx_port_));
    ASSERT_TRUE(slow.back()->connected());
    for (const char c : std::string("POST /v2/m")) ASSERT_TRUE(slow.back()->send(std::string(1, c)));
  }
  // ... and clients uploading a body slowly (complete headers, a few body bytes one at a time).
  for (int i = 0; i < 4; ++i) {
    slow.push_back(std::make_unique<RawConnection>(nginx_port_));
    ASSERT_TRUE(slow.back()->connected());
    ASSERT_TRUE(slow.back()->send("POST /v2/models/cifar10/infer HTTP/1.1\r\nHost: x\r\n"
                                  "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"));
    for (const char c : std::string("{\"inputs\"")) ASSERT_TRUE(slow.back()->send(std::string(1, c)));
  }
  // A complete request after them, through the same (single-process) nginx: by the time it is
  // answered, nginx has read what the slow clients sent, and maas (accepting connections in
  // order) has accepted any connection nginx opened for them.
  const auto r = proxy().Post("/v2/models/cifar10/infer", json_request(1, 1).dump(), "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  // Only the connection that request used (kept alive by nginx); one per slow client forwarded
  // would make it 9, and a slow upload forwarded unbuffered (proxy_request_buffering off) 5.
  EXPECT_LE(server_->open_connections(), 1) << "nginx passed slow clients on to maas";

  // The same trickle sent to maas directly holds a maas connection (so the count above sees them).
  const int64_t before = server_->open_connections();
  RawConnection straight(maas_port_);
  ASSERT_TRUE(straight.connected());
  ASSERT_TRUE(straight.send("POST /v2/m"));
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (server_->open_connections() <= before && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // polling the server's state
  EXPECT_EQ(server_->open_connections(), before + 1);
}

}  // namespace
}  // namespace maas
