#pragma once
// How many connections may be open at once, in total and per client address. A connection
// holds a ConnectionSlot from accept to close; the slot gives its place back when it goes away.
//
// A connection that has not yet proven anything (no request with a valid token) is
// "unproven". When the budget is spent, a new connection takes the place of the oldest
// unproven one that has been open for at least `evict_after`: idle sockets cannot keep
// clients with a certificate and a token out, yet a short burst is still answered with 503.
//
// Thread-safety: every method may be called from any thread; the evictor a slot is given is
// called without the budget's lock held.

#include "api/metrics.hpp"

#include <chrono>
#include <cstddef>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace snapvirt::api {

class ConnectionBudget;

class ConnectionSlot {
public:
    ConnectionSlot(std::shared_ptr<ConnectionBudget> budget, std::string address);
    ~ConnectionSlot();
    ConnectionSlot(const ConnectionSlot&) = delete;
    ConnectionSlot& operator=(const ConnectionSlot&) = delete;

    // The connection made a request with a valid token: it is never evicted.
    void prove();
    // How to close this connection when it is evicted (it must only schedule the close on the
    // connection's strand); an empty function when the connection is going away anyway.
    void on_evict(std::function<void()> evictor);

private:
    friend class ConnectionBudget;
    std::shared_ptr<ConnectionBudget> budget_;
    const std::string address_;
    const std::chrono::steady_clock::time_point opened_ = std::chrono::steady_clock::now();
    std::function<void()> evictor_;
    bool evicted_ = false;
    bool unproven_ = true;
    std::list<ConnectionSlot*>::iterator position_;  // in the budget's unproven list while unproven_
};

struct BudgetLimits {
    std::size_t max_connections = 1024;
    std::size_t max_per_client = 0;  // 0: no cap per address
    std::chrono::milliseconds evict_after{1000};
    bool evict = true;               // may unproven connections be evicted for new ones?
};

class ConnectionBudget : public std::enable_shared_from_this<ConnectionBudget> {
public:
    ConnectionBudget(BudgetLimits limits, Metrics& metrics) : limits_(limits), metrics_(metrics) {}

    // A slot for a new connection from `address`, or nullptr when it is over its address's cap
    // or the budget is spent and nobody can be evicted (counted as refused).
    std::shared_ptr<ConnectionSlot> admit(const std::string& address);

    std::size_t open() const;

private:
    friend class ConnectionSlot;
    void release(ConnectionSlot& slot);
    void prove(ConnectionSlot& slot);
    void set_evictor(ConnectionSlot& slot, std::function<void()> evictor);
    // Frees the place of the oldest evictable slot; its evictor is returned to be called.
    std::function<void()> evict_one_locked();

    const BudgetLimits limits_;
    Metrics& metrics_;
    mutable std::mutex mu_;
    std::size_t open_ = 0;
    std::map<std::string, std::size_t> per_client_;
    std::list<ConnectionSlot*> unproven_;  // oldest first
};

}  // namespace snapvirt::api
