#pragma once
// How many connections may be open at once. A connection holds a ConnectionSlot from accept to
// close; the slot gives its place back when it goes away.
//
// Thread-safety: admit() and a slot's release may run on any thread.

#include "api/metrics.hpp"

#include <atomic>
#include <cstddef>
#include <memory>

namespace snapvirt::api {

class ConnectionBudget;

class ConnectionSlot {
public:
    explicit ConnectionSlot(std::shared_ptr<ConnectionBudget> budget) : budget_(std::move(budget)) {}
    ~ConnectionSlot();
    ConnectionSlot(const ConnectionSlot&) = delete;
    ConnectionSlot& operator=(const ConnectionSlot&) = delete;

private:
    std::shared_ptr<ConnectionBudget> budget_;
};

class ConnectionBudget : public std::enable_shared_from_this<ConnectionBudget> {
public:
    ConnectionBudget(std::size_t max_connections, Metrics& metrics) : max_(max_connections), metrics_(metrics) {}

    // A slot for a new connection, or nullptr when the budget is spent (counted as refused).
    std::shared_ptr<ConnectionSlot> admit();

private:
    friend class ConnectionSlot;
    void release();

    const std::size_t max_;
    Metrics& metrics_;
    std::atomic<std::size_t> open_{0};
};

}  // namespace snapvirt::api
