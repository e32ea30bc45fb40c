#include "cli/commands.hpp"

#include "config/vocabulary.hpp"

#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <set>
#include <sstream>

namespace snapvirt::cli {

namespace {

using client::escape;

// The result of a mutating request once it has been followed as far as asked.
struct Outcome {
    json job;
    bool waited = false;
    bool timed_out = false;
};

Outcome follow(const Context& c, const json& job, const WaitArgs& w, const std::string& label) {
    if (w.no_wait) return {job, false, false};
    WaitOptions o;
    o.progress = c.progress;
    o.label = label;
    if (w.timeout_s > 0) o.timeout = std::chrono::seconds(w.timeout_s);
    auto r = c.api.wait(job, o);
    return {r.job, true, r.timed_out};
}

// The exit code of a followed job, after its result has been printed.
Exit conclude(const Context& c, const Outcome& o, unsigned timeout_s) {
    const std::string id = str(o.job["id"]);
    if (!o.waited) {
        if (c.progress != ProgressMode::none)
            std::cerr << "Job " << id << " is " << clean(str(o.job["state"])) << "; follow it with: snapvirt jobs wait "
                      << id << std::endl;
        return Exit::ok;
    }
    if (o.timed_out)
        throw Failure(Exit::timed_out,
                      "Stopped waiting after " + std::to_string(timeout_s) + "s; job " + id + " is still " +
                          clean(str(o.job["state"])) + " and goes on in the daemon.",
                      "Follow it with: snapvirt jobs wait " + id);
    const std::string state = str(o.job["state"]);
    if (state == "succeeded") return Exit::ok;
    if (state == "cancelled") throw Failure(Exit::job_failed, "Job " + id + " was cancelled.");
    std::string message = o.job["error"].is_object() ? clean(str(o.job["error"]["message"])) : std::string();
    throw Failure(Exit::job_failed, message.empty() ? "Job " + id + " failed." : message);
}

// Asks on the terminal before a destructive step; refuses without a terminal unless --yes.
void confirm(bool yes, const std::string& action, const std::string& question) {
    if (yes) return;
    if (!::isatty(STDIN_FILENO))
        throw Failure(Exit::not_confirmed,
                      "Refusing to " + action + " without confirmation: standard input is not a terminal.",
                      "Pass --yes to " + action + " without being asked.");
    std::cerr << question << "\nContinue? [y/N] " << std::flush;
    std::string answer;
    if (!std::getline(std::cin, answer)) std::cerr << "\n";
    std::string a;
    for (char ch : answer)
        if (!std::isspace(static_cast<unsigned char>(ch))) a += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (a == "y" || a == "yes") return;
    throw Failure(Exit::not_confirmed, "Not confirmed; nothing was changed.");
}

std::string quoted(const json& v) { return "'" + clean(str(v)) + "'"; }

std::string snapshot_label(const json& s) { return "snapshot " + quoted(s["display_name"]) + " of " + quoted(s["instance"]["name"]); }

// The IDs of every snapshot below `id` in its instance's tree.
std::size_t count_descendants(const json& items, const std::string& id) {
    std::set<std::string> below = {id};
    std::size_t n = 0;
    for (const auto& s : items)  // parents come before children
        if (below.count(str(s["parent_id"])) && below.insert(str(s["id"])).second) ++n;
    return n;
}

void add_filters(Query& q, const ListArgs& a) {
    if (!a.state.empty()) q.emplace_back("state", a.state);
    if (!a.mode.empty()) q.emplace_back("mode", a.mode);
    if (!a.kind.empty()) q.emplace_back("kind", a.kind);
    if (!a.query.empty()) q.emplace_back("q", a.query);
}

// One page (or, with --all, every page) of a paged collection, as {"items", "next_cursor"}.
json fetch_page(const Context& c, const std::string& path, Query q, const ListArgs& a) {
    if (a.all) return {{"items", c.api.all_pages(path, q)}, {"next_cursor", nullptr}};
    if (a.limit) q.emplace_back("limit", std::to_string(a.limit));
    if (!a.cursor.empty()) q.emplace_back("cursor", a.cursor);
    return c.api.get(with_query(path, q));
}

// The names of the schedules that took some of `snapshots` (none asked for when none did).
// `instance` empty: every schedule on the host.
ScheduleNames schedule_names(const Context& c, const json& snapshots, const std::string& instance) {
    ScheduleNames names;
    const bool any = std::any_of(snapshots.begin(), snapshots.end(),
                                 [](const json& s) { return s.contains("schedule_id") && s["schedule_id"].is_string(); });
    if (!any) return names;
    try {
        const json items = instance.empty() ? c.api.all_pages("/v1/schedules", {})
                                            : c.api.get("/v1/instances/" + escape(instance) + "/schedules")["items"];
        for (const auto& s : items) names[str(s["id"])] = str(s["name"]);
    } catch (const Failure&) {
        // The snapshots still show, with the schedule's short ID.
    }
    return names;
}

void more_hint(const Context& c, const json& page, const char* what) {
    if (c.format != Format::json && page["next_cursor"].is_string())
        std::cerr << "More " << what << " follow: pass --all, or --cursor " << str(page["next_cursor"]) << std::endl;
}

}  // namespace

// ---- instances -------------------------------------------------------------------------------

Exit host_show(const Context& c) {
    print_host(c.api.get("/v1/host"), c.format);
    return Exit::ok;
}

Exit instances_list(const Context& c) {
    print_instances(c.api.get("/v1/instances")["items"], c.format);
    return Exit::ok;
}

Exit instances_show(const Context& c, const std::string& instance) {
    const json i = c.api.get("/v1/instances/" + escape(instance));
    json snapshots = json::array();
    if (c.format == Format::table || c.format == Format::wide)
        snapshots = c.api.get("/v1/instances/" + escape(str(i["uuid"])) + "/snapshots")["items"];
    print_instance(i, snapshots, c.format);
    return Exit::ok;
}

// ---- snapshots -------------------------------------------------------------------------------

Exit snapshots_list(const Context& c, const ListArgs& a) {
    Query filters;
    add_filters(filters, a);
    if (a.instance.empty()) {
        const json page = fetch_page(c, "/v1/snapshots", filters, a);
        if (c.format == Format::json) print_json(page);
        else print_snapshots(page["items"], c.format, false, schedule_names(c, page["items"], ""));
        more_hint(c, page, "snapshots");
        return Exit::ok;
    }
    if (a.limit || !a.cursor.empty())
        throw Failure(Exit::usage, "--limit and --cursor page the host-wide list; an instance's list is always complete.");
    json items = c.api.get("/v1/instances/" + escape(a.instance) + "/snapshots")["items"];
    if (!filters.empty()) {
        // The daemon filters (its rules for -q); the instance's order is kept.
        filters.emplace_back("instance", a.instance);
        std::set<std::string> keep;
        for (const auto& s : c.api.all_pages("/v1/snapshots", filters)) keep.insert(str(s["id"]));
        json kept = json::array();
        for (auto& s : items)
            if (keep.count(str(s["id"]))) kept.push_back(std::move(s));
        items = std::move(kept);
    }
    const ScheduleNames names = c.format == Format::json ? ScheduleNames{} : schedule_names(c, items, a.instance);
    print_snapshots(items, c.format, filters.empty(), names);
    return Exit::ok;
}

Exit snapshots_show(const Context& c, const std::string& ref) {
    const json s = c.api.snapshot(ref);
    const ScheduleNames names =
        c.format == Format::json ? ScheduleNames{} : schedule_names(c, json::array({s}), str(s["instance"]["uuid"]));
    print_snapshot(s, c.format, names);
    return Exit::ok;
}

Exit snapshots_create(const Context& c, const CreateArgs& a) {
    const bool stopped = a.mode == "stopped";
    if (!stopped && (a.force_stop || a.keep_stopped || a.shutdown_timeout_s))
        throw Failure(Exit::usage, "--force-stop, --keep-stopped and --shutdown-timeout apply to --mode stopped only.");
    json body = {{"mode", a.mode}};
    if (!a.method.empty()) body["method"] = a.method;
    if (a.name) body["name"] = *a.name;
    if (a.display_name) body["display_name"] = *a.display_name;
    if (a.description) body["description"] = *a.description;
    if (a.force_stop) body["force_stop"] = true;
    if (a.keep_stopped) body["keep_stopped"] = true;
    if (a.shutdown_timeout_s) body["shutdown_timeout_s"] = a.shutdown_timeout_s;
    const std::string key = a.idempotency_key.empty() ? new_idempotency_key() : a.idempotency_key;

    const json accepted = c.api.post("/v1/instances/" + escape(a.instance) + "/snapshots", body, key);
    const json& created = accepted["snapshot"];
    const Outcome o = follow(c, accepted["job"], a.wait, "Creating " + snapshot_label(created));

    json snapshot = created;
    if (o.waited) snapshot = c.api.find("/v1/snapshots/" + escape(str(created["id"]))).value_or(json());
    switch (c.format) {
        case Format::json: print_json({{"job", o.job}, {"snapshot", snapshot}}); break;
        case Format::id:
            if (snapshot.is_object()) std::cout << str(snapshot["id"]) << "\n";
            break;
        default:
            if (snapshot.is_object()) print_snapshot(snapshot, c.format);
            else print_job(o.job, c.format);
    }
    return conclude(c, o, a.wait.timeout_s);
}

Exit snapshots_revert(const Context& c, const RevertArgs& a) {
    const json s = c.api.snapshot(a.snapshot);
    confirm(a.yes, "revert",
            "Revert " + quoted(s["instance"]["name"]) + " to snapshot " + quoted(s["display_name"]) + " (" +
                clean(str(s["mode"])) + ", taken " + local_time(s["created_at"]) + ")?\nThe current state of " +
                quoted(s["instance"]["name"]) + " is lost.");
    json body = json::object();
    if (!a.start.empty()) body["start"] = a.start;
    if (a.force) body["force"] = true;
    const json accepted = c.api.post("/v1/snapshots/" + escape(str(s["id"])) + "/revert", body, new_idempotency_key());
    const Outcome o = follow(c, accepted["job"], a.wait,
                             "Reverting " + quoted(s["instance"]["name"]) + " to " + quoted(s["display_name"]));
    if (c.format == Format::json) print_json({{"job", o.job}});
    else print_job(o.job, c.format);
    return conclude(c, o, a.wait.timeout_s);
}

Exit snapshots_edit(const Context& c, const EditArgs& a) {
    if (!a.display_name && !a.description)
        throw Failure(Exit::usage, "Nothing to change: give --display-name, --description or both.");
    const json s = c.api.snapshot(a.snapshot);
    json body = json::object();
    if (a.display_name) body["display_name"] = *a.display_name;
    if (a.description) body["description"] = *a.description;
    print_snapshot(c.api.patch("/v1/snapshots/" + escape(str(s["id"])), body), c.format);
    return Exit::ok;
}

Exit snapshots_delete(const Context& c, const DeleteArgs& a) {
    const json s = c.api.snapshot(a.snapshot);
    std::string what = snapshot_label(s) + " (taken " + local_time(s["created_at"]) + ")";
    if (a.children) {
        const json tree = c.api.get("/v1/instances/" + escape(str(s["instance"]["uuid"])) + "/snapshots")["items"];
        const std::size_t n = count_descendants(tree, str(s["id"]));
        if (n > 0) what += " and the " + std::to_string(n) + " snapshot" + (n == 1 ? "" : "s") + " below it";
    }
    confirm(a.yes, "delete", "Delete " + what + "? This cannot be undone.");
    const json accepted = c.api.del("/v1/snapshots/" + escape(str(s["id"])) + (a.children ? "?children=true" : ""));
    const Outcome o = follow(c, accepted["job"], a.wait, "Deleting " + snapshot_label(s));
    if (c.format == Format::json) print_json({{"job", o.job}});
    else print_job(o.job, c.format);
    return conclude(c, o, a.wait.timeout_s);
}

// ---- schedules -------------------------------------------------------------------------------

std::string default_schedule_name(const std::string& cron) {
    std::vector<std::string> f;
    std::istringstream in(cron);
    for (std::string w; in >> w;) {
        std::transform(w.begin(), w.end(), w.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
        f.push_back(w);
    }
    const auto number = [](const std::string& w) {
        return !w.empty() && w.size() <= 2 && std::all_of(w.begin(), w.end(), [](unsigned char ch) { return std::isdigit(ch); });
    };
    const auto word = [](const std::string& w) {
        return !w.empty() && w.size() <= 9 && std::all_of(w.begin(), w.end(), [](unsigned char ch) { return std::isalnum(ch); });
    };
    const auto two = [](const std::string& w) { return w.size() == 1 ? "0" + w : w; };
    if (f.size() == 1 && f[0].size() > 1 && f[0][0] == '@' && word(f[0].substr(1))) {
        const std::string w = f[0].substr(1);
        return w == "midnight" ? "daily" : w == "annually" ? "yearly" : w;
    }
    if (f.size() == 6) {  // a leading seconds field: named as the minutes' schedule only when fixed
        if (!number(f[0])) return "schedule";
        f.erase(f.begin());
    }
    if (f.size() != 5 || f[2] != "*" || f[3] != "*") return "schedule";
    if (number(f[0]) && f[1] == "*" && f[4] == "*") return "hourly-" + two(f[0]);
    if (!number(f[0]) || !number(f[1])) return "schedule";
    if (f[4] == "*") return "daily-" + two(f[1]) + two(f[0]);
    if (word(f[4])) return "weekly-" + f[4] + "-" + two(f[1]) + two(f[0]);
    return "schedule";
}

namespace {

std::string schedule_label(const json& s) { return "schedule " + quoted(s["name"]) + " of " + quoted(s["instance"]["name"]); }

// The request body of a create or an edit: the options given, nulls for the --no-... ones.
json schedule_body(const ScheduleArgs& a) {
    json body = json::object();
    if (a.name) body["name"] = *a.name;
    if (a.cron) body["cron"] = *a.cron;
    if (a.timezone) body["timezone"] = *a.timezone;
    if (a.mode) body["mode"] = *a.mode;
    if (a.shutdown_timeout_s) body["shutdown_timeout_s"] = *a.shutdown_timeout_s;
    if (a.force_stop) body["force_stop"] = *a.force_stop;
    if (a.keep_stopped) body["keep_stopped"] = *a.keep_stopped;
    if (a.display_name_template) body["display_name_template"] = *a.display_name_template;
    if (a.clear_template) body["display_name_template"] = nullptr;
    if (a.keep_last) body["keep_last"] = *a.keep_last;
    if (a.clear_keep_last) body["keep_last"] = nullptr;
    if (a.max_age) body["max_age"] = *a.max_age;
    if (a.clear_max_age) body["max_age"] = nullptr;
    if (a.jitter_s) body["jitter_s"] = *a.jitter_s;
    if (a.enabled) body["enabled"] = *a.enabled;
    return body;
}

// The snapshots a schedule took, from its instance's list.
std::size_t snapshots_taken_by(const Context& c, const json& schedule) {
    const json items = c.api.get("/v1/instances/" + escape(str(schedule["instance"]["uuid"])) + "/snapshots")["items"];
    return static_cast<std::size_t>(std::count_if(items.begin(), items.end(), [&](const json& s) {
        return s.contains("schedule_id") && str(s["schedule_id"]) == str(schedule["id"]);
    }));
}

}  // namespace

Exit schedules_list(const Context& c, const ListArgs& a) {
    if (a.instance.empty()) {
        const json page = fetch_page(c, "/v1/schedules", {}, a);
        if (c.format == Format::json) print_json(page);
        else print_schedules(page["items"], c.format);
        more_hint(c, page, "schedules");
        return Exit::ok;
    }
    if (a.limit || !a.cursor.empty())
        throw Failure(Exit::usage, "--limit and --cursor page the host-wide list; an instance's list is always complete.");
    print_schedules(c.api.get("/v1/instances/" + escape(a.instance) + "/schedules")["items"], c.format);
    return Exit::ok;
}

Exit schedules_show(const Context& c, const std::string& ref) {
    print_schedule(c.api.schedule(ref), c.format);
    return Exit::ok;
}

Exit schedules_create(const Context& c, const ScheduleArgs& a) {
    const bool stopped = a.mode && *a.mode == to_string(SnapshotMode::stopped);
    if (!stopped && (a.force_stop || a.keep_stopped || a.shutdown_timeout_s))
        throw Failure(Exit::usage, "--force-stop, --keep-stopped and --shutdown-timeout apply to --mode stopped only.");
    ScheduleArgs args = a;
    if (!args.name) args.name = default_schedule_name(a.cron.value_or(""));
    const json s = c.api.post("/v1/instances/" + escape(a.instance) + "/schedules", schedule_body(args), new_idempotency_key());
    print_schedule(s, c.format);
    if (c.progress != ProgressMode::none && c.format != Format::json && c.format != Format::id)
        std::cerr << "Created " << schedule_label(s) << "." << std::endl;
    return Exit::ok;
}

Exit schedules_edit(const Context& c, const ScheduleArgs& a) {
    const json body = schedule_body(a);
    if (body.empty())
        throw Failure(Exit::usage, "Nothing to change: give at least one option, e.g. --cron, --keep-last or --disable.");
    const json s = c.api.schedule(a.ref);
    print_schedule(c.api.patch("/v1/schedules/" + escape(str(s["id"])), body), c.format);
    return Exit::ok;
}

Exit schedules_delete(const Context& c, const ScheduleDeleteArgs& a) {
    const json s = c.api.schedule(a.ref);
    const std::size_t n = snapshots_taken_by(c, s);
    const std::string count = std::to_string(n) + " snapshot" + (n == 1 ? "" : "s");
    std::string question = "Delete " + schedule_label(s) + " (" + clean(str(s["cron"])) + ")?";
    if (a.snapshots) question += "\nIts " + count + " are deleted too. This cannot be undone.";
    else if (n > 0) question += "\nIts " + count + " stay, as ordinary snapshots.";
    confirm(a.yes, "delete the schedule", question);
    c.api.del("/v1/schedules/" + escape(str(s["id"])) + (a.snapshots ? "?snapshots=true" : ""));
    switch (c.format) {
        case Format::json: print_json(s); break;
        case Format::id: std::cout << str(s["id"]) << "\n"; break;
        default:
            std::cout << "Deleted " << schedule_label(s) << "." << "\n";
            if (a.snapshots && n > 0)
                std::cout << "Its " << count << " are being deleted; follow with: snapvirt jobs list --instance "
                          << clean(str(s["instance"]["name"])) << " --kind " << to_string(JobKind::delete_) << "\n";
    }
    return Exit::ok;
}

// ---- jobs ------------------------------------------------------------------------------------

Exit jobs_list(const Context& c, const ListArgs& a) {
    Query q;
    if (!a.instance.empty()) q.emplace_back("instance", a.instance);
    add_filters(q, a);
    const json page = fetch_page(c, "/v1/jobs", q, a);
    if (c.format == Format::json) print_json(page);
    else print_jobs(page["items"], c.format);
    more_hint(c, page, "jobs");
    return Exit::ok;
}

Exit jobs_show(const Context& c, const std::string& ref) {
    print_job(c.api.job(ref), c.format);
    return Exit::ok;
}

Exit jobs_wait(const Context& c, const std::string& ref, unsigned timeout_s) {
    const json job = c.api.job(ref);
    const Outcome o = follow(c, job, {false, timeout_s},
                             "Job " + short_id(job["id"]) + " (" + clean(str(job["kind"])) + " on " +
                                 quoted(job["instance"]["name"]) + ")");
    print_job(o.job, c.format);
    return conclude(c, o, timeout_s);
}

Exit jobs_cancel(const Context& c, const std::string& ref) {
    const json job = c.api.job(ref);
    print_job(c.api.post("/v1/jobs/" + escape(str(job["id"])) + "/cancel", json::object(), new_idempotency_key()), c.format);
    return Exit::ok;
}

}  // namespace snapvirt::cli
