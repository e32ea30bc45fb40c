#include "daemon/catalog.hpp"

#include "config/text.hpp"
#include "daemon/catalog_access.hpp"

#include <boost/uuid/random_generator.hpp>
#include <boost/uuid/uuid_io.hpp>

#include <algorithm>
#include <chrono>
#include <sys/stat.h>

namespace snapvirt::daemon {

namespace {

// Forward migrations: entry i moves the schema from version i to i + 1. tokens.last_used_at
// is never written: dropping it would take a schema version 2, which an older snapvirtd
// refuses to open, so a downgrade would fail for the sake of one unused column.
const char* const migrations[] = {
    R"sql(
CREATE TABLE instances (
  uuid        TEXT PRIMARY KEY,
  name        TEXT NOT NULL,
  state       TEXT NOT NULL,
  memory_mib  INTEGER NOT NULL DEFAULT 0,
  vcpus       INTEGER NOT NULL DEFAULT 0,
  present     INTEGER NOT NULL DEFAULT 1,
  updated_at  INTEGER NOT NULL
);
CREATE INDEX instances_name ON instances(name);

CREATE TABLE snapshots (
  seq             INTEGER PRIMARY KEY AUTOINCREMENT,
  id              TEXT NOT NULL UNIQUE,
  instance_uuid   TEXT NOT NULL,
  name            TEXT NOT NULL,
  display_name    TEXT NOT NULL,
  description     TEXT NOT NULL DEFAULT '',
  mode            TEXT NOT NULL,
  state           TEXT NOT NULL,
  parent_id       TEXT,
  is_current      INTEGER NOT NULL DEFAULT 0,
  created_at      INTEGER NOT NULL,
  size_bytes      INTEGER,
  guest_paused_ms INTEGER,
  origin          TEXT NOT NULL,
  error_code      TEXT,
  error_message   TEXT,
  UNIQUE (instance_uuid, name),
  UNIQUE (instance_uuid, display_name)
);
CREATE INDEX snapshots_instance ON snapshots(instance_uuid, seq);
CREATE INDEX snapshots_state ON snapshots(state, seq);

CREATE TABLE jobs (
  seq            INTEGER PRIMARY KEY AUTOINCREMENT,
  id             TEXT NOT NULL UNIQUE,
  kind           TEXT NOT NULL,
  instance_uuid  TEXT NOT NULL,
  instance_name  TEXT NOT NULL,
  snapshot_id    TEXT,
  state          TEXT NOT NULL,
  phase          TEXT NOT NULL DEFAULT '',
  percent        INTEGER,
  created_at     INTEGER NOT NULL,
  started_at     INTEGER,
  finished_at    INTEGER,
  error_code     TEXT,
  error_message  TEXT,
  recovered      INTEGER NOT NULL DEFAULT 0,
  params         TEXT NOT NULL DEFAULT '{}',
  intent         TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX jobs_instance ON jobs(instance_uuid, seq);
CREATE INDEX jobs_state ON jobs(state, seq);

CREATE TABLE idempotency (
  key           TEXT PRIMARY KEY,
  request_hash  TEXT NOT NULL,
  status        INTEGER NOT NULL,
  body          TEXT NOT NULL,
  location      TEXT NOT NULL DEFAULT '',
  created_at    INTEGER NOT NULL
);

CREATE TABLE tokens (
  name          TEXT PRIMARY KEY,
  scope         TEXT NOT NULL,
  hash          TEXT NOT NULL UNIQUE,
  created_at    INTEGER NOT NULL,
  last_used_at  INTEGER
);
)sql",
    // 1 → 2: schedules, their runs (one row per slot: a slot runs at most once), and the
    // schedule whose run took a snapshot. snapshots.schedule_id has no foreign key: DELETE
    // /v1/schedules/{id}?snapshots=true leaves it naming a schedule that is gone, for retention.
    R"sql(
CREATE TABLE schedules (
  seq                    INTEGER PRIMARY KEY AUTOINCREMENT,
  id                     TEXT NOT NULL UNIQUE,
  instance_uuid          TEXT NOT NULL,
  name                   TEXT NOT NULL,
  cron                   TEXT NOT NULL,
  timezone               TEXT NOT NULL,
  mode                   TEXT NOT NULL,
  shutdown_timeout_s     INTEGER,
  force_stop             INTEGER NOT NULL DEFAULT 0,
  keep_stopped           INTEGER NOT NULL DEFAULT 0,
  display_name_template  TEXT,
  keep_last              INTEGER,
  max_age                TEXT,
  jitter_s               INTEGER NOT NULL DEFAULT 0,
  enabled                INTEGER NOT NULL DEFAULT 1,
  next_run_at            INTEGER,
  created_at             INTEGER NOT NULL,
  updated_at             INTEGER NOT NULL,
  UNIQUE (instance_uuid, name)
);
CREATE INDEX schedules_instance ON schedules(instance_uuid, seq);

CREATE TABLE schedule_runs (
  schedule_id    TEXT NOT NULL REFERENCES schedules(id) ON DELETE CASCADE,
  slot           INTEGER NOT NULL,
  job_id         TEXT,
  outcome        TEXT NOT NULL,
  error_code     TEXT,
  error_message  TEXT,
  at             INTEGER NOT NULL,
  PRIMARY KEY (schedule_id, slot)
) WITHOUT ROWID;
CREATE INDEX schedule_runs_outcome ON schedule_runs(outcome);

ALTER TABLE snapshots ADD COLUMN schedule_id TEXT;
CREATE INDEX snapshots_schedule ON snapshots(schedule_id, created_at, seq);
)sql",
    // 2 -> 3: external snapshots. Every snapshot before them was internal; files lists (as a JSON
    // array) the files snapvirt named for an external one.
    R"sql(
ALTER TABLE snapshots ADD COLUMN method TEXT NOT NULL DEFAULT 'internal';
ALTER TABLE snapshots ADD COLUMN files TEXT;
)sql",
};
static_assert(std::size(migrations) == Catalog::schema_version);

}  // namespace

