#pragma once
// Request validation: JSON bodies read strictly (unknown fields, wrong types and bad values are
// refused naming the field), names and texts checked against the contract's rules.

#include "api/errors.hpp"
#include "api/http.hpp"
#include "api/model.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <set>
#include <string>

namespace snapvirt::api {

// Parses JSON text nested at most 64 levels deep (deeper would let a body exhaust the stack
// of whatever walks the tree). Throws nlohmann's exceptions, or ApiError for the depth.
nlohmann::json parse_json_text(const std::string& text);

// Parses the body as a JSON object. An empty body gives an empty object when `optional`.
// 415 for a body that is not application/json, 400 invalid_json with the byte offset.
nlohmann::json parse_json_body(const Request& req, bool optional);

// Reads the fields of one JSON object; throws on a field not in `known` or of the wrong type.
class FieldReader {
public:
    FieldReader(const nlohmann::json& object, std::set<std::string> known);
    std::optional<std::string> string(const std::string& field) const;
    std::optional<bool> boolean(const std::string& field) const;
    std::optional<std::int64_t> integer(const std::string& field, std::int64_t min, std::int64_t max) const;

private:
    const nlohmann::json& object_;
};

std::size_t utf8_length(std::string_view s);

// ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$
bool is_valid_snapshot_name(std::string_view name);
void check_snapshot_name(const std::string& field, const std::string& value);
void check_display_name(const std::string& field, const std::string& value);
void check_description(const std::string& field, const std::string& value);

// The body of POST /v1/instances/{instance}/schedules (`create`: name, cron and mode required,
// keep_last or max_age needed) or of PATCH /v1/schedules/{id} (every field optional, at least
// one; null clears display_name_template, keep_last and max_age, and is refused elsewhere).
// Checks what api/ can: types, lengths, ranges, patterns, the template's placeholders; the cron
// expression's syntax, the time zone and the limits that depend on the configuration are the
// daemon's to check.
ScheduleRequest parse_schedule_request(const nlohmann::json& body, bool create);

// Query parameters: refuses any not in `known`.
void check_query(const Request& req, const std::set<std::string>& known);
std::optional<std::int64_t> query_int(const Request& req, const std::string& name, std::int64_t min, std::int64_t max);
std::optional<std::string> query_enum(const Request& req, const std::string& name, const std::set<std::string>& values);
std::optional<bool> query_bool(const Request& req, const std::string& name);

}  // namespace snapvirt::api
