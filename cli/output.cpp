#include "cli/output.hpp"

#include "cli/errors.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <map>
#include <sstream>

namespace snapvirt::cli {

namespace {

using namespace std::chrono;

std::size_t width(const std::string& s) {
    std::size_t n = 0;
    for (unsigned char c : s)
        if ((c & 0xC0) != 0x80) ++n;
    return n;
}

// At most `max` code points, with "..." when cut.
std::string truncate(const std::string& s, std::size_t max) {
    if (width(s) <= max) return s;
    std::string out;
    std::size_t n = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        if ((c & 0xC0) != 0x80) {
            if (n == max - 3) break;
            ++n;
        }
        out += s[i];
    }
    return out + "...";
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

std::string yes_no(const json& b) { return b.is_boolean() && b.get<bool>() ? "yes" : "no"; }

std::string error_text(const json& e) {
    if (!e.is_object()) return "";
    return clean(str(e["message"])) + " (" + clean(str(e["code"])) + ")";
}

std::string phase_text(const json& job) {
    const json& p = job.value("progress", json::object());
    std::string out = clean(str(p.value("phase", json())));
    if (p.contains("percent") && p["percent"].is_number()) out += " " + std::to_string(p["percent"].get<int>()) + "%";
    return out;
}

std::string job_duration(const json& job) {
    if (str(job["started_at"]).empty()) return "";
    return duration(between(job["started_at"], job["finished_at"]));
}

void print_ids(const json& items, const char* field) {
    for (const auto& it : items) std::cout << clean(str(it[field])) << "\n";
}

// Elapsed time on the progress line: whole seconds, "7s", "4m05s".
std::string elapsed_text(milliseconds ms) {
    const auto s = duration_cast<seconds>(ms).count();
    if (s < 60) return std::to_string(s < 0 ? 0 : s) + "s";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
    return buf;
}

int terminal_columns() {
    winsize ws{};
    if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    return 80;
}

}  // namespace

Format parse_format(const std::string& text) {
    if (text == "table") return Format::table;
    if (text == "wide") return Format::wide;
    if (text == "json") return Format::json;
    if (text == "id") return Format::id;
    throw Failure(Exit::usage, "The output format must be table, wide, json or id, not '" + text + "'.");
}

std::string clean(const std::string& text, bool keep_newlines) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        const unsigned char c = static_cast<unsigned char>(text[i]);
        if (keep_newlines && (c == '\n' || c == '\t')) {
            out += static_cast<char>(c);
        } else if (c < 0x20 || c == 0x7f) {
            out += '?';
        } else if (c == 0xC2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
                   static_cast<unsigned char>(text[i + 1]) <= 0x9f) {
            out += '?';  // a C1 control character (U+0080..U+009F), e.g. CSI
            ++i;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

std::string str(const json& v) { return v.is_string() ? v.get<std::string>() : std::string(); }

std::string short_id(const json& id) { return str(id).substr(0, 8); }

system_clock::time_point parse_time(const std::string& t) {
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
    if (std::sscanf(t.c_str(), "%d-%d-%dT%d:%d:%d", &y, &mo, &d, &h, &mi, &s) != 6) return {};
    std::tm tm{};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    auto tp = system_clock::from_time_t(::timegm(&tm));
    const auto dot = t.find('.');
    if (dot != std::string::npos) {
        std::string frac;
        for (std::size_t i = dot + 1; i < t.size() && std::isdigit(static_cast<unsigned char>(t[i])); ++i) frac += t[i];
        frac = (frac + "000").substr(0, 3);
        tp += milliseconds(std::stoi(frac));
    }
    return tp;
}

std::string age(const json& t) {
    if (!t.is_string()) return "";
    const auto secs = duration_cast<seconds>(system_clock::now() - parse_time(t.get<std::string>())).count();
    if (secs < 0) return "just now";
    if (secs < 60) return std::to_string(secs) + "s ago";
    if (secs < 3600) return std::to_string(secs / 60) + "m ago";
    if (secs < 86400) return std::to_string(secs / 3600) + "h ago";
    return std::to_string(secs / 86400) + "d ago";
}

std::string local_time(const json& t) {
    if (!t.is_string()) return "";
    const std::time_t tt = system_clock::to_time_t(parse_time(t.get<std::string>()));
    std::tm tm{};
    ::localtime_r(&tt, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %Z", &tm);
    return buf;
}

std::string from_now(const json& t) {
    if (!t.is_string()) return "";
    const auto secs = duration_cast<seconds>(parse_time(t.get<std::string>()) - system_clock::now()).count();
    if (secs <= 0) return "due";
    if (secs < 60) return "in " + std::to_string(secs) + "s";
    if (secs < 3600) return "in " + std::to_string(secs / 60) + "m";
    if (secs < 86400) return "in " + std::to_string(secs / 3600) + "h";
    return "in " + std::to_string(secs / 86400) + "d";
}

std::string duration(milliseconds d) {
    const auto ms = d.count() < 0 ? 0 : d.count();
    char buf[32];
    if (ms < 1000) std::snprintf(buf, sizeof buf, "%lldms", static_cast<long long>(ms));
    else if (ms < 60000) std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(ms) / 1000.0);
    else if (ms < 3600000) std::snprintf(buf, sizeof buf, "%lldm%02llds", static_cast<long long>(ms / 60000), static_cast<long long>(ms / 1000 % 60));
    else std::snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(ms / 3600000), static_cast<long long>(ms / 60000 % 60));
    return buf;
}

std::string bytes(const json& n) {
    if (!n.is_number()) return "";
    double v = n.get<double>();
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (v >= 1024 && u < 4) v /= 1024, ++u;
    char buf[32];
    std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
    return buf;
}

milliseconds between(const json& from, const json& to) {
    if (!from.is_string()) return milliseconds(0);
    const auto end = to.is_string() ? parse_time(to.get<std::string>()) : system_clock::now();
    return duration_cast<milliseconds>(end - parse_time(from.get<std::string>()));
}

void Table::print(std::ostream& out) const {
    std::vector<std::size_t> w(headers_.size());
    for (std::size_t i = 0; i < headers_.size(); ++i) w[i] = width(headers_[i]);
    for (const auto& r : rows_)
        for (std::size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], width(r[i]));
    auto line = [&](const std::vector<std::string>& cells) {
        std::string s;
        for (std::size_t i = 0; i < cells.size() && i < w.size(); ++i) {
            s += cells[i];
            if (i + 1 < cells.size()) s += std::string(w[i] - width(cells[i]) + 3, ' ');
        }
        while (!s.empty() && s.back() == ' ') s.pop_back();
        out << s << "\n";
    };
    line(headers_);
    for (const auto& r : rows_) line(r);
}

