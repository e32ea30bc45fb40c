#pragma once
// The catalog's connection handling and row helpers, shared by its source files (catalog.cpp,
// catalog_records.cpp, catalog_schedules.cpp) and included by nothing else.

#include "daemon/catalog.hpp"

#include <cstdint>
#include <optional>
#include <string>

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

// ---- rows shared by the catalog's files (defined in catalog_records.cpp) ------------------

// A vocabulary word stored in a TEXT column; `fallback` for a word this version does not know.
template <class E>
E word(const sql::Query& q, int col, E fallback) {
    return parse<E>(q.text(col)).value_or(fallback);
}

// A snapshot row: "SELECT " + snapshot_columns + snapshot_from + "WHERE ...", read by
// read_snapshot. Column 16 is the row's seq (for read_page).
extern const std::string snapshot_columns;
extern const std::string snapshot_from;
Snapshot read_snapshot(const sql::Query& q);

// A page cursor is the seq below which the page starts; nullopt: from the top. Throws
// CatalogError(Kind::bad_cursor) for anything else.
std::int64_t parse_cursor(const std::optional<std::string>& cursor);

// Reads up to `limit` rows of a query that asked for limit + 1 rows ordered by seq (column
// `seq_col`) descending; the extra row tells that there is a next page, which starts below the
// last seq.
template <class T, class Read>
Page<T> read_page(sql::Query& q, unsigned limit, Read&& read_row, int seq_col = 16) {
    Page<T> page;
    page.items.reserve(limit);
    std::int64_t last_seq = 0;
    while (q.step()) {
        if (page.items.size() == limit) {
            page.next_cursor = std::to_string(last_seq);
            break;
        }
        page.items.push_back(read_row(q));
        last_seq = q.i64(seq_col);
    }
    return page;
}

}  // namespace snapvirt::daemon
