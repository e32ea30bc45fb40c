#pragma once
// The `snapvirt` CLI's commands: each takes its parsed arguments, talks to the daemon through a
// Session, prints its result, and returns an exit code or throws a cli::Failure.

#include "cli/errors.hpp"
#include "cli/output.hpp"
#include "cli/session.hpp"

#include <optional>
#include <string>

namespace snapvirt::cli {

struct Context {
    const Session& api;
    Format format = Format::table;
    ProgressMode progress = ProgressMode::none;
};

// What a mutating command does after the daemon accepted its job.
struct WaitArgs {
    bool no_wait = false;
    unsigned timeout_s = 0;  // 0: until the job ends
};

struct ListArgs {
    std::string instance;  // snapshots: optional positional; jobs: --instance
    std::string state, mode, kind, query;
    unsigned limit = 0;    // 0: the API's default page
    std::string cursor;
    bool all = false;
};

struct CreateArgs {
    std::string instance;
    std::string mode;
    std::string method;  // empty: the daemon's default (auto)
    std::optional<std::string> name, display_name, description;
    bool force_stop = false, keep_stopped = false;
    unsigned shutdown_timeout_s = 0;
    std::string idempotency_key;
    WaitArgs wait;
};

struct RevertArgs {
    std::string snapshot;
    std::string start;
    bool force = false, yes = false;
    WaitArgs wait;
};

struct EditArgs {
    std::string snapshot;
    std::optional<std::string> display_name, description;
};

struct DeleteArgs {
    std::string snapshot;
    bool children = false, yes = false;
    WaitArgs wait;
};

// schedules create (instance set) and schedules edit (ref set): only the options given are sent.
struct ScheduleArgs {
    std::string instance, ref;
    std::optional<std::string> name, cron, timezone, mode, display_name_template, max_age;
    std::optional<unsigned> keep_last, jitter_s, shutdown_timeout_s;
    std::optional<bool> enabled, force_stop, keep_stopped;
    bool clear_keep_last = false, clear_max_age = false, clear_template = false;  // edit: --no-...
};

struct ScheduleDeleteArgs {
    std::string ref;
    bool snapshots = false, yes = false;
};

// The name `schedules create` gives a schedule without --name: "daily-0200" for "0 2 * * *",
// "hourly-15" for "15 * * * *", "weekly-sun-0300" for "0 3 * * sun", "daily" for "@daily",
// otherwise "schedule".
std::string default_schedule_name(const std::string& cron);

Exit host_show(const Context& c);

Exit instances_list(const Context& c);
Exit instances_show(const Context& c, const std::string& instance);

Exit snapshots_list(const Context& c, const ListArgs& a);
Exit snapshots_show(const Context& c, const std::string& ref);
Exit snapshots_create(const Context& c, const CreateArgs& a);
Exit snapshots_revert(const Context& c, const RevertArgs& a);
Exit snapshots_edit(const Context& c, const EditArgs& a);
Exit snapshots_delete(const Context& c, const DeleteArgs& a);

Exit schedules_list(const Context& c, const ListArgs& a);
Exit schedules_show(const Context& c, const std::string& ref);
Exit schedules_create(const Context& c, const ScheduleArgs& a);
Exit schedules_edit(const Context& c, const ScheduleArgs& a);
Exit schedules_delete(const Context& c, const ScheduleDeleteArgs& a);

Exit jobs_list(const Context& c, const ListArgs& a);
Exit jobs_show(const Context& c, const std::string& ref);
Exit jobs_wait(const Context& c, const std::string& ref, unsigned timeout_s);
Exit jobs_cancel(const Context& c, const std::string& ref);

}  // namespace snapvirt::cli