void print_details(std::ostream& out, const Details& rows) {
    std::size_t w = 0;
    for (const auto& [k, v] : rows) w = std::max(w, width(k));
    for (const auto& [k, v] : rows) {
        const std::string pad(w - width(k) + 3, ' ');
        std::istringstream lines(v);
        std::string l;
        bool first = true;
        while (std::getline(lines, l)) {
            out << (first ? k + ":" + pad : std::string(w + 4, ' ')) << l << "\n";
            first = false;
        }
        if (first) out << k << ":\n";
    }
}

void print_json(const json& doc) {
    std::cout << doc.dump(2, ' ', false, json::error_handler_t::replace) << std::endl;
}

// ---- snapshots -------------------------------------------------------------------------------

namespace {
// The schedule that took a snapshot: its name, or its short ID where the name is not known.
std::string schedule_of(const json& s, const ScheduleNames& names) {
    if (!s.contains("schedule_id") || !s["schedule_id"].is_string()) return "";
    const auto it = names.find(str(s["schedule_id"]));
    return it != names.end() ? clean(it->second) : short_id(s["schedule_id"]);
}
}  // namespace

void print_snapshots(const json& items, Format format, bool tree, const ScheduleNames& schedules) {
    if (format == Format::json) return print_json({{"items", items}});
    if (format == Format::id) return print_ids(items, "id");
    if (items.empty()) {
        std::cerr << "No snapshots found." << std::endl;
        return;
    }
    const bool wide = format == Format::wide;
    bool scheduled = false;
    for (const auto& s : items) scheduled = scheduled || !schedule_of(s, schedules).empty();
    std::map<std::string, int> depth;
    std::vector<std::string> headers = {"ID"};
    if (!tree) headers.push_back("INSTANCE");
    for (const char* h : {"NAME", "MODE", "STATE", "CURRENT", "CREATED"}) headers.push_back(h);
    if (scheduled) headers.push_back("SCHEDULE");
    if (wide)
        for (const char* h : {"LIBVIRT NAME", "METHOD", "PARENT", "SIZE", "PAUSED", "ORIGIN", "DESCRIPTION"})
            headers.push_back(h);
    Table t(headers);
    for (const auto& s : items) {
        std::string name = clean(str(s["display_name"]));
        if (tree) {
            const auto parent = depth.find(str(s["parent_id"]));
            const int d = parent == depth.end() ? 0 : parent->second + 1;
            depth[str(s["id"])] = d;
            if (d > 0) name = std::string(2 * (d - 1), ' ') + "\u2514\u2500 " + name;
        }
        std::string state = clean(str(s["state"]));
        if (wide && s["error"].is_object()) state += " (" + clean(str(s["error"]["code"])) + ")";
        std::vector<std::string> row = {wide ? str(s["id"]) : short_id(s["id"])};
        if (!tree) row.push_back(clean(str(s["instance"]["name"])));
        for (auto v : {name, clean(str(s["mode"])), state, s.value("is_current", false) ? std::string("yes") : std::string(),
                       age(s["created_at"])})
            row.push_back(v);
        if (scheduled) row.push_back(schedule_of(s, schedules));
        if (wide) {
            const json& paused = s["guest_paused_ms"];
            for (auto v : {clean(str(s["name"])), clean(str(s["method"])), short_id(s["parent_id"]), bytes(s["size_bytes"]),
                           paused.is_number() ? duration(milliseconds(paused.get<std::int64_t>())) : std::string(),
                           clean(str(s["origin"])), truncate(clean(first_line(str(s["description"]))), 40)})
                row.push_back(v);
        }
        t.add(row);
    }
    t.print(std::cout);
}

