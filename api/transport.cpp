#include "api/transport.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/beast/http/error.hpp>

#include <atomic>
#include <cstdio>
#include <random>

namespace snapvirt::api {

std::string log_escape(std::string_view s) {
    static const char* hex = "0123456789abcdef";
    std::string out;
    out.reserve(s.size());
    for (unsigned char c : s) {
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            out.push_back(static_cast<char>(c));
        } else {
            out += "\\x";
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 15]);
        }
    }
    return out;
}

std::string new_request_id() {
    static std::atomic<std::uint64_t> counter{0};
    thread_local std::mt19937_64 rng{std::random_device{}()};
    char buf[24];
    std::snprintf(buf, sizeof buf, "%08x%08llx", static_cast<unsigned>(rng()),
                  static_cast<unsigned long long>(counter.fetch_add(1) & 0xffffffffull));
    return buf;
}

bool quiet_error(const beast::error_code& ec) {
    namespace http = beast::http;
    return ec == http::error::end_of_stream || ec == beast::error::timeout || ec == net::error::operation_aborted ||
           ec == net::error::eof || ec == net::error::connection_reset || ec == net::error::broken_pipe ||
           ec == ssl::error::stream_truncated || ec == http::error::partial_message;
}

awaitable<void> close_stream(TcpStream& s) {
    beast::error_code ec;
    s.socket().shutdown(tcp::socket::shutdown_send, ec);
    co_return;
}

awaitable<void> close_stream(UnixStream& s) {
    beast::error_code ec;
    s.socket().shutdown(unix_proto::socket::shutdown_send, ec);
    co_return;
}

awaitable<void> close_stream(TlsStream& s) {
    beast::error_code ec;
    beast::get_lowest_layer(s).expires_after(std::chrono::seconds(3));
    co_await s.async_shutdown(net::redirect_error(use_awaitable, ec));
    beast::get_lowest_layer(s).close();
}

std::function<void()> wake(const std::shared_ptr<net::steady_timer>& timer, net::any_io_executor ex) {
    std::weak_ptr<net::steady_timer> weak = timer;
    return [weak, ex] {
        net::post(ex, [weak] {
            if (auto t = weak.lock()) t->cancel();
        });
    };
}

}  // namespace snapvirt::api