TimeMs now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string new_uuid() {
    thread_local boost::uuids::random_generator gen;
    return boost::uuids::to_string(gen());
}

Catalog::Catalog(const std::filesystem::path& dir) : path_(dir / "catalog.db") {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) throw sql::Error("Cannot create the state directory '" + dir.string() + "': " + ec.message() + ".", 0);
    ::chmod(dir.c_str(), 0700);
    writer_ = std::make_unique<sql::Database>(path_.string(), false);
    ::chmod(path_.c_str(), 0600);
    writer_->exec("PRAGMA journal_mode=WAL");
    writer_->exec("PRAGMA synchronous=NORMAL");
    writer_->exec("PRAGMA foreign_keys=ON");
    migrate();
}

void Catalog::migrate() {
    const auto version = writer_->scalar("PRAGMA user_version");
    if (version > schema_version)
        throw sql::Error("The catalog '" + path_.string() + "' has schema version " + std::to_string(version) +
                             ", newer than this snapvirtd (" + std::to_string(schema_version) +
                             "); refusing to touch it.",
                         0);
    for (auto v = version; v < schema_version; ++v) {
        sql::Transaction tx(*writer_);
        writer_->exec(migrations[v]);
        writer_->exec("PRAGMA user_version = " + std::to_string(v + 1));
        tx.commit();
    }
}


void Catalog::write_transaction(const std::function<void()>& fn) {
    std::lock_guard lock(write_mu_);
    {
        sql::Transaction tx(*writer_);
        fn();
        tx.commit();
    }
    generation_.fetch_add(1, std::memory_order_acq_rel);
}


// ---- instances ------------------------------------------------------------------------------