void print_snapshot(const json& s, Format format, const ScheduleNames& schedules) {
    if (format == Format::json) return print_json(s);
    if (format == Format::id) {
        std::cout << str(s["id"]) << "\n";
        return;
    }
    Details d = {
        {"ID", str(s["id"])},
        {"Instance", clean(str(s["instance"]["name"])) + " (" + str(s["instance"]["uuid"]) + ")"},
        {"Name", clean(str(s["name"]))},
        {"Display name", clean(str(s["display_name"]))},
        {"Description", clean(str(s["description"]), true)},
        {"Mode", clean(str(s["mode"]))},
        {"Method", clean(str(s["method"]))},
        {"State", clean(str(s["state"]))},
    };
    if (s["error"].is_object()) d.emplace_back("Error", error_text(s["error"]));
    d.emplace_back("Parent", s["parent_id"].is_string() ? str(s["parent_id"]) : "(none)");
    d.emplace_back("Current", yes_no(s["is_current"]));
    d.emplace_back("Created", local_time(s["created_at"]) + " (" + age(s["created_at"]) + ")");
    if (s["size_bytes"].is_number()) d.emplace_back("Size", bytes(s["size_bytes"]));
    if (s["guest_paused_ms"].is_number())
        d.emplace_back("Guest paused", duration(milliseconds(s["guest_paused_ms"].get<std::int64_t>())));
    d.emplace_back("Origin", clean(str(s["origin"])));
    if (s.contains("schedule_id") && s["schedule_id"].is_string())
        d.emplace_back("Schedule", schedule_of(s, schedules) + " (" + str(s["schedule_id"]) + ")");
    print_details(std::cout, d);
}

// ---- schedules -------------------------------------------------------------------------------

