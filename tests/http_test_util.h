// Test helpers for maas-serve's HTTP layer: the real server in-process, raw client connections.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "http_server.h"

namespace maas::testing {

// The real HTTP server on an ephemeral loopback port, serving options.models_dir (loaded before
// it listens), ready. Stops and joins on destruction.
class ServerUnderTest {
 public:
  explicit ServerUnderTest(ServeOptions options);
  ~ServerUnderTest();
  ServerUnderTest(const ServerUnderTest&) = delete;
  ServerUnderTest& operator=(const ServerUnderTest&) = delete;

  int port() const { return port_; }
  HttpServer& server() { return *server_; }
  ModelRepository& repository() { return *repository_; }
  // Waits until listen() has returned (after server().stop()).
  void join();

 private:
  std::unique_ptr<ModelRepository> repository_;
  std::unique_ptr<HttpServer> server_;
  std::thread listener_;
  int port_ = 0;
};

// A raw TCP connection to a loopback port, for requests no HTTP client library would send.
// Closed on destruction.
class RawConnection {
 public:
  explicit RawConnection(int port);
  ~RawConnection();
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;
  bool connected() const { return connected_; }

  // Sends all of `bytes`; false once the server has closed (or reset) the connection.
  bool send(const std::string& bytes);
  // Sends the end of the client's stream (shutdown(SHUT_WR)); answers can still be read.
  void shutdown_write();

  struct Response {
    int status = 0;  // 0: no (complete) response within the wait
    std::string head, body;
  };
  // Reads one response (head and Content-Length body), waiting at most `wait` in all.
  Response read(std::chrono::milliseconds wait = std::chrono::seconds(20));
  // True when the server closes the connection within `wait` (unread bytes are discarded).
  bool closed_by_server(std::chrono::milliseconds wait);

 private:
  bool fill(std::chrono::steady_clock::time_point deadline);
  int fd_;
  bool connected_ = false;
  bool eof_ = false;
  std::string buffer_;
};

// `data` gzip-compressed (for Content-Encoding: gzip bodies).
std::string gzip(const std::string& data);

}  // namespace maas::testing
