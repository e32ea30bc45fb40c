#pragma once
// How the `snapvirt` CLI shows the API's objects: tables and detail views for people, the API's
// own JSON for scripts, bare identifiers for shell loops, and the progress line while a job runs.
// Results go to stdout; progress, summaries and errors go to stderr. Single-threaded.

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace snapvirt::cli {

using json = nlohmann::json;

enum class Format { table, wide, json, id };
enum class ProgressMode { none, plain, tty };

Format parse_format(const std::string& text);  // throws Failure(usage)

// ---- text helpers ----------------------------------------------------------------------------

// Text from the daemon made safe for a terminal: control characters (C0, DEL, C1) become '?'
// (newlines and tabs too unless `keep_newlines`), so no snapshot description can move the cursor.
std::string clean(const std::string& text, bool keep_newlines = false);
std::string str(const json& v);                    // a string field, "" for null or missing
std::string short_id(const json& id);              // the first 8 characters of a UUID
std::string age(const json& rfc3339);              // "5s ago", "3m ago", "2d ago"; "" for null
std::string local_time(const json& rfc3339);       // "2026-11-26 11:00:00 CET"; "" for null
std::string from_now(const json& rfc3339);         // "in 5s", "in 3h", "in 2d" ("due" when past); "" for null
std::string duration(std::chrono::milliseconds d); // "850ms", "12.3s", "4m05s", "1h02m"
std::string bytes(const json& n);                  // "1.5 GiB"; "" for null
// The time between two RFC 3339 fields of a job (`to` null: until now).
std::chrono::milliseconds between(const json& from, const json& to);
std::chrono::system_clock::time_point parse_time(const std::string& rfc3339);

// ---- generic layouts -------------------------------------------------------------------------

// Left-aligned columns separated by three spaces; widths count UTF-8 code points.
class Table {
public:
    explicit Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}
    void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
    bool empty() const { return rows_.empty(); }
    void print(std::ostream& out) const;

private:
    std::vector<std::string> headers_;
    std::vector<std::vector<std::string>> rows_;
};

using Details = std::vector<std::pair<std::string, std::string>>;
// "Key:   value" lines, keys aligned; multi-line values are indented under the first line.
void print_details(std::ostream& out, const Details& rows);

void print_json(const json& doc);  // one pretty-printed document on stdout

// ---- the API's objects -----------------------------------------------------------------------

// Schedule ID -> name, to show which schedule took a snapshot.
using ScheduleNames = std::map<std::string, std::string>;

// `tree`: the list is an instance's, parents before children; names are indented by depth and
// the instance column is left out. A SCHEDULE column shows when a snapshot was taken by one.
void print_snapshots(const json& items, Format format, bool tree, const ScheduleNames& schedules = {});
void print_snapshot(const json& snapshot, Format format, const ScheduleNames& schedules = {});
void print_schedules(const json& items, Format format);
void print_schedule(const json& schedule, Format format);
void print_jobs(const json& items, Format format);
void print_job(const json& job, Format format);
void print_instances(const json& items, Format format);
void print_instance(const json& instance, const json& snapshots, Format format);
void print_host(const json& host, Format format);

// ---- progress --------------------------------------------------------------------------------

// The progress of one job on stderr: on a terminal one line redrawn in place (\r), otherwise a
// plain line each time the state or phase changes. The destructor wipes a line still drawn.
class Progress {
public:
    Progress(ProgressMode mode, std::string label);
    ~Progress();
    Progress(const Progress&) = delete;
    Progress& operator=(const Progress&) = delete;

    void update(const json& job, std::chrono::milliseconds elapsed, const std::string& note = {});
    // The closing line: "<label>: succeeded after 3.1s."
    void finish(const json& job);
    void clear();

private:
    ProgressMode mode_;
    std::string label_;
    std::string last_plain_;
    bool drawn_ = false;
};

}  // namespace snapvirt::cli
