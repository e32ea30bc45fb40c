#include "api/connection_budget.hpp"

namespace snapvirt::api {

ConnectionSlot::~ConnectionSlot() { budget_->release(); }

std::shared_ptr<ConnectionSlot> ConnectionBudget::admit() {
    if (open_.fetch_add(1) >= max_) {
        open_.fetch_sub(1);
        metrics_.connection_refused();
        return nullptr;
    }
    metrics_.connection_opened();
    return std::make_shared<ConnectionSlot>(shared_from_this());
}

void ConnectionBudget::release() {
    open_.fetch_sub(1);
    metrics_.connection_closed();
}

}  // namespace snapvirt::api
