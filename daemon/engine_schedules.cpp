// The Backend's schedules (docs/api.md, "Schedules"): reads, and the changes that make, edit and
// delete one. api/ checked each field's shape; here the schedule as it will be stored is checked
// (the cron expression, the time zone, the retention, the limits), its next run computed, and
// the scheduler told. Runs are the scheduler's (daemon/schedule/), not this file's.

#include "daemon/engine.hpp"

#include "config/text.hpp"
#include "daemon/schedule/cron.hpp"

#include <spdlog/spdlog.h>

#include <array>
#include <string_view>

namespace snapvirt::daemon {

using api::ApiError;
using api::ErrorCode;

namespace {

[[noreturn]] void invalid(const std::string& field, const std::string& message,
                          nlohmann::json details = nlohmann::json::object()) {
    details["field"] = field;
    throw ApiError(ErrorCode::invalid_request, message, std::move(details));
}

[[noreturn]] void schedule_not_found(const std::string& id) {
    throw ApiError(ErrorCode::schedule_not_found, "There is no schedule " + in_quotes(id) + ".", {{"id", id}});
}

[[noreturn]] void schedule_exists(const std::string& instance_name, const std::string& name) {
    throw ApiError(ErrorCode::schedule_exists,
                   "Instance " + in_quotes(instance_name) + " already has a schedule named " + in_quotes(name) + ".",
                   {{"field", "name"}});
}

// The placeholders a display name template may hold; every '{' must open one of them.
constexpr std::array<std::string_view, 5> placeholders{"{schedule}", "{instance}", "{date}", "{time}", "{datetime}"};

void check_template(const std::string& text) {
    for (std::size_t i = text.find('{'); i != std::string::npos; i = text.find('{', i + 1)) {
        const std::string_view rest = std::string_view(text).substr(i);
        bool known = false;
        for (auto p : placeholders) known = known || rest.substr(0, p.size()) == p;
        if (known) continue;
        const std::size_t close = rest.find('}');
        const std::string found(close == std::string_view::npos ? rest : rest.substr(0, close + 1));
        invalid("display_name_template",
                "The display name template holds " + in_quotes(found) +
                    "; it may hold only {schedule}, {instance}, {date}, {time} and {datetime}.");
    }
}

// The request's fields laid over `s` (all of them for a create, those sent for a PATCH).
void merge(Schedule& s, const api::ScheduleRequest& r) {
    if (r.name) s.name = *r.name;
    if (r.cron) s.cron = *r.cron;
    if (r.timezone) s.timezone = *r.timezone;
    if (r.mode) s.mode = *r.mode;
    if (r.shutdown_timeout_s) s.stopped.shutdown_timeout_s = *r.shutdown_timeout_s;
    if (r.force_stop) s.stopped.force_stop = *r.force_stop;
    if (r.keep_stopped) s.stopped.keep_stopped = *r.keep_stopped;
    if (r.display_name_template) s.display_name_template = *r.display_name_template;
    if (r.keep_last) s.keep_last = *r.keep_last;
    if (r.max_age) s.max_age = *r.max_age;
    if (r.jitter_s) s.jitter_s = *r.jitter_s;
    if (r.enabled) s.enabled = *r.enabled;
    // The stopped options belong to stopped mode: a switch to memory drops them.
    if (s.mode != SnapshotMode::stopped) s.stopped = {};
}

}  // namespace

// ---- reads -------------------------------------------------------------------------------------

std::vector<api::Schedule> Engine::list_instance_schedules(const std::string& name_or_uuid) {
    return catalog_.instance_schedules(resolve_instance_uuid(name_or_uuid, false));
}

api::Page<api::Schedule> Engine::list_schedules(const api::ScheduleQuery& query) {
    std::optional<std::string> uuid;
    if (query.instance) {
        auto i = catalog_.find_instance(*query.instance);
        if (!i) return {};  // a filter that matches nothing
        uuid = i->uuid;
    }
    return translating_errors([&] { return catalog_.query_schedules(query, uuid); });
}

api::Schedule Engine::get_schedule(const std::string& id) {
    auto s = catalog_.schedule(id);
    if (!s) schedule_not_found(id);
    return *s;
}

// ---- checks ------------------------------------------------------------------------------------

void Engine::check_schedule(const Schedule& s, const api::ScheduleRequest& request) {
    try {
        schedule::Cron::parse(s.cron);
    } catch (const schedule::CronError& e) {
        invalid("cron", e.what(), {{"cron_field", e.part()}});
    }
    try {
        schedule::TimeZone::locate(s.timezone);
    } catch (const schedule::TimeZoneError&) {
        invalid("timezone", "The time zone " + in_quotes(s.timezone) +
                                " is not in the system's time zone database; give an IANA name such as "
                                "\"Europe/Berlin\" or \"UTC\".");
    }
    if (s.mode != SnapshotMode::stopped) {
        // Sent with a mode that does not use them (also a PATCH that leaves the schedule in memory mode).
        const std::pair<const char*, bool> sent[] = {{"shutdown_timeout_s", request.shutdown_timeout_s.has_value()},
                                                     {"force_stop", request.force_stop.has_value()},
                                                     {"keep_stopped", request.keep_stopped.has_value()}};
        for (const auto& [field, given] : sent)
            if (given)
                invalid(field, std::string("The field '") + field + "' applies to mode \"" +
                                   to_string(SnapshotMode::stopped) + "\" only.");
    }
    if (s.display_name_template) check_template(*s.display_name_template);
    if (s.max_age && !schedule::parse_max_age(*s.max_age))
        invalid("max_age", "The maximum age " + in_quotes(*s.max_age) +
                               " is not a number and a unit m, h, d or w (\"90m\", \"12h\", \"7d\", \"4w\").");
    if (s.keep_last) {
        const unsigned limit = opts_.max_snapshots_per_instance;
        if (*s.keep_last < 1 || (limit > 0 && *s.keep_last > limit))
            invalid("keep_last", "keep_last must be from 1 to " +
                                     (limit > 0 ? std::to_string(limit) + " (snapshots.max_snapshots_per_instance)"
                                                : std::string("any number")) +
                                     ", not " + std::to_string(*s.keep_last) + ".");
    }
    if (!s.keep_last && !s.max_age)
        invalid("keep_last", "A schedule needs keep_last or max_age or both, so that its snapshots do not pile up.");
    if (s.jitter_s > config::ScheduleConfig::jitter_max_s)
        invalid("jitter_s", "jitter_s must be from 0 to " + std::to_string(config::ScheduleConfig::jitter_max_s) +
                                ", not " + std::to_string(s.jitter_s) + ".");
}

std::optional<TimeMs> Engine::next_run(const Schedule& s, TimeMs now) const {
    if (!s.enabled) return std::nullopt;
    return schedule::Cron::parse(s.cron).next_after(now, schedule::TimeZone::locate(s.timezone));
}

// ---- changes -----------------------------------------------------------------------------------

api::Schedule Engine::create_schedule(const std::string& instance, const api::ScheduleRequest& request) {
    const std::string uuid = translating_errors([&] { return resolve_instance_uuid(instance, true); });
    const auto row = catalog_.instance_row(uuid);
    if (!row || !row->present)
        throw ApiError(ErrorCode::instance_not_found,
                       "Instance " + in_quotes(instance) + " is no longer defined; a schedule needs a defined instance.",
                       {{"instance", instance}});
    Schedule s;
    s.id = new_uuid();
    s.instance = {row->uuid, row->name};
    merge(s, request);
    check_schedule(s, request);
    s.created_at = s.updated_at = now_ms();
    s.next_run_at = next_run(s, s.created_at);

    const unsigned limit = opts_.schedules.max_per_instance;
    try {
        // Counted and written under the catalog's write lock, so two creates cannot both pass the limit.
        catalog_.write_transaction([&] {
            if (limit > 0) {
                const auto count = catalog_.count_schedules(uuid);
                if (count >= limit)
                    invalid("name",
                            "Instance " + in_quotes(row->name) + " has " + std::to_string(count) +
                                " schedules, the most allowed (schedules.max_per_instance = " + std::to_string(limit) +
                                "). Delete one first.",
                            {{"limit", limit}});
            }
            catalog_.insert_schedule(s);
        });
    } catch (const CatalogError& e) {
        if (e.kind() == CatalogError::Kind::conflict) schedule_exists(row->name, s.name);
        throw;
    }
    s = get_schedule(s.id);
    spdlog::info("Schedule {} ({}) of instance {} made: cron {} in {}.", in_quotes(s.name), s.id, in_quotes(row->name),
                 in_quotes(s.cron), s.timezone);
    sink_.schedule_created(s);
    schedules_changed();
    return s;
}

api::Schedule Engine::edit_schedule(const std::string& id, const api::ScheduleRequest& request) {
    Schedule edited;
    bool changed = false;
    try {
        // Read, merged and written under the write lock: an edit never undoes another one (or
        // the scheduler's next_run_at) made in between.
        catalog_.write_transaction([&] {
            const Schedule before = get_schedule(id);
            edited = before;
            merge(edited, request);
            check_schedule(edited, request);
            const bool timing = edited.cron != before.cron || edited.timezone != before.timezone ||
                                edited.enabled != before.enabled;
            const TimeMs now = now_ms();
            if (timing) edited.next_run_at = next_run(edited, now);
            changed = timing || edited.name != before.name || edited.mode != before.mode ||
                      edited.stopped.shutdown_timeout_s != before.stopped.shutdown_timeout_s ||
                      edited.stopped.force_stop != before.stopped.force_stop ||
                      edited.stopped.keep_stopped != before.stopped.keep_stopped ||
                      edited.display_name_template != before.display_name_template ||
                      edited.keep_last != before.keep_last || edited.max_age != before.max_age ||
                      edited.jitter_s != before.jitter_s;
            if (!changed) return;
            edited.updated_at = now;
            catalog_.update_schedule(edited);
        });
    } catch (const CatalogError& e) {
        if (e.kind() == CatalogError::Kind::conflict) schedule_exists(edited.instance.name, edited.name);
        throw;
    }
    if (!changed) return edited;
    edited = get_schedule(id);
    spdlog::info("Schedule {} ({}) of instance {} changed.", in_quotes(edited.name), edited.id,
                 in_quotes(edited.instance.name));
    sink_.schedule_updated(edited);
    schedules_changed();
    return edited;
}

void Engine::delete_schedule(const std::string& id, bool with_snapshots) {
    const Schedule s = get_schedule(id);
    // With its snapshots: they keep their link to the schedule that is gone, and the scheduler's
    // retention deletes them as delete jobs, one after another (orphaned_schedule_snapshots).
    catalog_.delete_schedule(s.id, with_snapshots);
    spdlog::info("Schedule {} ({}) of instance {} deleted{}.", in_quotes(s.name), s.id, in_quotes(s.instance.name),
                 with_snapshots ? " with its snapshots" : "; its snapshots stay as ordinary ones");
    sink_.schedule_deleted(s);
    schedules_changed();
}

}  // namespace snapvirt::daemon