namespace {

std::string keep_last_text(const json& s) { return s["keep_last"].is_number() ? std::to_string(s["keep_last"].get<long long>()) : ""; }

// "in 5h (2026-11-28 02:00:00 CET)"; "(disabled)" while disabled.
std::string next_run_text(const json& s, bool long_form) {
    if (!s.value("enabled", true)) return "(disabled)";
    if (!s["next_run_at"].is_string()) return "";
    return long_form ? local_time(s["next_run_at"]) + " (" + from_now(s["next_run_at"]) + ")" : from_now(s["next_run_at"]);
}

// The error of a schedule's last run: "<message> (code)", or "".
std::string last_run_error(const json& s) {
    const json& r = s["last_run"];
    return r.is_object() ? error_text(r.value("error", json())) : std::string();
}

// "succeeded 5h ago", "failed 2m ago: <message> (code)".
std::string last_run_text(const json& s, bool with_error) {
    const json& r = s["last_run"];
    if (!r.is_object()) return with_error ? "(none yet)" : "";
    std::string out = clean(str(r["outcome"])) + " " + age(r["at"]);
    if (with_error && !last_run_error(s).empty()) out += ": " + last_run_error(s);
    return out;
}

}  // namespace

void print_schedules(const json& items, Format format) {
    if (format == Format::json) return print_json({{"items", items}});
    if (format == Format::id) return print_ids(items, "id");
    if (items.empty()) {
        std::cerr << "No schedules found." << std::endl;
        return;
    }
    const bool wide = format == Format::wide;
    std::vector<std::string> headers = {"ID", "NAME", "INSTANCE", "CRON", "TZ", "MODE", "KEEP LAST", "MAX AGE", "ENABLED", "NEXT RUN", "LAST RUN"};
    if (wide)
        for (const char* h : {"JITTER", "TEMPLATE", "LAST ERROR"}) headers.push_back(h);
    Table t(headers);
    for (const auto& s : items) {
        std::vector<std::string> row = {wide ? str(s["id"]) : short_id(s["id"]),
                                        clean(str(s["name"])),
                                        clean(str(s["instance"]["name"])),
                                        clean(str(s["cron"])),
                                        clean(str(s["timezone"])),
                                        clean(str(s["mode"])),
                                        keep_last_text(s),
                                        clean(str(s["max_age"])),
                                        yes_no(s["enabled"]),
                                        wide && s.value("enabled", true) ? local_time(s["next_run_at"]) : next_run_text(s, false),
                                        last_run_text(s, false)};
        if (wide) {
            row.push_back(std::to_string(s.value("jitter_s", 0)) + "s");
            row.push_back(clean(str(s["display_name_template"])));
            row.push_back(truncate(last_run_error(s), 60));
        }
        t.add(row);
    }
    t.print(std::cout);
}

void print_schedule(const json& s, Format format) {
    if (format == Format::json) return print_json(s);
    if (format == Format::id) {
        std::cout << str(s["id"]) << "\n";
        return;
    }
    Details d = {
        {"ID", str(s["id"])},
        {"Name", clean(str(s["name"]))},
        {"Instance", clean(str(s["instance"]["name"])) + " (" + str(s["instance"]["uuid"]) + ")"},
        {"Cron", clean(str(s["cron"]))},
        {"Time zone", clean(str(s["timezone"]))},
        {"Mode", clean(str(s["mode"]))},
    };
    if (s["shutdown_timeout_s"].is_number())
        d.emplace_back("Shutdown timeout", std::to_string(s["shutdown_timeout_s"].get<long long>()) + "s");
    if (s["force_stop"].is_boolean()) d.emplace_back("Force stop", yes_no(s["force_stop"]));
    if (s["keep_stopped"].is_boolean()) d.emplace_back("Keep stopped", yes_no(s["keep_stopped"]));
    d.emplace_back("Keep last", s["keep_last"].is_number() ? keep_last_text(s) : "(no limit)");
    d.emplace_back("Max age", s["max_age"].is_string() ? clean(str(s["max_age"])) : "(no limit)");
    d.emplace_back("Display names", s["display_name_template"].is_string() ? clean(str(s["display_name_template"]))
                                                                           : "(default: {schedule} {datetime})");
    d.emplace_back("Jitter", std::to_string(s.value("jitter_s", 0)) + "s");
    d.emplace_back("Enabled", yes_no(s["enabled"]));
    d.emplace_back("Next run", next_run_text(s, true));
    d.emplace_back("Last run", last_run_text(s, true));
    if (s["last_run"].is_object() && s["last_run"]["job_id"].is_string()) d.emplace_back("Last job", str(s["last_run"]["job_id"]));
    d.emplace_back("Created", local_time(s["created_at"]) + " (" + age(s["created_at"]) + ")");
    d.emplace_back("Updated", local_time(s["updated_at"]) + " (" + age(s["updated_at"]) + ")");
    print_details(std::cout, d);
}

