#include "api/connection_budget.hpp"

namespace snapvirt::api {

ConnectionSlot::ConnectionSlot(std::shared_ptr<ConnectionBudget> budget, std::string address)
    : budget_(std::move(budget)), address_(std::move(address)) {}

ConnectionSlot::~ConnectionSlot() { budget_->release(*this); }

void ConnectionSlot::prove() { budget_->prove(*this); }

void ConnectionSlot::on_evict(std::function<void()> evictor) { budget_->set_evictor(*this, std::move(evictor)); }

std::shared_ptr<ConnectionSlot> ConnectionBudget::admit(const std::string& address) {
    auto slot = std::make_shared<ConnectionSlot>(shared_from_this(), address);
    std::function<void()> evictor;
    bool admitted = false;
    {
        std::lock_guard lock(mu_);
        auto& mine = per_client_[address];
        const bool over_cap = limits_.max_per_client != 0 && mine >= limits_.max_per_client;
        if (!over_cap && open_ >= limits_.max_connections) evictor = evict_one_locked();
        admitted = !over_cap && open_ < limits_.max_connections;
        if (admitted) {
            ++open_;
            ++mine;
            slot->position_ = unproven_.insert(unproven_.end(), slot.get());
        } else {
            if (mine == 0) per_client_.erase(address);
            slot->evicted_ = true;  // never counted: its destructor gives nothing back
            slot->unproven_ = false;
        }
    }
    if (evictor) evictor();
    if (!admitted) {
        metrics_.connection_refused();
        return nullptr;  // the slot goes away here, outside the lock
    }
    metrics_.connection_opened();
    return slot;
}

std::function<void()> ConnectionBudget::evict_one_locked() {
    if (!limits_.evict || unproven_.empty()) return {};
    ConnectionSlot* oldest = unproven_.front();
    if (std::chrono::steady_clock::now() - oldest->opened_ < limits_.evict_after) return {};
    unproven_.pop_front();
    oldest->unproven_ = false;
    oldest->evicted_ = true;
    --open_;
    if (--per_client_[oldest->address_] == 0) per_client_.erase(oldest->address_);
    metrics_.connection_closed();
    // Without an evictor (a TLS handshake not started yet) the place is freed all the same;
    // the connection's own deadline closes it.
    return std::move(oldest->evictor_);
}

void ConnectionBudget::release(ConnectionSlot& slot) {
    std::lock_guard lock(mu_);
    if (slot.evicted_) return;
    if (slot.unproven_) unproven_.erase(slot.position_);
    --open_;
    if (--per_client_[slot.address_] == 0) per_client_.erase(slot.address_);
    metrics_.connection_closed();
}

void ConnectionBudget::prove(ConnectionSlot& slot) {
    std::lock_guard lock(mu_);
    if (!slot.unproven_) return;
    unproven_.erase(slot.position_);
    slot.unproven_ = false;
}

void ConnectionBudget::set_evictor(ConnectionSlot& slot, std::function<void()> evictor) {
    std::lock_guard lock(mu_);
    slot.evictor_ = std::move(evictor);
}

std::size_t ConnectionBudget::open() const {
    std::lock_guard lock(mu_);
    return open_;
}

}  // namespace snapvirt::api
