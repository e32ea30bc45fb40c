#include "daemon/notify.hpp"

#include <systemd/sd-daemon.h>

namespace snapvirt::daemon {

Notifier::Notifier() {
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0) watchdog_ = std::chrono::microseconds(usec / 3);
    thread_ = std::thread([this] { run(); });
}

Notifier::~Notifier() { stop(std::chrono::milliseconds(0)); }

void Notifier::set_loop(std::function<void(std::function<void()>)> post) {
    {
        std::lock_guard lock(mu_);
        post_ = std::move(post);
    }
    cv_.notify_all();
}

void Notifier::send(std::string message) {
    {
        std::lock_guard lock(mu_);
        queue_.push_back(std::move(message));
        idle_ = false;
    }
    cv_.notify_all();
}

void Notifier::status(const std::string& line) {
    {
        std::lock_guard lock(mu_);
        if (line == status_) return;
        status_ = line;
        queue_.push_back("STATUS=" + line);  // in order: systemd shows the latest
        idle_ = false;
    }
    cv_.notify_all();
}

void Notifier::stop(std::chrono::milliseconds patience) {
    std::unique_lock lock(mu_);
    if (!thread_.joinable()) return;
    cv_.wait_for(lock, patience, [&] { return idle_; });
    stop_ = true;
    const bool idle = idle_;
    lock.unlock();
    cv_.notify_all();
    // A thread stuck in sd_notify (nobody reads the socket) is left behind: the process exits.
    if (idle)
        thread_.join();
    else
        thread_.detach();
}

void Notifier::run() {
    auto next_ping = std::chrono::steady_clock::now();
    std::unique_lock lock(mu_);
    for (;;) {
        // Pings start once the HTTP loop exists: they vouch for it (before READY systemd's
        // start timeout applies).
        if (watchdog_.count() > 0 && post_) {
            cv_.wait_until(lock, next_ping, [&] { return stop_ || !queue_.empty(); });
        } else {
            cv_.wait(lock, [&] { return stop_ || !queue_.empty() || (watchdog_.count() > 0 && post_); });
        }
        if (stop_) return;
        std::deque<std::string> messages;
        messages.swap(queue_);
        const bool ping_due = watchdog_.count() > 0 && post_ && std::chrono::steady_clock::now() >= next_ping;
        auto post = post_;
        lock.unlock();
        for (const auto& m : messages) sd_notify(0, m.c_str());
        if (ping_due) {
            // Ping only if the loop ran the last heartbeat; then ask it for the next one.
            if (heartbeat_.exchange(false)) sd_notify(0, "WATCHDOG=1");
            post([this] { heartbeat_ = true; });
            next_ping = std::chrono::steady_clock::now() + watchdog_;
        }
        lock.lock();
        idle_ = queue_.empty();
        cv_.notify_all();
    }
}

}  // namespace snapvirt::daemon