// ---- jobs ------------------------------------------------------------------------------------

void print_jobs(const json& items, Format format) {
    if (format == Format::json) return print_json({{"items", items}});
    if (format == Format::id) return print_ids(items, "id");
    if (items.empty()) {
        std::cerr << "No jobs found." << std::endl;
        return;
    }
    const bool wide = format == Format::wide;
    std::vector<std::string> headers = {"ID", "KIND", "INSTANCE", "SNAPSHOT", "STATE", "PHASE", "CREATED", "DURATION"};
    if (wide) headers.push_back("ERROR");
    Table t(headers);
    for (const auto& j : items) {
        std::vector<std::string> row = {wide ? str(j["id"]) : short_id(j["id"]),
                                        clean(str(j["kind"])),
                                        clean(str(j["instance"]["name"])),
                                        wide ? str(j["snapshot_id"]) : short_id(j["snapshot_id"]),
                                        clean(str(j["state"])),
                                        phase_text(j),
                                        age(j["created_at"]),
                                        job_duration(j)};
        if (wide) row.push_back(j["error"].is_object() ? truncate(error_text(j["error"]), 60) : "");
        t.add(row);
    }
    t.print(std::cout);
}

void print_job(const json& j, Format format) {
    if (format == Format::json) return print_json(j);
    if (format == Format::id) {
        std::cout << str(j["id"]) << "\n";
        return;
    }
    Details d = {
        {"ID", str(j["id"])},
        {"Kind", clean(str(j["kind"]))},
        {"Instance", clean(str(j["instance"]["name"])) + " (" + str(j["instance"]["uuid"]) + ")"},
        {"Snapshot", j["snapshot_id"].is_string() ? str(j["snapshot_id"]) : "(none)"},
        {"State", clean(str(j["state"]))},
        {"Phase", phase_text(j)},
        {"Created", local_time(j["created_at"]) + " (" + age(j["created_at"]) + ")"},
    };
    if (j["started_at"].is_string()) d.emplace_back("Started", local_time(j["started_at"]));
    if (j["finished_at"].is_string()) d.emplace_back("Finished", local_time(j["finished_at"]));
    if (j["started_at"].is_string()) d.emplace_back("Duration", job_duration(j));
    if (j["error"].is_object()) d.emplace_back("Error", error_text(j["error"]));
    if (j.value("recovered", false)) d.emplace_back("Recovered", "yes (finished by the daemon's crash recovery)");
    print_details(std::cout, d);
}

// ---- instances -------------------------------------------------------------------------------

namespace {
std::string instance_state(const json& i) {
    std::string s = clean(str(i["state"]));
    if (i.value("stale", false)) s += " (stale)";
    if (i.contains("defined") && i["defined"] == false) s += " (undefined)";
    return s;
}
}  // namespace

void print_instances(const json& items, Format format) {
    if (format == Format::json) return print_json({{"items", items}});
    if (format == Format::id) return print_ids(items, "name");
    if (items.empty()) {
        std::cerr << "No instances found." << std::endl;
        return;
    }
    const bool wide = format == Format::wide;
    std::vector<std::string> headers = {"NAME", "STATE", "MEMORY", "VCPUS", "SNAPSHOTS", "CURRENT", "BUSY"};
    if (wide) headers.insert(headers.begin() + 1, "UUID");
    Table t(headers);
    for (const auto& i : items) {
        std::vector<std::string> row = {clean(str(i["name"])),
                                        instance_state(i),
                                        std::to_string(i.value("memory_mib", 0)) + " MiB",
                                        std::to_string(i.value("vcpus", 0)),
                                        std::to_string(i.value("snapshot_count", 0)),
                                        wide ? str(i["current_snapshot_id"]) : short_id(i["current_snapshot_id"]),
                                        wide ? str(i["busy_job_id"]) : short_id(i["busy_job_id"])};
        if (wide) row.insert(row.begin() + 1, str(i["uuid"]));
        t.add(row);
    }
    t.print(std::cout);
}

