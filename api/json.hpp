#pragma once
// The contract's JSON for each object, written straight into a string: list endpoints answer
// hundreds of objects per request, and building a JSON tree first costs more than the query.

#include "api/model.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace snapvirt::api {

std::string format_time(TimeMs t);  // RFC 3339, UTC, milliseconds: 2026-11-26T10:00:00.000Z

// Appends `s` as a JSON string (quoted, escaped; invalid UTF-8 replaced by U+FFFD).
void write_string(std::string& out, std::string_view s);

void write_json(std::string& out, const Instance& i);
void write_json(std::string& out, const Snapshot& s);
void write_json(std::string& out, const Job& j);
void write_json(std::string& out, const Host& h);
void write_json(std::string& out, const Schedule& s);
void write_json(std::string& out, const ScheduleRun& r);  // a Schedule's last_run
// The data of a `schedule.run` event: {schedule_id, instance, slot, at, job_id, outcome, error}.
void write_schedule_run_event(std::string& out, const Schedule& s, const ScheduleRun& r);

template <class T>
void write_json(std::string& out, const std::vector<T>& items) {
    out += '[';
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (i) out += ',';
        write_json(out, items[i]);
    }
    out += ']';
}

template <class T>
std::string json_string(const T& value) {
    std::string out;
    out.reserve(512);
    write_json(out, value);
    return out;
}

}  // namespace snapvirt::api