void Catalog::upsert_instance(const InstanceRow& row) {
    write([&](sql::Database& db) {
        db.query("INSERT INTO instances (uuid, name, state, memory_mib, vcpus, present, updated_at) "
                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(uuid) DO UPDATE SET name = ?2, state = ?3, "
                 "memory_mib = ?4, vcpus = ?5, present = ?6, updated_at = ?7")
            .bind(1, row.uuid)
            .bind(2, row.name)
            .bind(3, row.state)
            .bind(4, row.memory_mib)
            .bind(5, row.vcpus)
            .bind(6, row.present)
            .bind(7, now_ms())
            .exec();
    });
}

std::vector<std::string> Catalog::mark_absent_except(const std::vector<std::string>& present_uuids) {
    return write([&](sql::Database& db) {
        std::vector<std::string> gone;
        auto q = db.query("SELECT uuid FROM instances WHERE present = 1");
        while (q.step()) {
            std::string uuid = q.text(0);
            if (std::find(present_uuids.begin(), present_uuids.end(), uuid) == present_uuids.end())
                gone.push_back(std::move(uuid));
        }
        for (const auto& uuid : gone)
            db.query("UPDATE instances SET present = 0, state = 'other', updated_at = ?2 WHERE uuid = ?1")
                .bind(1, uuid)
                .bind(2, now_ms())
                .exec();
        return gone;
    });
}

void Catalog::set_instance_present(const std::string& uuid, bool present) {
    write([&](sql::Database& db) {
        db.query("UPDATE instances SET present = ?2, updated_at = ?3 WHERE uuid = ?1")
            .bind(1, uuid)
            .bind(2, present)
            .bind(3, now_ms())
            .exec();
    });
}

std::optional<InstanceRow> Catalog::instance_row(const std::string& uuid) {
    return read([&](sql::Database& db) -> std::optional<InstanceRow> {
        auto q = db.query("SELECT uuid, name, state, memory_mib, vcpus, present FROM instances WHERE uuid = ?1");
        q.bind(1, uuid);
        if (!q.step()) return std::nullopt;
        InstanceRow r;
        r.uuid = q.text(0);
        r.name = q.text(1);
        r.state = q.text(2);
        r.memory_mib = static_cast<std::uint64_t>(q.i64(3));
        r.vcpus = static_cast<unsigned>(q.i64(4));
        r.present = q.i64(5) != 0;
        return r;
    });
}

namespace {
const std::string instance_select =
    "SELECT i.uuid, i.name, i.state, i.memory_mib, i.vcpus, i.present, "
    "(SELECT COUNT(*) FROM snapshots s WHERE s.instance_uuid = i.uuid), "
    "(SELECT s.id FROM snapshots s WHERE s.instance_uuid = i.uuid AND s.is_current = 1 LIMIT 1) "
    "FROM instances i ";

Instance read_instance(const sql::Query& q) {
    Instance i;
    i.uuid = q.text(0);
    i.name = q.text(1);
    i.state = q.text(2);
    i.memory_mib = static_cast<std::uint64_t>(q.i64(3));
    i.vcpus = static_cast<unsigned>(q.i64(4));
    i.present = q.i64(5) != 0;
    i.snapshot_count = static_cast<std::uint64_t>(q.i64(6));
    i.current_snapshot_id = q.opt_text(7);
    return i;
}
}  // namespace

std::vector<Instance> Catalog::list_instances() {
    return read([&](sql::Database& db) {
        std::vector<Instance> out;
        // Undefined instances stay listed while they still have snapshots in the catalog.
        auto q = db.query(instance_select +
                          "WHERE i.present = 1 OR EXISTS (SELECT 1 FROM snapshots s WHERE s.instance_uuid = i.uuid) "
                          "ORDER BY i.name, i.uuid");
        while (q.step()) out.push_back(read_instance(q));
        return out;
    });
}

std::optional<Instance> Catalog::find_instance(const std::string& name_or_uuid) {
    return read([&](sql::Database& db) -> std::optional<Instance> {
        {
            auto q = db.query(instance_select + "WHERE i.uuid = ?1");
            q.bind(1, lower_ascii(name_or_uuid));
            if (q.step()) return read_instance(q);
        }
        auto q = db.query(instance_select + "WHERE i.name = ?1 ORDER BY i.present DESC, i.updated_at DESC LIMIT 1");
        q.bind(1, name_or_uuid);
        if (q.step()) return read_instance(q);
        return std::nullopt;
    });
}

