#pragma once
// The catalog's connection handling, shared by its source files (catalog.cpp,
// catalog_records.cpp) and included by nothing else.

#include "daemon/catalog.hpp"

namespace snapvirt::daemon {

template <class F>
auto Catalog::read(F&& fn) {
    std::unique_ptr<sql::Database> db;
    {
        std::lock_guard lock(readers_mu_);
        if (!idle_readers_.empty()) {
            db = std::move(idle_readers_.back());
            idle_readers_.pop_back();
        }
    }
    if (!db) {
        db = std::make_unique<sql::Database>(path_.string(), true);
        db->exec("PRAGMA cache_size = -512");  // 512 KiB a reader: the hot pages are few, the OS caches the file
    }
    struct Return {
        Catalog* self;
        std::unique_ptr<sql::Database>& db;
        ~Return() {
            std::lock_guard lock(self->readers_mu_);
            if (self->idle_readers_.size() < 8) self->idle_readers_.push_back(std::move(db));
        }
    } give_back{this, db};
    return fn(*db);
}

template <class F>
auto Catalog::write(F&& fn) {
    std::lock_guard lock(write_mu_);
    struct Bump {
        std::atomic<std::uint64_t>& g;
        ~Bump() { g.fetch_add(1, std::memory_order_acq_rel); }
    } bump{generation_};
    return fn(*writer_);
}

}  // namespace snapvirt::daemon
