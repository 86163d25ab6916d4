// The in-process server and the raw connection of http_test_util.h.
#include "http_test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <cctype>

namespace maas::testing {

using Clock = std::chrono::steady_clock;

ServerUnderTest::ServerUnderTest(ServeOptions options) {
  options.port = 0;
  repository_ = std::make_unique<ModelRepository>(options.models_dir, options.batching);
  repository_->load_all();
  server_ = std::make_unique<HttpServer>(options, *repository_);
  port_ = server_->bind();  // listening from here: connections wait in the backlog until accepted
  listener_ = std::thread([this] { server_->listen(); });
  server_->set_ready(true);
}

ServerUnderTest::~ServerUnderTest() {
  server_->stop();
  join();
}

void ServerUnderTest::join() {
  if (listener_.joinable()) listener_.join();
}

RawConnection::RawConnection(int port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  connected_ = fd_ >= 0 && ::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
  const int yes = 1;
  if (connected_) ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
}

RawConnection::~RawConnection() {
  if (fd_ >= 0) ::close(fd_);
}

void RawConnection::shutdown_write() { ::shutdown(fd_, SHUT_WR); }

bool RawConnection::send(const std::string& bytes) {
  for (size_t sent = 0; sent < bytes.size();) {
    const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

RawConnection::Response RawConnection::read(std::chrono::milliseconds wait) {
  const auto deadline = Clock::now() + wait;
  Response r;
  size_t head_end = std::string::npos;
  size_t length = 0;
  while (true) {
    if (head_end == std::string::npos) {
      head_end = buffer_.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        r.head = buffer_.substr(0, head_end + 4);
        std::string lower = r.head;
        for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        const auto at = lower.find("\r\ncontent-length:");  // a field of its own, not a suffix of another
        length = at == std::string::npos ? 0 : std::stoul(r.head.substr(at + 17));
      }
    }
    if (head_end != std::string::npos && buffer_.size() >= head_end + 4 + length) {
      r.body = buffer_.substr(head_end + 4, length);
      r.status = std::stoi(r.head.substr(9, 3));
      buffer_.erase(0, head_end + 4 + length);
      return r;
    }
    if (!fill(deadline)) return r;
  }
}

bool RawConnection::closed_by_server(std::chrono::milliseconds wait) {
  const auto deadline = Clock::now() + wait;
  while (fill(deadline)) {
  }
  return eof_;
}

bool RawConnection::fill(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  if (left <= 0 || eof_) return false;
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(left)) <= 0) return false;
  char chunk[65536];
  const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
  if (n <= 0) {
    eof_ = true;
    return false;
  }
  buffer_.append(chunk, static_cast<size_t>(n));
  return true;
}

std::string gzip(const std::string& data) {
  z_stream z{};
  deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, data.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

}  // namespace maas::testing
