#pragma once
// A thin RAII layer over SQLite's C API (after SQLiteCpp's Database/Statement/Transaction).
// A Database is used by one thread at a time; Catalog guards each with its own mutex.

#include "daemon/catalog_error.hpp"

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>

namespace snapvirt::daemon::sql {

// SQLite's failure, as the catalog's own error: a constraint is a conflict, anything else a failure.
class Error : public CatalogError {
public:
    Error(const std::string& what, int code)
        : CatalogError((code & 0xff) == SQLITE_CONSTRAINT ? Kind::conflict : Kind::failed, what), code_(code) {}
    int code() const noexcept { return code_; }
    bool constraint() const noexcept { return (code_ & 0xff) == SQLITE_CONSTRAINT; }
    bool full() const noexcept { return (code_ & 0xff) == SQLITE_FULL; }

private:
    int code_;
};

struct CloseDb {
    void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
struct FinalizeStmt {
    void operator()(sqlite3_stmt* s) const noexcept { sqlite3_finalize(s); }
};

// A prepared statement, reset and unbound when a Query over it ends.
class Query {
public:
    Query(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
    ~Query() {
        sqlite3_reset(stmt_);
        sqlite3_clear_bindings(stmt_);
    }
    Query(const Query&) = delete;
    Query& operator=(const Query&) = delete;

    Query& bind(int i, std::string_view v) {
        check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
        return *this;
    }
    Query& bind(int i, const std::string& v) { return bind(i, std::string_view(v)); }
    Query& bind(int i, const char* v) { return bind(i, std::string_view(v)); }
    Query& bind(int i, std::int64_t v) {
        check(sqlite3_bind_int64(stmt_, i, v));
        return *this;
    }
    Query& bind(int i, int v) { return bind(i, static_cast<std::int64_t>(v)); }
    Query& bind(int i, unsigned v) { return bind(i, static_cast<std::int64_t>(v)); }
    Query& bind(int i, std::uint64_t v) { return bind(i, static_cast<std::int64_t>(v)); }
    Query& bind(int i, bool v) { return bind(i, static_cast<std::int64_t>(v ? 1 : 0)); }
    Query& bind_null(int i) {
        check(sqlite3_bind_null(stmt_, i));
        return *this;
    }
    template <class T>
    Query& bind(int i, const std::optional<T>& v) {
        return v ? bind(i, *v) : bind_null(i);
    }

    // Steps once: true while a row is available.
    bool step() {
        const int rc = sqlite3_step(stmt_);
        if (rc == SQLITE_ROW) return true;
        if (rc == SQLITE_DONE) return false;
        throw Error(std::string("SQLite: ") + sqlite3_errmsg(db_), sqlite3_extended_errcode(db_));
    }
    void exec() {
        while (step()) {
        }
    }

    bool is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
    std::int64_t i64(int col) const { return sqlite3_column_int64(stmt_, col); }
    std::string text(int col) const {
        const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
        return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col))) : std::string();
    }
    std::optional<std::string> opt_text(int col) const {
        if (is_null(col)) return std::nullopt;
        return text(col);
    }
    std::optional<std::int64_t> opt_i64(int col) const {
        if (is_null(col)) return std::nullopt;
        return i64(col);
    }

private:
    void check(int rc) {
        if (rc != SQLITE_OK) throw Error(std::string("SQLite: ") + sqlite3_errmsg(db_), rc);
    }
    sqlite3* db_;
    sqlite3_stmt* stmt_;
};

class Database {
public:
    Database(const std::string& path, bool read_only);
    Database(const Database&) = delete;
    Database& operator=(const Database&) = delete;

    void exec(const std::string& sql);
    // A cached prepared statement.
    Query query(const std::string& sql);
    std::int64_t changes() const { return sqlite3_changes64(db_.get()); }
    std::int64_t scalar(const std::string& sql);
    sqlite3* handle() const { return db_.get(); }

private:
    std::unique_ptr<sqlite3, CloseDb> db_;
    std::unordered_map<std::string, std::unique_ptr<sqlite3_stmt, FinalizeStmt>> cache_;
};

// BEGIN IMMEDIATE ... COMMIT, rolled back unless commit() was called.
class Transaction {
public:
    explicit Transaction(Database& db) : db_(db) { db_.exec("BEGIN IMMEDIATE"); }
    ~Transaction() {
        if (!done_) {
            try {
                db_.exec("ROLLBACK");
            } catch (...) {
            }
        }
    }
    void commit() {
        db_.exec("COMMIT");
        done_ = true;
    }

private:
    Database& db_;
    bool done_ = false;
};

}  // namespace snapvirt::daemon::sql