std::optional<Instance> Catalog::instance(const std::string& uuid) {
    return read([&](sql::Database& db) -> std::optional<Instance> {
        auto q = db.query(instance_select + "WHERE i.uuid = ?1");
        q.bind(1, uuid);
        if (q.step()) return read_instance(q);
        return std::nullopt;
    });
}

// ---- idempotency ----------------------------------------------------------------------------

std::optional<StoredResponse> Catalog::idempotent(const std::string& key, TimeMs not_before) {
    return read([&](sql::Database& db) -> std::optional<StoredResponse> {
        auto q = db.query("SELECT request_hash, status, body, location FROM idempotency WHERE key = ?1 AND created_at >= ?2");
        q.bind(1, key).bind(2, not_before);
        if (!q.step()) return std::nullopt;
        return StoredResponse{q.text(0), static_cast<int>(q.i64(1)), q.text(2), q.text(3)};
    });
}

void Catalog::remember_idempotent(const std::string& key, const StoredResponse& r, TimeMs now) {
    write([&](sql::Database& db) {
        db.query("INSERT INTO idempotency (key, request_hash, status, body, location, created_at) "
                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(key) DO UPDATE SET request_hash = ?2, status = ?3, "
                 "body = ?4, location = ?5, created_at = ?6")
            .bind(1, key)
            .bind(2, r.request_hash)
            .bind(3, r.status)
            .bind(4, r.body)
            .bind(5, r.location)
            .bind(6, now)
            .exec();
    });
}

std::int64_t Catalog::forget_idempotent_before(TimeMs t) {
    return write([&](sql::Database& db) {
        db.query("DELETE FROM idempotency WHERE created_at < ?1").bind(1, t).exec();
        return db.changes();
    });
}

// ---- tokens ---------------------------------------------------------------------------------

void Catalog::add_token(const std::string& name, const std::string& scope, const std::string& hash, TimeMs now) {
    write([&](sql::Database& db) {
        db.query("INSERT INTO tokens (name, scope, hash, created_at) VALUES (?1, ?2, ?3, ?4)")
            .bind(1, name)
            .bind(2, scope)
            .bind(3, hash)
            .bind(4, now)
            .exec();
    });
}

bool Catalog::revoke_token(const std::string& name) {
    return write([&](sql::Database& db) {
        db.query("DELETE FROM tokens WHERE name = ?1").bind(1, name).exec();
        return db.changes() > 0;
    });
}

std::vector<TokenRow> Catalog::tokens() {
    return read([&](sql::Database& db) {
        std::vector<TokenRow> out;
        auto q = db.query("SELECT name, scope, created_at FROM tokens ORDER BY name");
        while (q.step()) out.push_back(TokenRow{q.text(0), q.text(1), q.i64(2)});
        return out;
    });
}

std::vector<std::pair<std::string, std::string>> Catalog::token_hashes() {
    return read([&](sql::Database& db) {
        std::vector<std::pair<std::string, std::string>> out;
        auto q = db.query("SELECT hash, scope FROM tokens");
        while (q.step()) out.emplace_back(q.text(0), q.text(1));
        return out;
    });
}

void Catalog::release_memory() {
    {
        std::lock_guard lock(readers_mu_);
        for (const auto& db : idle_readers_) sqlite3_db_release_memory(db->handle());
    }
    std::unique_lock lock(write_mu_, std::try_to_lock);  // never wait for a writer for this
    if (lock.owns_lock()) sqlite3_db_release_memory(writer_->handle());
}

std::int64_t Catalog::data_version() {
    // PRAGMA data_version changes for commits made by other connections, so ask the writer.
    std::lock_guard lock(write_mu_);  // a read on the writer: no generation change
    return writer_->scalar("PRAGMA data_version");
}

}  // namespace snapvirt::daemon
