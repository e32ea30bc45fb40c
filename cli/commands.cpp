#include "cli/commands.hpp"

#include <unistd.h>

#include <iostream>
#include <set>

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
        else print_snapshots(page["items"], c.format, false);
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
    print_snapshots(items, c.format, filters.empty());
    return Exit::ok;
}

Exit snapshots_show(const Context& c, const std::string& ref) {
    print_snapshot(c.api.snapshot(ref), c.format);
    return Exit::ok;
}

Exit snapshots_create(const Context& c, const CreateArgs& a) {
    const bool stopped = a.mode == "stopped";
    if (!stopped && (a.force_stop || a.keep_stopped || a.shutdown_timeout_s))
        throw Failure(Exit::usage, "--force-stop, --keep-stopped and --shutdown-timeout apply to --mode stopped only.");
    json body = {{"mode", a.mode}};
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
