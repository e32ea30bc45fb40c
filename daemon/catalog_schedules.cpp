// The catalog's schedules and their runs (docs/api.md, "Schedules"). A run is one row per
// (schedule, slot): the primary key is what makes a slot run at most once.

#include "daemon/catalog.hpp"

#include "config/text.hpp"
#include "daemon/catalog_access.hpp"

namespace snapvirt::daemon {

namespace {

// Columns 0–17 are the schedule, 18 its seq (for read_page), 19–24 its newest run (NULL when it
// never ran).
const std::string schedule_columns =
    "sc.id, sc.instance_uuid, COALESCE(i.name, ''), sc.name, sc.cron, sc.timezone, sc.mode, "
    "sc.shutdown_timeout_s, sc.force_stop, sc.keep_stopped, sc.display_name_template, sc.keep_last, sc.max_age, "
    "sc.jitter_s, sc.enabled, sc.next_run_at, sc.created_at, sc.updated_at, sc.seq, "
    "r.slot, r.at, r.job_id, r.outcome, r.error_code, r.error_message";
const std::string schedule_from =
    " FROM schedules sc LEFT JOIN instances i ON i.uuid = sc.instance_uuid "
    "LEFT JOIN schedule_runs r ON r.schedule_id = sc.id "
    "AND r.slot = (SELECT MAX(slot) FROM schedule_runs WHERE schedule_id = sc.id) ";
constexpr int schedule_seq_col = 18;

// A run's columns from `first` on: slot, at, job_id, outcome, error_code, error_message.
ScheduleRun read_run(const sql::Query& q, int first) {
    ScheduleRun r;
    r.slot = q.i64(first);
    r.at = q.i64(first + 1);
    r.job_id = q.opt_text(first + 2);
    r.outcome = word(q, first + 3, ScheduleOutcome::failed);
    if (auto code = q.opt_text(first + 4)) r.error = ErrorInfo{*code, q.text(first + 5)};
    return r;
}

Schedule read_schedule(const sql::Query& q) {
    Schedule s;
    s.id = q.text(0);
    s.instance.uuid = q.text(1);
    s.instance.name = q.text(2);
    s.name = q.text(3);
    s.cron = q.text(4);
    s.timezone = q.text(5);
    s.mode = word(q, 6, SnapshotMode::memory);
    if (auto v = q.opt_i64(7)) s.stopped.shutdown_timeout_s = static_cast<unsigned>(*v);
    s.stopped.force_stop = q.i64(8) != 0;
    s.stopped.keep_stopped = q.i64(9) != 0;
    s.display_name_template = q.opt_text(10);
    if (auto v = q.opt_i64(11)) s.keep_last = static_cast<unsigned>(*v);
    s.max_age = q.opt_text(12);
    s.jitter_s = static_cast<unsigned>(q.i64(13));
    s.enabled = q.i64(14) != 0;
    s.next_run_at = q.opt_i64(15);
    s.created_at = q.i64(16);
    s.updated_at = q.i64(17);
    if (!q.is_null(19)) s.last_run = read_run(q, 19);
    return s;
}

// ?1 id, ?2 instance_uuid, ?3 name … ?18 updated_at, in the column order of the table.
void bind_schedule(sql::Query& q, const Schedule& s) {
    q.bind(1, s.id)
        .bind(2, s.instance.uuid)
        .bind(3, s.name)
        .bind(4, s.cron)
        .bind(5, s.timezone)
        .bind(6, to_string(s.mode))
        .bind(7, s.stopped.shutdown_timeout_s)
        .bind(8, s.stopped.force_stop)
        .bind(9, s.stopped.keep_stopped)
        .bind(10, s.display_name_template)
        .bind(11, s.keep_last)
        .bind(12, s.max_age)
        .bind(13, s.jitter_s)
        .bind(14, s.enabled)
        .bind(15, s.next_run_at)
        .bind(16, s.created_at)
        .bind(17, s.updated_at);
}

// ?1 schedule_id, ?2 slot, ?3 job_id, ?4 outcome, ?5 error_code, ?6 error_message, ?7 at.
void bind_run(sql::Query& q, const std::string& schedule_id, const ScheduleRun& run) {
    q.bind(1, schedule_id)
        .bind(2, run.slot)
        .bind(3, run.job_id)
        .bind(4, to_string(run.outcome))
        .bind(7, run.at);
    if (run.error)
        q.bind(5, run.error->code).bind(6, run.error->message);
    else
        q.bind_null(5).bind_null(6);
}

std::vector<Schedule> read_all(sql::Query& q) {
    std::vector<Schedule> out;
    while (q.step()) out.push_back(read_schedule(q));
    return out;
}

}  // namespace

// ---- schedules ------------------------------------------------------------------------------

void Catalog::insert_schedule(const Schedule& s) {
    write([&](sql::Database& db) {
        auto q = db.query(
            "INSERT INTO schedules (id, instance_uuid, name, cron, timezone, mode, shutdown_timeout_s, force_stop, "
            "keep_stopped, display_name_template, keep_last, max_age, jitter_s, enabled, next_run_at, created_at, "
            "updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)");
        bind_schedule(q, s);
        q.exec();
    });
}

// The instance and created_at are the schedule's for good; the rest is what an edit may change.
void Catalog::update_schedule(const Schedule& s) {
    write([&](sql::Database& db) {
        auto q = db.query(
            "UPDATE schedules SET name = ?3, cron = ?4, timezone = ?5, mode = ?6, shutdown_timeout_s = ?7, "
            "force_stop = ?8, keep_stopped = ?9, display_name_template = ?10, keep_last = ?11, max_age = ?12, "
            "jitter_s = ?13, enabled = ?14, next_run_at = ?15, updated_at = ?17 WHERE id = ?1");
        // The same numbering as the insert: ?2 and ?16 (instance, created_at) are bound but unused.
        bind_schedule(q, s);
        q.exec();
    });
}

void Catalog::delete_schedule(const std::string& id, bool keep_snapshot_links) {
    write_transaction([&] {
        write([&](sql::Database& db) {
            db.query("DELETE FROM schedule_runs WHERE schedule_id = ?1").bind(1, id).exec();
            db.query("DELETE FROM schedules WHERE id = ?1").bind(1, id).exec();
            if (!keep_snapshot_links)
                db.query("UPDATE snapshots SET schedule_id = NULL WHERE schedule_id = ?1").bind(1, id).exec();
        });
    });
}

std::optional<Schedule> Catalog::schedule(const std::string& id) {
    return read([&](sql::Database& db) -> std::optional<Schedule> {
        auto q = db.query("SELECT " + schedule_columns + schedule_from + "WHERE sc.id = ?1");
        q.bind(1, lower_ascii(id));
        if (!q.step()) return std::nullopt;
        return read_schedule(q);
    });
}

std::vector<Schedule> Catalog::instance_schedules(const std::string& instance_uuid) {
    return read([&](sql::Database& db) {
        auto q = db.query("SELECT " + schedule_columns + schedule_from + "WHERE sc.instance_uuid = ?1 ORDER BY sc.name");
        q.bind(1, instance_uuid);
        return read_all(q);
    });
}

std::vector<Schedule> Catalog::all_schedules() {
    return read([&](sql::Database& db) {
        auto q = db.query("SELECT " + schedule_columns + schedule_from + "ORDER BY sc.seq");
        return read_all(q);
    });
}

Page<Schedule> Catalog::query_schedules(const ScheduleQuery& query, const std::optional<std::string>& instance_uuid) {
    const std::int64_t before = parse_cursor(query.cursor);
    std::string sql = "SELECT " + schedule_columns + schedule_from + "WHERE sc.seq < ?1";
    if (instance_uuid) sql += " AND sc.instance_uuid = ?2";
    sql += " ORDER BY sc.seq DESC LIMIT ?3";
    return read([&](sql::Database& db) {
        auto q = db.query(sql);
        q.bind(1, before);
        if (instance_uuid) q.bind(2, *instance_uuid);
        q.bind(3, static_cast<std::int64_t>(query.limit) + 1);
        return read_page<Schedule>(
            q, query.limit, [](const sql::Query& row) { return read_schedule(row); }, schedule_seq_col);
    });
}

std::uint64_t Catalog::count_schedules(const std::string& instance_uuid) {
    return read([&](sql::Database& db) {
        auto q = db.query("SELECT COUNT(*) FROM schedules WHERE instance_uuid = ?1");
        q.bind(1, instance_uuid);
        q.step();
        return static_cast<std::uint64_t>(q.i64(0));
    });
}

std::vector<Snapshot> Catalog::schedule_snapshots(const std::string& schedule_id) {
    return read([&](sql::Database& db) {
        std::vector<Snapshot> out;
        auto q = db.query("SELECT " + snapshot_columns + snapshot_from +
                          "WHERE s.schedule_id = ?1 ORDER BY s.created_at, s.seq");
        q.bind(1, schedule_id);
        while (q.step()) out.push_back(read_snapshot(q));
        return out;
    });
}

std::vector<Snapshot> Catalog::orphaned_schedule_snapshots() {
    return read([&](sql::Database& db) {
        std::vector<Snapshot> out;
        auto q = db.query("SELECT " + snapshot_columns + snapshot_from +
                          "WHERE s.schedule_id IS NOT NULL "
                          "AND NOT EXISTS (SELECT 1 FROM schedules sc WHERE sc.id = s.schedule_id) "
                          "ORDER BY s.created_at, s.seq");
        while (q.step()) out.push_back(read_snapshot(q));
        return out;
    });
}

// ---- runs -----------------------------------------------------------------------------------

void Catalog::insert_schedule_run(const std::string& schedule_id, const ScheduleRun& run) {
    write([&](sql::Database& db) {
        auto q = db.query(
            "INSERT INTO schedule_runs (schedule_id, slot, job_id, outcome, error_code, error_message, at) "
            "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
        bind_run(q, schedule_id, run);
        q.exec();
    });
}

void Catalog::update_schedule_run(const std::string& schedule_id, const ScheduleRun& run) {
    write([&](sql::Database& db) {
        auto q = db.query(
            "UPDATE schedule_runs SET job_id = ?3, outcome = ?4, error_code = ?5, error_message = ?6, at = ?7 "
            "WHERE schedule_id = ?1 AND slot = ?2");
        bind_run(q, schedule_id, run);
        q.exec();
    });
}

std::optional<ScheduleRun> Catalog::schedule_run(const std::string& schedule_id, TimeMs slot) {
    return read([&](sql::Database& db) -> std::optional<ScheduleRun> {
        auto q = db.query(
            "SELECT slot, at, job_id, outcome, error_code, error_message FROM schedule_runs "
            "WHERE schedule_id = ?1 AND slot = ?2");
        q.bind(1, schedule_id).bind(2, slot);
        if (!q.step()) return std::nullopt;
        return read_run(q, 0);
    });
}

std::vector<std::pair<std::string, ScheduleRun>> Catalog::running_schedule_runs() {
    return read([&](sql::Database& db) {
        std::vector<std::pair<std::string, ScheduleRun>> out;
        auto q = db.query(
            "SELECT schedule_id, slot, at, job_id, outcome, error_code, error_message FROM schedule_runs "
            "WHERE outcome = ?1 ORDER BY at, schedule_id, slot");
        q.bind(1, to_string(ScheduleOutcome::running));
        while (q.step()) out.emplace_back(q.text(0), read_run(q, 1));
        return out;
    });
}

}  // namespace snapvirt::daemon
