// The catalog's paged tables: snapshots and jobs (schedules: catalog_schedules.cpp).

#include "daemon/catalog.hpp"

#include "config/text.hpp"
#include "daemon/catalog_access.hpp"

#include <nlohmann/json.hpp>

#include <charconv>
#include <map>

namespace snapvirt::daemon {

// ---- shared with catalog_schedules.cpp (declared in catalog_access.hpp) ----------------------

const std::string snapshot_columns =
    "s.id, s.instance_uuid, COALESCE(i.name, ''), s.name, s.display_name, s.description, s.mode, s.state, "
    "s.parent_id, s.is_current, s.created_at, s.size_bytes, s.guest_paused_ms, s.origin, s.error_code, "
    "s.error_message, s.seq, s.schedule_id, s.method, s.files";
const std::string snapshot_from = " FROM snapshots s LEFT JOIN instances i ON i.uuid = s.instance_uuid ";

namespace {

// A snapshot's files as a JSON array of paths (null when it has none).
std::optional<std::string> files_text(const std::vector<std::string>& files) {
    if (files.empty()) return std::nullopt;
    return nlohmann::json(files).dump();
}

std::vector<std::string> files_from_text(const std::string& text) {
    const auto j = nlohmann::json::parse(text, nullptr, false);
    std::vector<std::string> out;
    if (j.is_array())
        for (const auto& f : j)
            if (f.is_string()) out.push_back(f.get<std::string>());
    return out;
}

}  // namespace

Snapshot read_snapshot(const sql::Query& q) {
    Snapshot s;
    s.id = q.text(0);
    s.instance.uuid = q.text(1);
    s.instance.name = q.text(2);
    s.name = q.text(3);
    s.display_name = q.text(4);
    s.description = q.text(5);
    s.mode = word(q, 6, SnapshotMode::other);
    s.state = word(q, 7, SnapshotState::error);
    s.parent_id = q.opt_text(8);
    s.is_current = q.i64(9) != 0;
    s.created_at = q.i64(10);
    if (auto v = q.opt_i64(11)) s.size_bytes = static_cast<std::uint64_t>(*v);
    if (auto v = q.opt_i64(12)) s.guest_paused_ms = static_cast<std::uint64_t>(*v);
    s.origin = q.text(13);
    if (auto code = q.opt_text(14)) s.error = ErrorInfo{*code, q.text(15)};
    s.schedule_id = q.opt_text(17);  // after seq (16), which read_page reads by position
    s.method = word(q, 18, SnapshotMethod::internal);
    if (auto files = q.opt_text(19)) s.files = files_from_text(*files);
    return s;
}

std::int64_t parse_cursor(const std::optional<std::string>& cursor) {
    if (!cursor) return INT64_MAX;
    std::int64_t v = 0;
    const char* b = cursor->data();
    const char* e = b + cursor->size();
    auto [p, ec] = std::from_chars(b, e, v);
    if (cursor->empty() || ec != std::errc() || p != e || v <= 0)
        throw CatalogError(CatalogError::Kind::bad_cursor, "The cursor is not one this server handed out.");
    return v;
}

namespace {

const std::string job_columns =
    "j.id, j.kind, j.instance_uuid, COALESCE(i.name, j.instance_name), j.snapshot_id, j.state, j.phase, j.percent, "
    "j.created_at, j.started_at, j.finished_at, j.error_code, j.error_message, j.recovered, j.params, j.intent, j.seq";
const std::string job_from = " FROM jobs j LEFT JOIN instances i ON i.uuid = j.instance_uuid ";

JobRecord read_job(const sql::Query& q) {
    JobRecord r;
    Job& j = r.job;
    j.id = q.text(0);
    j.kind = word(q, 1, JobKind::create);
    j.instance.uuid = q.text(2);
    j.instance.name = q.text(3);
    j.snapshot_id = q.opt_text(4);
    j.state = word(q, 5, JobState::failed);
    j.progress.phase = q.text(6);
    if (auto p = q.opt_i64(7)) j.progress.percent = static_cast<int>(*p);
    j.created_at = q.i64(8);
    j.started_at = q.opt_i64(9);
    j.finished_at = q.opt_i64(10);
    if (auto code = q.opt_text(11)) j.error = ErrorInfo{*code, q.text(12)};
    j.recovered = q.i64(13) != 0;
    r.params = q.text(14);
    r.intent = q.text(15);
    return r;
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

// ---- snapshots ------------------------------------------------------------------------------

namespace {
void bind_snapshot(sql::Query& q, const Snapshot& s) {
    q.bind(1, s.id)
        .bind(2, s.instance.uuid)
        .bind(3, s.name)
        .bind(4, s.display_name)
        .bind(5, s.description)
        .bind(6, to_string(s.mode))
        .bind(7, to_string(s.state))
        .bind(8, s.parent_id)
        .bind(9, s.is_current)
        .bind(10, s.created_at)
        .bind(11, s.size_bytes)
        .bind(12, s.guest_paused_ms)
        .bind(13, s.origin)
        .bind(17, to_string(s.method))
        .bind(18, files_text(s.files));
    if (s.error)
        q.bind(14, s.error->code).bind(15, s.error->message);
    else
        q.bind_null(14).bind_null(15);
}
}  // namespace

void Catalog::insert_snapshot(const Snapshot& s) {
    write([&](sql::Database& db) {
        auto q = db.query(
            "INSERT INTO snapshots (id, instance_uuid, name, display_name, description, mode, state, parent_id, "
            "is_current, created_at, size_bytes, guest_paused_ms, origin, error_code, error_message, schedule_id, "
            "method, files) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)");
        bind_snapshot(q, s);
        q.bind(16, s.schedule_id);
        q.exec();
    });
}

// schedule_id is written once, at insert, and cleared only by delete_schedule: a job or the
// reconciler writing back a row it read before a schedule was deleted must not link it again.
void Catalog::update_snapshot(const Snapshot& s) {
    write([&](sql::Database& db) {
        auto q = db.query(
            "UPDATE snapshots SET instance_uuid = ?2, name = ?3, display_name = ?4, description = ?5, mode = ?6, "
            "state = ?7, parent_id = ?8, is_current = ?9, created_at = ?10, size_bytes = ?11, guest_paused_ms = ?12, "
            "origin = ?13, error_code = ?14, error_message = ?15, method = ?17, files = ?18 WHERE id = ?1");
        bind_snapshot(q, s);
        q.exec();
    });
}

void Catalog::delete_snapshot(const std::string& id) {
    write([&](sql::Database& db) { db.query("DELETE FROM snapshots WHERE id = ?1").bind(1, id).exec(); });
}

std::optional<Snapshot> Catalog::snapshot(const std::string& id) {
    return read([&](sql::Database& db) -> std::optional<Snapshot> {
        auto q = db.query("SELECT " + snapshot_columns + snapshot_from + "WHERE s.id = ?1");
        q.bind(1, lower_ascii(id));
        if (!q.step()) return std::nullopt;
        return read_snapshot(q);
    });
}

std::vector<Snapshot> Catalog::instance_snapshots(const std::string& instance_uuid) {
    std::vector<Snapshot> rows = read([&](sql::Database& db) {
        std::vector<Snapshot> out;
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
    std::vector<Snapshot> ordered;
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

std::vector<Snapshot> Catalog::subtree(const Snapshot& root) {
    std::vector<Snapshot> out{root};
    const auto all = instance_snapshots(root.instance.uuid);
    for (std::size_t i = 0; i < out.size(); ++i)
        for (const auto& s : all)
            if (s.parent_id && *s.parent_id == out[i].id) out.push_back(s);
    return out;
}

Page<Snapshot> Catalog::query_snapshots(const SnapshotQuery& query,
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
        if (query.state) q.bind(3, to_string(*query.state));
        if (query.mode) q.bind(4, to_string(*query.mode));
        if (query.q) q.bind(5, like_pattern(*query.q));
        q.bind(6, static_cast<std::int64_t>(query.limit) + 1);
        return read_page<Snapshot>(q, query.limit, [](const sql::Query& row) { return read_snapshot(row); });
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
        const Job& j = r.job;
        db.query("INSERT INTO jobs (id, kind, instance_uuid, instance_name, snapshot_id, state, phase, percent, "
                 "created_at, started_at, finished_at, error_code, error_message, recovered, params, intent) "
                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)")
            .bind(1, j.id)
            .bind(2, to_string(j.kind))
            .bind(3, j.instance.uuid)
            .bind(4, j.instance.name)
            .bind(5, j.snapshot_id)
            .bind(6, to_string(j.state))
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

void Catalog::update_job(const Job& j) {
    write([&](sql::Database& db) {
        db.query("UPDATE jobs SET snapshot_id = ?2, state = ?3, phase = ?4, percent = ?5, started_at = ?6, "
                 "finished_at = ?7, error_code = ?8, error_message = ?9, recovered = ?10 WHERE id = ?1")
            .bind(1, j.id)
            .bind(2, j.snapshot_id)
            .bind(3, to_string(j.state))
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

Page<Job> Catalog::query_jobs(const JobQuery& query, const std::optional<std::string>& instance_uuid) {
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
        if (query.kind) q.bind(3, to_string(*query.kind));
        if (query.state) q.bind(4, to_string(*query.state));
        q.bind(5, static_cast<std::int64_t>(query.limit) + 1);
        return read_page<Job>(q, query.limit, [](const sql::Query& row) { return read_job(row).job; });
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

std::int64_t Catalog::forget_jobs_before(TimeMs t) {
    return write([&](sql::Database& db) {
        db.query("DELETE FROM jobs WHERE state IN ('succeeded', 'failed', 'cancelled') AND finished_at < ?1")
            .bind(1, t)
            .exec();
        return db.changes();
    });
}

}  // namespace snapvirt::daemon
