#pragma once
// The contract's JSON for each object.

#include "api/model.hpp"

#include <nlohmann/json.hpp>

namespace snapvirt::api {

std::string format_time(TimeMs t);  // RFC 3339, UTC, milliseconds: 2026-11-26T10:00:00.000Z

nlohmann::json to_json(const Instance& i);
nlohmann::json to_json(const Snapshot& s);
nlohmann::json to_json(const Job& j);

// Compact serialisation that replaces invalid UTF-8 rather than throwing.
std::string dump(const nlohmann::json& j);

}  // namespace snapvirt::api
