#include "daemon/sqlite.hpp"

namespace snapvirt::daemon::sql {

Database::Database(const std::string& path, bool read_only) {
    sqlite3* raw = nullptr;
    const int flags = (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                      SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI;
    const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
    db_.reset(raw);
    if (rc != SQLITE_OK)
        throw Error("Cannot open the catalog '" + path + "': " + (raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)), rc);
    sqlite3_extended_result_codes(raw, 1);
    sqlite3_busy_timeout(raw, 5000);
}

void Database::exec(const std::string& sql) {
    char* err = nullptr;
    const int rc = sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
        std::string msg = err ? err : sqlite3_errmsg(db_.get());
        sqlite3_free(err);
        throw Error("SQLite: " + msg, sqlite3_extended_errcode(db_.get()));
    }
}

Query Database::query(const std::string& sql) {
    auto it = cache_.find(sql);
    if (it == cache_.end()) {
        sqlite3_stmt* stmt = nullptr;
        const int rc = sqlite3_prepare_v3(db_.get(), sql.c_str(), static_cast<int>(sql.size()),
                                          SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
        if (rc != SQLITE_OK) throw Error(std::string("SQLite: ") + sqlite3_errmsg(db_.get()) + " in: " + sql, rc);
        it = cache_.emplace(sql, std::unique_ptr<sqlite3_stmt, FinalizeStmt>(stmt)).first;
    }
    return Query(db_.get(), it->second.get());
}

std::int64_t Database::scalar(const std::string& sql) {
    auto q = query(sql);
    return q.step() ? q.i64(0) : 0;
}

}  // namespace snapvirt::daemon::sql
