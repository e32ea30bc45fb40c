#include "api/server.hpp"

#include "api/listener.hpp"
#include "api/pipeline.hpp"
#include "api/session.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <optional>
#include <thread>

namespace snapvirt::api {

// The parts in the order they depend on each other: the pipeline and the sessions' context
// outlive the io_context, whose destruction may end coroutines that still refer to them.
class Server::Impl {
public:
    Impl(ServerOptions opts, const Router& router, Backend& backend, EventHub& hub, Metrics& metrics)
        : opts_(std::move(opts)),
          blocking_(opts_.blocking_threads),
          pipeline_(router, backend, hub, blocking_.get_executor(), stopping_),
          sessions_{opts_, pipeline_, hub, metrics, stopping_},
          ioc_(std::in_place, static_cast<int>(opts_.io_threads)),
          work_(ioc_->get_executor()),
          listener_(std::make_unique<Listener>(*ioc_, opts_, sessions_, metrics)) {}

    ~Impl() {
        stop();
        listener_.reset();
        ioc_.reset();
    }

    void start() {
        for (const auto& ep : opts_.endpoints) listener_->bind(ep);
        for (unsigned i = 0; i < opts_.io_threads; ++i) threads_.emplace_back([this] { ioc_->run(); });
    }

    void stop_accepting() { listener_->stop_accepting(); }

    void stop() {
        if (stopped_.exchange(true)) return;
        stopping_ = true;
        work_.reset();
        ioc_->stop();
        for (auto& t : threads_) t.join();
        threads_.clear();
        blocking_.stop();
        blocking_.join();
        listener_->remove_socket_files();
    }

    std::vector<std::string> endpoints() const { return listener_->endpoints(); }

    void post(std::function<void()> fn) { net::post(*ioc_, std::move(fn)); }

private:
    ServerOptions opts_;
    std::atomic<bool> stopping_{false};
    std::atomic<bool> stopped_{false};
    net::thread_pool blocking_;
    Pipeline pipeline_;
    SessionContext sessions_;
    std::optional<net::io_context> ioc_;
    std::optional<net::executor_work_guard<net::io_context::executor_type>> work_;
    std::unique_ptr<Listener> listener_;
    std::vector<std::thread> threads_;
};

Server::Server(ServerOptions options, const Router& router, Backend& backend, EventHub& hub, Metrics& metrics)
    : impl_(std::make_unique<Impl>(std::move(options), router, backend, hub, metrics)) {}
Server::~Server() = default;
void Server::start() { impl_->start(); }
void Server::stop_accepting() { impl_->stop_accepting(); }
void Server::stop() { impl_->stop(); }
void Server::post(std::function<void()> fn) { impl_->post(std::move(fn)); }
std::vector<std::string> Server::endpoints() const { return impl_->endpoints(); }

}  // namespace snapvirt::api
