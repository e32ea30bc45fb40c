#pragma once
// The daemon's messages to systemd (sd_notify): READY, STATUS, WATCHDOG, STOPPING, all sent
// from one thread of their own. sd_notify blocks when the receiver's queue is full; sent from
// here, that can never stall the HTTP loop or a job.
//
// The watchdog ping proves the HTTP loop is alive: each period the notifier posts a heartbeat
// into the loop and sends WATCHDOG=1 only when the previous heartbeat ran.
//
// Thread-safety: every method may be called from any thread.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace snapvirt::daemon {

class Notifier {
public:
    // `post` runs a function on the HTTP loop (set it once the loop exists).
    Notifier();
    ~Notifier();
    Notifier(const Notifier&) = delete;
    Notifier& operator=(const Notifier&) = delete;

    void set_loop(std::function<void(std::function<void()>)> post);
    void send(std::string message);        // e.g. "READY=1", queued in order
    void status(const std::string& line);  // STATUS=line, unless it is the current one
    // Stops the thread; waits at most `patience` for queued messages to leave.
    void stop(std::chrono::milliseconds patience);

private:
    void run();

    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::string> queue_;
    std::string status_;
    bool stop_ = false;
    bool idle_ = true;
    std::function<void(std::function<void()>)> post_;
    std::chrono::microseconds watchdog_{0};
    std::atomic<bool> heartbeat_{true};
    std::thread thread_;
};

}  // namespace snapvirt::daemon
