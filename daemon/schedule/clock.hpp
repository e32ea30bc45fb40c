#pragma once
// The scheduler's clock: the time in UTC milliseconds, and a wait on a condition variable that
// ends at a given time or at a notification. The system clock serves the daemon; the manual
// clock lets unit tests move time without sleeping (advancing it wakes every waiter).
//
// Thread-safety: both clocks may be used from any thread. wait_until() is called with the
// caller's lock held, like std::condition_variable::wait_until.

#include "config/model.hpp"

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <utility>

namespace snapvirt::daemon::schedule {

class Clock {
public:
    virtual ~Clock() = default;
    virtual TimeMs now() const = 0;
    // Waits until `until` (UTC ms) or until `cv` is notified (or spuriously); the caller checks
    // what it waits for again afterwards.
    virtual void wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, TimeMs until) = 0;
};

class SystemClock final : public Clock {
public:
    TimeMs now() const override {
        return std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
            .count();
    }
    void wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, TimeMs until) override {
        const TimeMs delta = until - now();
        if (delta <= 0) return;
        // A steady deadline: a wall-clock step neither stretches nor cuts the wait much, and the
        // scheduler reads now() again when it wakes.
        cv.wait_for(lock, std::chrono::milliseconds(delta));
    }
};

// Time moves only when a test says so.
class ManualClock final : public Clock {
public:
    explicit ManualClock(TimeMs start) : now_(start) {}

    TimeMs now() const override {
        std::lock_guard lock(mu_);
        return now_;
    }
    void set(TimeMs t) {
        std::set<Waiter> waiters;
        {
            std::lock_guard lock(mu_);
            now_ = t;
            waiters = waiters_;
        }
        // Taking each waiter's own mutex before notifying means a waiter between its check of
        // the time and its sleep cannot miss the wake-up.
        for (const auto& [m, cv] : waiters) {
            std::lock_guard waiter_lock(*m);
            cv->notify_all();
        }
    }
    void advance(std::chrono::milliseconds d) { set(now() + d.count()); }

    void wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, TimeMs until) override {
        const Waiter w{lock.mutex(), &cv};
        {
            std::lock_guard clock_lock(mu_);
            if (now_ >= until) return;
            waiters_.insert(w);
        }
        cv.wait(lock);
        std::lock_guard clock_lock(mu_);
        waiters_.erase(w);
    }

private:
    using Waiter = std::pair<std::mutex*, std::condition_variable*>;
    mutable std::mutex mu_;
    TimeMs now_;
    std::set<Waiter> waiters_;
};

}  // namespace snapvirt::daemon::schedule
