#include "daemon/catalog.hpp"

#include <boost/uuid/random_generator.hpp>
#include <boost/uuid/uuid_io.hpp>

#include <algorithm>
#include <chrono>
#include <charconv>
#include <map>
#include <sys/stat.h>

namespace snapvirt::daemon {

namespace {

// Forward migrations: entry i moves the schema from version i to i + 1.
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
};
static_assert(std::size(migrations) == Catalog::schema_version);

const std::string snapshot_columns =
    "s.id, s.instance_uuid, COALESCE(i.name, ''), s.name, s.display_name, s.description, s.mode, s.state, "
    "s.parent_id, s.is_current, s.created_at, s.size_bytes, s.guest_paused_ms, s.origin, s.error_code, "
    "s.error_message, s.seq";
const std::string snapshot_from = " FROM snapshots s LEFT JOIN instances i ON i.uuid = s.instance_uuid ";

api::Snapshot read_snapshot(const sql::Query& q) {
    api::Snapshot s;
    s.id = q.text(0);
    s.instance.uuid = q.text(1);
    s.instance.name = q.text(2);
    s.name = q.text(3);
    s.display_name = q.text(4);
    s.description = q.text(5);
    s.mode = q.text(6);
    s.state = q.text(7);
    s.parent_id = q.opt_text(8);
    s.is_current = q.i64(9) != 0;
    s.created_at = q.i64(10);
    if (auto v = q.opt_i64(11)) s.size_bytes = static_cast<std::uint64_t>(*v);
    if (auto v = q.opt_i64(12)) s.guest_paused_ms = static_cast<std::uint64_t>(*v);
    s.origin = q.text(13);
    if (auto code = q.opt_text(14)) s.error = api::ErrorInfo{*code, q.text(15)};
    return s;
}

const std::string job_columns =
    "j.id, j.kind, j.instance_uuid, COALESCE(i.name, j.instance_name), j.snapshot_id, j.state, j.phase, j.percent, "
    "j.created_at, j.started_at, j.finished_at, j.error_code, j.error_message, j.recovered, j.params, j.intent, j.seq";
const std::string job_from = " FROM jobs j LEFT JOIN instances i ON i.uuid = j.instance_uuid ";

JobRecord read_job(const sql::Query& q) {
    JobRecord r;
    api::Job& j = r.job;
    j.id = q.text(0);
    j.kind = q.text(1);
    j.instance.uuid = q.text(2);
    j.instance.name = q.text(3);
    j.snapshot_id = q.opt_text(4);
    j.state = q.text(5);
    j.progress.phase = q.text(6);
    if (auto p = q.opt_i64(7)) j.progress.percent = static_cast<int>(*p);
    j.created_at = q.i64(8);
    j.started_at = q.opt_i64(9);
    j.finished_at = q.opt_i64(10);
    if (auto code = q.opt_text(11)) j.error = api::ErrorInfo{*code, q.text(12)};
    j.recovered = q.i64(13) != 0;
    r.params = q.text(14);
    r.intent = q.text(15);
    return r;
}

std::int64_t parse_cursor(const std::optional<std::string>& cursor) {
    if (!cursor) return INT64_MAX;
    std::int64_t v = 0;
    const char* b = cursor->data();
    const char* e = b + cursor->size();
    auto [p, ec] = std::from_chars(b, e, v);
    if (cursor->empty() || ec != std::errc() || p != e || v <= 0)
        throw api::ApiError(api::ErrorCode::invalid_request, "The cursor is not one this server handed out.",
                            {{"field", "cursor"}});
    return v;
}

// Reads up to `limit` rows of a query that asked for limit + 1 rows ordered by seq (column 16)
// descending; the extra row tells that there is a next page, which starts below the last seq.
template <class T, class Read>
api::Page<T> read_page(sql::Query& q, unsigned limit, Read&& read_row) {
    api::Page<T> page;
    page.items.reserve(limit);
    std::int64_t last_seq = 0;
    while (q.step()) {
        if (page.items.size() == limit) {
            page.next_cursor = std::to_string(last_seq);
            break;
        }
        page.items.push_back(read_row(q));
        last_seq = q.i64(16);
    }
    return page;
}

std::string like_pattern(const std::string& text) {
    std::string out = "%";
    for (char c : text) {
        if (c == '%' || c == '_' || c == '\\') out += '\\';
        out += c;
    }
    return out + "%";
}

std::string lower_ascii(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

}  // namespace

api::TimeMs now_ms() {
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

api::Instance read_instance(const sql::Query& q) {
    api::Instance i;
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

std::vector<api::Instance> Catalog::list_instances() {
    return read([&](sql::Database& db) {
        std::vector<api::Instance> out;
        // Undefined instances stay listed while they still have snapshots in the catalog.
        auto q = db.query(instance_select +
                          "WHERE i.present = 1 OR EXISTS (SELECT 1 FROM snapshots s WHERE s.instance_uuid = i.uuid) "
                          "ORDER BY i.name, i.uuid");
        while (q.step()) out.push_back(read_instance(q));
        return out;
    });
}

std::optional<api::Instance> Catalog::find_instance(const std::string& name_or_uuid) {
    return read([&](sql::Database& db) -> std::optional<api::Instance> {
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

std::optional<api::Instance> Catalog::instance(const std::string& uuid) {
    return read([&](sql::Database& db) -> std::optional<api::Instance> {
        auto q = db.query(instance_select + "WHERE i.uuid = ?1");
        q.bind(1, uuid);
        if (q.step()) return read_instance(q);
        return std::nullopt;
    });
}

// ---- snapshots ------------------------------------------------------------------------------

namespace {
void bind_snapshot(sql::Query& q, const api::Snapshot& s) {
    q.bind(1, s.id)
        .bind(2, s.instance.uuid)
        .bind(3, s.name)
        .bind(4, s.display_name)
        .bind(5, s.description)
        .bind(6, s.mode)
        .bind(7, s.state)
        .bind(8, s.parent_id)
        .bind(9, s.is_current)
        .bind(10, s.created_at)
        .bind(11, s.size_bytes)
        .bind(12, s.guest_paused_ms)
        .bind(13, s.origin);
    if (s.error)
        q.bind(14, s.error->code).bind(15, s.error->message);
    else
        q.bind_null(14).bind_null(15);
}
}  // namespace

void Catalog::insert_snapshot(const api::Snapshot& s) {
    write([&](sql::Database& db) {
        auto q = db.query(
            "INSERT INTO snapshots (id, instance_uuid, name, display_name, description, mode, state, parent_id, "
            "is_current, created_at, size_bytes, guest_paused_ms, origin, error_code, error_message) "
            "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)");
        bind_snapshot(q, s);
        q.exec();
    });
}

void Catalog::update_snapshot(const api::Snapshot& s) {
    write([&](sql::Database& db) {
        auto q = db.query(
            "UPDATE snapshots SET instance_uuid = ?2, name = ?3, display_name = ?4, description = ?5, mode = ?6, "
            "state = ?7, parent_id = ?8, is_current = ?9, created_at = ?10, size_bytes = ?11, guest_paused_ms = ?12, "
            "origin = ?13, error_code = ?14, error_message = ?15 WHERE id = ?1");
        bind_snapshot(q, s);
        q.exec();
    });
}

void Catalog::delete_snapshot(const std::string& id) {
    write([&](sql::Database& db) { db.query("DELETE FROM snapshots WHERE id = ?1").bind(1, id).exec(); });
}

std::optional<api::Snapshot> Catalog::snapshot(const std::string& id) {
    return read([&](sql::Database& db) -> std::optional<api::Snapshot> {
        auto q = db.query("SELECT " + snapshot_columns + snapshot_from + "WHERE s.id = ?1");
        q.bind(1, lower_ascii(id));
        if (!q.step()) return std::nullopt;
        return read_snapshot(q);
    });
}

std::optional<api::Snapshot> Catalog::snapshot_by_name(const std::string& instance_uuid, const std::string& name) {
    return read([&](sql::Database& db) -> std::optional<api::Snapshot> {
        auto q = db.query("SELECT " + snapshot_columns + snapshot_from + "WHERE s.instance_uuid = ?1 AND s.name = ?2");
        q.bind(1, instance_uuid).bind(2, name);
        if (!q.step()) return std::nullopt;
        return read_snapshot(q);
    });
}

std::vector<api::Snapshot> Catalog::instance_snapshots(const std::string& instance_uuid) {
    std::vector<api::Snapshot> rows = read([&](sql::Database& db) {
        std::vector<api::Snapshot> out;
        auto q = db.query("SELECT " + snapshot_columns + snapshot_from +
                          "WHERE s.instance_uuid = ?1 ORDER BY s.created_at, s.seq");
        q.bind(1, instance_uuid);
        while (q.step()) out.push_back(read_snapshot(q));
        return out;
    });
    // Depth-first from the roots, so that every parent comes before its children.
    std::map<std::string, std::vector<std::size_t>> children;
    std::map<std::string, std::size_t> index;
    for (std::size_t i = 0; i < rows.size(); ++i) index[rows[i].id] = i;
    std::vector<std::size_t> roots;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const auto& p = rows[i].parent_id;
        if (p && index.count(*p) && *p != rows[i].id)
            children[*p].push_back(i);
        else
            roots.push_back(i);
    }
    std::vector<api::Snapshot> ordered;
    ordered.reserve(rows.size());
    std::vector<bool> seen(rows.size(), false);
    std::vector<std::size_t> stack(roots.rbegin(), roots.rend());
    while (!stack.empty()) {
        const std::size_t i = stack.back();
        stack.pop_back();
        if (seen[i]) continue;
        seen[i] = true;
        ordered.push_back(rows[i]);
        const auto& kids = children[rows[i].id];
        for (auto it = kids.rbegin(); it != kids.rend(); ++it) stack.push_back(*it);
    }
    for (std::size_t i = 0; i < rows.size(); ++i)  // a parent cycle, which libvirt never makes
        if (!seen[i]) ordered.push_back(rows[i]);
    return ordered;
}

api::Page<api::Snapshot> Catalog::query_snapshots(const api::SnapshotQuery& query,
                                                  const std::optional<std::string>& instance_uuid) {
    const std::int64_t before = parse_cursor(query.cursor);
    std::string sql = "SELECT " + snapshot_columns + snapshot_from + "WHERE s.seq < ?1";
    if (instance_uuid) sql += " AND s.instance_uuid = ?2";
    if (query.state) sql += " AND s.state = ?3";
    if (query.mode) sql += " AND s.mode = ?4";
    if (query.q) sql += " AND (s.display_name LIKE ?5 ESCAPE '\\' OR s.description LIKE ?5 ESCAPE '\\')";
    sql += " ORDER BY s.seq DESC LIMIT ?6";
    return read([&](sql::Database& db) {
        auto q = db.query(sql);
        q.bind(1, before);
        if (instance_uuid) q.bind(2, *instance_uuid);
        if (query.state) q.bind(3, *query.state);
        if (query.mode) q.bind(4, *query.mode);
        if (query.q) q.bind(5, like_pattern(*query.q));
        q.bind(6, static_cast<std::int64_t>(query.limit) + 1);
        return read_page<api::Snapshot>(q, query.limit, [](const sql::Query& row) { return read_snapshot(row); });
    });
}

std::uint64_t Catalog::count_snapshots(const std::string& instance_uuid) {
    return read([&](sql::Database& db) {
        auto q = db.query("SELECT COUNT(*) FROM snapshots WHERE instance_uuid = ?1");
        q.bind(1, instance_uuid);
        q.step();
        return static_cast<std::uint64_t>(q.i64(0));
    });
}

std::uint64_t Catalog::count_all_snapshots() {
    return read([&](sql::Database& db) { return static_cast<std::uint64_t>(db.scalar("SELECT COUNT(*) FROM snapshots")); });
}

bool Catalog::display_name_taken(const std::string& instance_uuid, const std::string& display_name,
                                 const std::string& except_id) {
    return read([&](sql::Database& db) {
        auto q = db.query("SELECT 1 FROM snapshots WHERE instance_uuid = ?1 AND display_name = ?2 AND id != ?3");
        q.bind(1, instance_uuid).bind(2, display_name).bind(3, except_id);
        return q.step();
    });
}

bool Catalog::name_taken(const std::string& instance_uuid, const std::string& name) {
    return read([&](sql::Database& db) {
        auto q = db.query("SELECT 1 FROM snapshots WHERE instance_uuid = ?1 AND name = ?2");
        q.bind(1, instance_uuid).bind(2, name);
        return q.step();
    });
}

// ---- jobs -----------------------------------------------------------------------------------

void Catalog::insert_job(const JobRecord& r) {
    write([&](sql::Database& db) {
        const api::Job& j = r.job;
        db.query("INSERT INTO jobs (id, kind, instance_uuid, instance_name, snapshot_id, state, phase, percent, "
                 "created_at, started_at, finished_at, error_code, error_message, recovered, params, intent) "
                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)")
            .bind(1, j.id)
            .bind(2, j.kind)
            .bind(3, j.instance.uuid)
            .bind(4, j.instance.name)
            .bind(5, j.snapshot_id)
            .bind(6, j.state)
            .bind(7, j.progress.phase)
            .bind(8, j.progress.percent)
            .bind(9, j.created_at)
            .bind(10, j.started_at)
            .bind(11, j.finished_at)
            .bind(12, j.error ? std::optional<std::string>(j.error->code) : std::nullopt)
            .bind(13, j.error ? std::optional<std::string>(j.error->message) : std::nullopt)
            .bind(14, j.recovered)
            .bind(15, r.params)
            .bind(16, r.intent)
            .exec();
    });
}

void Catalog::update_job(const api::Job& j) {
    write([&](sql::Database& db) {
        db.query("UPDATE jobs SET snapshot_id = ?2, state = ?3, phase = ?4, percent = ?5, started_at = ?6, "
                 "finished_at = ?7, error_code = ?8, error_message = ?9, recovered = ?10 WHERE id = ?1")
            .bind(1, j.id)
            .bind(2, j.snapshot_id)
            .bind(3, j.state)
            .bind(4, j.progress.phase)
            .bind(5, j.progress.percent)
            .bind(6, j.started_at)
            .bind(7, j.finished_at)
            .bind(8, j.error ? std::optional<std::string>(j.error->code) : std::nullopt)
            .bind(9, j.error ? std::optional<std::string>(j.error->message) : std::nullopt)
            .bind(10, j.recovered)
            .exec();
    });
}

void Catalog::set_job_intent(const std::string& job_id, const std::string& intent) {
    write([&](sql::Database& db) {
        db.query("UPDATE jobs SET intent = ?2 WHERE id = ?1").bind(1, job_id).bind(2, intent).exec();
    });
}

std::optional<JobRecord> Catalog::job(const std::string& id) {
    return read([&](sql::Database& db) -> std::optional<JobRecord> {
        auto q = db.query("SELECT " + job_columns + job_from + "WHERE j.id = ?1");
        q.bind(1, lower_ascii(id));
        if (!q.step()) return std::nullopt;
        return read_job(q);
    });
}

api::Page<api::Job> Catalog::query_jobs(const api::JobQuery& query, const std::optional<std::string>& instance_uuid) {
    const std::int64_t before = parse_cursor(query.cursor);
    std::string sql = "SELECT " + job_columns + job_from + "WHERE j.seq < ?1";
    if (instance_uuid) sql += " AND j.instance_uuid = ?2";
    if (query.kind) sql += " AND j.kind = ?3";
    if (query.state) sql += " AND j.state = ?4";
    sql += " ORDER BY j.seq DESC LIMIT ?5";
    return read([&](sql::Database& db) {
        auto q = db.query(sql);
        q.bind(1, before);
        if (instance_uuid) q.bind(2, *instance_uuid);
        if (query.kind) q.bind(3, *query.kind);
        if (query.state) q.bind(4, *query.state);
        q.bind(5, static_cast<std::int64_t>(query.limit) + 1);
        return read_page<api::Job>(q, query.limit, [](const sql::Query& row) { return read_job(row).job; });
    });
}

std::vector<JobRecord> Catalog::unfinished_jobs() {
    return read([&](sql::Database& db) {
        std::vector<JobRecord> out;
        auto q = db.query("SELECT " + job_columns + job_from + "WHERE j.state IN ('queued', 'running') ORDER BY j.seq");
        while (q.step()) out.push_back(read_job(q));
        return out;
    });
}

std::int64_t Catalog::forget_jobs_before(api::TimeMs t) {
    return write([&](sql::Database& db) {
        db.query("DELETE FROM jobs WHERE state IN ('succeeded', 'failed', 'cancelled') AND finished_at < ?1")
            .bind(1, t)
            .exec();
        return db.changes();
    });
}

std::vector<std::pair<std::string, std::uint64_t>> Catalog::job_counts() {
    return read([&](sql::Database& db) {
        std::vector<std::pair<std::string, std::uint64_t>> out;
        auto q = db.query("SELECT kind, state, COUNT(*) FROM jobs GROUP BY kind, state");
        while (q.step()) out.emplace_back(q.text(0) + "/" + q.text(1), static_cast<std::uint64_t>(q.i64(2)));
        return out;
    });
}

// ---- idempotency ----------------------------------------------------------------------------

std::optional<api::StoredResponse> Catalog::idempotent(const std::string& key, api::TimeMs not_before) {
    return read([&](sql::Database& db) -> std::optional<api::StoredResponse> {
        auto q = db.query("SELECT request_hash, status, body, location FROM idempotency WHERE key = ?1 AND created_at >= ?2");
        q.bind(1, key).bind(2, not_before);
        if (!q.step()) return std::nullopt;
        return api::StoredResponse{q.text(0), static_cast<int>(q.i64(1)), q.text(2), q.text(3)};
    });
}

void Catalog::remember_idempotent(const std::string& key, const api::StoredResponse& r, api::TimeMs now) {
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

std::int64_t Catalog::forget_idempotent_before(api::TimeMs t) {
    return write([&](sql::Database& db) {
        db.query("DELETE FROM idempotency WHERE created_at < ?1").bind(1, t).exec();
        return db.changes();
    });
}

// ---- tokens ---------------------------------------------------------------------------------

void Catalog::add_token(const std::string& name, const std::string& scope, const std::string& hash, api::TimeMs now) {
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
        auto q = db.query("SELECT name, scope, created_at, last_used_at FROM tokens ORDER BY name");
        while (q.step()) out.push_back(TokenRow{q.text(0), q.text(1), q.i64(2), q.opt_i64(3)});
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