void print_instance(const json& i, const json& snapshots, Format format) {
    if (format == Format::json) return print_json(i);
    if (format == Format::id) {
        std::cout << clean(str(i["name"])) << "\n";
        return;
    }
    print_details(std::cout, {
                                 {"Name", clean(str(i["name"]))},
                                 {"UUID", str(i["uuid"])},
                                 {"State", instance_state(i)},
                                 {"Memory", std::to_string(i.value("memory_mib", 0)) + " MiB"},
                                 {"vCPUs", std::to_string(i.value("vcpus", 0))},
                                 {"Snapshots", std::to_string(i.value("snapshot_count", 0))},
                                 {"Current snapshot", i["current_snapshot_id"].is_string() ? str(i["current_snapshot_id"]) : "(none)"},
                                 {"Busy with job", i["busy_job_id"].is_string() ? str(i["busy_job_id"]) : "(none)"},
                             });
    if (!snapshots.empty()) {
        std::cout << "\n";
        print_snapshots(snapshots, format, true);
    }
}

void print_host(const json& h, Format format) {
    if (format == Format::json) return print_json(h);
    if (format == Format::id) {
        std::cout << clean(str(h["hostname"])) << "\n";
        return;
    }
    const auto joined = [](const json& words) {
        std::string out;
        for (const auto& w : words) out += (out.empty() ? "" : ", ") + clean(str(w));
        return out.empty() ? std::string("(none)") : out;
    };
    const auto version = [&](const json& v) {
        if (!v.is_string()) return std::string("(not known yet: libvirt not reached)");
        return clean(str(v)) + (h.value("stale", false) ? " (last seen; libvirt unreachable)" : "");
    };
    const json& caps = h["capabilities"];
    print_details(std::cout, {
                                 {"Host", clean(str(h["hostname"]))},
                                 {"libvirt", version(h["libvirt_version"])},
                                 {"QEMU", version(h["qemu_version"])},
                                 {"snapvirt", clean(str(h["snapvirt_version"]))},
                                 {"Modes", joined(caps["modes"])},
                                 {"Methods", joined(caps["methods"])},
                                 {"External revert", caps.value("external_revert", false) ? "yes" : "no"},
                             });
}

// ---- progress --------------------------------------------------------------------------------

Progress::Progress(ProgressMode mode, std::string label) : mode_(mode), label_(std::move(label)) {}

Progress::~Progress() { clear(); }

void Progress::clear() {
    if (mode_ == ProgressMode::tty && drawn_) {
        std::cerr << "\r\033[K" << std::flush;
        drawn_ = false;
    }
}

void Progress::update(const json& job, milliseconds elapsed, const std::string& note) {
    if (mode_ == ProgressMode::none) return;
    const std::string state = str(job["state"]);
    std::string what = phase_text(job);
    if (what.empty() || state == "queued") what = clean(state);
    if (!note.empty()) what += ", " + note;
    if (mode_ == ProgressMode::tty) {
        std::string text = label_ + ": " + what + " (" + elapsed_text(elapsed) + ")";
        // One line only: a wrapped line could not be redrawn with \r.
        const int cols = terminal_columns();
        if (cols > 10) text = truncate(text, static_cast<std::size_t>(cols - 1));
        std::cerr << "\r\033[K" << text << std::flush;
        drawn_ = true;
        return;
    }
    if (what != last_plain_) {
        std::cerr << label_ << ": " << what << " (" << elapsed_text(elapsed) << ")" << std::endl;
        last_plain_ = what;
    }
}

void Progress::finish(const json& job) {
    if (mode_ == ProgressMode::none) return;
    clear();
    std::cerr << label_ << ": " << clean(str(job["state"])) << " after "
              << duration(between(job["created_at"], job["finished_at"])) << "." << std::endl;
}

}  // namespace snapvirt::cli
