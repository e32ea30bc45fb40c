#pragma once
// The snapshot catalog: instances, snapshots, jobs, schedules, idempotency keys and API tokens in one
// SQLite database (WAL) in the state directory. Reads are answered from here.
//
// Thread-safety: every method may be called from any thread. Writes go through one
// connection under a mutex; reads use a small pool of read-only connections, so readers
// never wait for a writer (WAL) or for each other. Failures throw CatalogError (sql::Error is one).

#include "config/model.hpp"
#include "daemon/catalog_error.hpp"
#include "daemon/sqlite.hpp"

#include <atomic>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace snapvirt::daemon {

struct InstanceRow {
    std::string uuid;
    std::string name;
    std::string state = "other";
    std::uint64_t memory_mib = 0;
    unsigned vcpus = 0;
    bool present = true;
};

// A job with what the API does not show: its parameters and its write-ahead intent.
struct JobRecord {
    Job job;
    std::string params = "{}";  // the request, JSON
    std::string intent = "{}";  // what the job is about to do to libvirt, JSON
};

struct TokenRow {
    std::string name;
    std::string scope;
    TimeMs created_at = 0;
};

class Catalog {
public:
    static constexpr int schema_version = 3;

    // Opens (creating and migrating as needed) `dir`/catalog.db.
    explicit Catalog(const std::filesystem::path& dir);
    Catalog(const Catalog&) = delete;
    Catalog& operator=(const Catalog&) = delete;

    const std::filesystem::path& path() const { return path_; }

    // ---- instances -------------------------------------------------------------------------
    void upsert_instance(const InstanceRow& row);
    // Marks every instance not in `present_uuids` as no longer defined.
    std::vector<std::string> mark_absent_except(const std::vector<std::string>& present_uuids);
    void set_instance_present(const std::string& uuid, bool present);
    std::optional<InstanceRow> instance_row(const std::string& uuid);
    std::vector<Instance> list_instances();
    // By UUID (any case) or by name (a defined instance before an undefined one).
    std::optional<Instance> find_instance(const std::string& name_or_uuid);
    std::optional<Instance> instance(const std::string& uuid);

    // ---- snapshots -------------------------------------------------------------------------
    // Throws sql::Error (Kind::conflict, constraint()) for a duplicate name or display name.
    void insert_snapshot(const Snapshot& s);
    void update_snapshot(const Snapshot& s);
    void delete_snapshot(const std::string& id);
    std::optional<Snapshot> snapshot(const std::string& id);
    // Parents before children; siblings oldest first.
    std::vector<Snapshot> instance_snapshots(const std::string& instance_uuid);
    // `root` and its descendants in the catalog, parents first.
    std::vector<Snapshot> subtree(const Snapshot& root);
    // Throws CatalogError(Kind::bad_cursor) for a cursor it never handed out.
    Page<Snapshot> query_snapshots(const SnapshotQuery& q, const std::optional<std::string>& instance_uuid);
    std::uint64_t count_snapshots(const std::string& instance_uuid);
    std::uint64_t count_all_snapshots();
    bool display_name_taken(const std::string& instance_uuid, const std::string& display_name,
                            const std::string& except_id = {});
    bool name_taken(const std::string& instance_uuid, const std::string& name);

    // ---- jobs ------------------------------------------------------------------------------
    void insert_job(const JobRecord& j);
    void update_job(const Job& j);
    void set_job_intent(const std::string& job_id, const std::string& intent);
    std::optional<JobRecord> job(const std::string& id);
    Page<Job> query_jobs(const JobQuery& q, const std::optional<std::string>& instance_uuid);
    std::vector<JobRecord> unfinished_jobs();
    std::int64_t forget_jobs_before(TimeMs t);

    // ---- schedules (catalog_schedules.cpp) -------------------------------------------------
    // A schedule's row carries its last run (the run with the newest slot) when read.
    // Throws sql::Error (Kind::conflict) for a name the instance already has.
    void insert_schedule(const Schedule& s);
    void update_schedule(const Schedule& s);  // every writable field and next_run_at, updated_at
    // Deletes the schedule and its runs. Its snapshots get schedule_id null (they become
    // ordinary ones), unless `keep_snapshot_links`: then they keep it, and with no schedule of
    // that id left, retention deletes them (orphaned_schedule_snapshots).
    void delete_schedule(const std::string& id, bool keep_snapshot_links);
    std::optional<Schedule> schedule(const std::string& id);
    std::vector<Schedule> instance_schedules(const std::string& instance_uuid);  // by name
    std::vector<Schedule> all_schedules();                                       // for the scheduler
    // Throws CatalogError(Kind::bad_cursor) for a cursor it never handed out.
    Page<Schedule> query_schedules(const ScheduleQuery& q, const std::optional<std::string>& instance_uuid);
    std::uint64_t count_schedules(const std::string& instance_uuid);
    // The snapshots a schedule's runs took, oldest first.
    std::vector<Snapshot> schedule_snapshots(const std::string& schedule_id);
    // Snapshots whose schedule_id names no schedule any more: left by DELETE
    // /v1/schedules/{id}?snapshots=true for retention to delete one by one. Oldest first.
    std::vector<Snapshot> orphaned_schedule_snapshots();

    // A run is recorded once per (schedule, slot): inserting a slot already recorded throws
    // sql::Error (Kind::conflict). The create job's row and its run's row are written in one
    // transaction, so a slot is never run twice, also across a crash.
    void insert_schedule_run(const std::string& schedule_id, const ScheduleRun& run);
    void update_schedule_run(const std::string& schedule_id, const ScheduleRun& run);  // by slot
    std::optional<ScheduleRun> schedule_run(const std::string& schedule_id, TimeMs slot);
    // Runs whose outcome is still `running`, with their schedule's id.
    std::vector<std::pair<std::string, ScheduleRun>> running_schedule_runs();

    // ---- idempotency -----------------------------------------------------------------------
    std::optional<StoredResponse> idempotent(const std::string& key, TimeMs not_before);
    void remember_idempotent(const std::string& key, const StoredResponse& r, TimeMs now);
    std::int64_t forget_idempotent_before(TimeMs t);

    // ---- tokens (hashes only) --------------------------------------------------------------
    void add_token(const std::string& name, const std::string& scope, const std::string& hash, TimeMs now);
    bool revoke_token(const std::string& name);
    std::vector<TokenRow> tokens();
    // Every (hash, scope) pair; the caller compares in constant time.
    std::vector<std::pair<std::string, std::string>> token_hashes();
    // Changes when another process (the `token` command) changed the database.
    std::int64_t data_version();
    // Gives the page caches of idle connections back (they refill from the OS's file cache on
    // demand); called when the daemon is idle.
    void release_memory();

    // Runs `fn` inside one write transaction.
    void write_transaction(const std::function<void()>& fn);

    // Changes after every write this process commits (never before the commit).
    std::uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

private:
    // Defined in daemon/catalog_access.hpp, which only the catalog's own files include.
    template <class F>
    auto read(F&& fn);
    template <class F>
    auto write(F&& fn);
    void migrate();

    std::filesystem::path path_;
    std::atomic<std::uint64_t> generation_{1};
    std::recursive_mutex write_mu_;
    std::unique_ptr<sql::Database> writer_;
    std::mutex readers_mu_;
    std::vector<std::unique_ptr<sql::Database>> idle_readers_;
};

// Unix time in milliseconds now.
TimeMs now_ms();
std::string new_uuid();

}  // namespace snapvirt::daemon
