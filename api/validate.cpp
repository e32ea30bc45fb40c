#include "api/validate.hpp"

#include "config/config.hpp"
#include "config/text.hpp"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <limits>
#include <type_traits>

namespace snapvirt::api {

namespace {

[[noreturn]] void invalid(const std::string& field, const std::string& message) {
    throw ApiError(ErrorCode::invalid_request, message, {{"field", field}});
}

std::string join(const std::set<std::string>& values) {
    std::string out;
    for (const auto& v : values) out += (out.empty() ? "" : ", ") + v;
    return out;
}

bool has_control(std::string_view s, bool allow_newlines) {
    for (unsigned char c : s) {
        if (c == 0x7f) return true;
        if (c >= 0x20) continue;
        if (allow_newlines && (c == '\n' || c == '\t')) continue;
        return true;
    }
    return false;
}

// Characters XML 1.0 cannot carry beyond the C0 controls: U+FFFE, U+FFFF and the surrogates
// (which valid UTF-8 never holds, but a lax encoder writes as ED A0..BF xx). libvirt refuses a
// document holding them, and its error would echo the document's text.
bool has_xml_illegal(std::string_view s) {
    for (std::size_t i = 0; i + 2 < s.size(); ++i) {
        const auto b0 = static_cast<unsigned char>(s[i]);
        const auto b1 = static_cast<unsigned char>(s[i + 1]);
        const auto b2 = static_cast<unsigned char>(s[i + 2]);
        if (b0 == 0xEF && b1 == 0xBF && (b2 == 0xBE || b2 == 0xBF)) return true;  // U+FFFE, U+FFFF
        if (b0 == 0xED && b1 >= 0xA0 && b1 <= 0xBF) return true;                  // U+D800..U+DFFF
    }
    return false;
}

void check_xml_text(const std::string& field, const std::string& value) {
    if (has_xml_illegal(value))
        invalid(field, "The field '" + field + "' must not contain U+FFFE, U+FFFF or surrogate code points.");
}

}  // namespace

nlohmann::json parse_json_text(const std::string& text) {
    constexpr int max_depth = 64;
    return nlohmann::json::parse(text, [](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
        if (depth > max_depth)
            throw ApiError(ErrorCode::invalid_request,
                           "The request body nests deeper than " + std::to_string(max_depth) + " levels.",
                           {{"field", "body"}});
        return true;
    });
}

nlohmann::json parse_json_body(const Request& req, bool optional) {
    if (req.body.empty()) {
        if (optional) return nlohmann::json::object();
        throw ApiError(ErrorCode::invalid_request, "The request needs a JSON body.", {{"field", "body"}});
    }
    const std::string* ct = req.header("content-type");
    std::string type = ct ? ct->substr(0, ct->find(';')) : "";
    type.erase(std::remove_if(type.begin(), type.end(), [](unsigned char c) { return std::isspace(c); }), type.end());
    type = lower_ascii(type);
    if (type != "application/json")
        throw ApiError(ErrorCode::unsupported_media_type,
                       "The request body must be JSON with 'Content-Type: application/json'" +
                           (ct ? ", not '" + *ct + "'." : std::string(", and the header is missing.")),
                       {{"content_type", ct ? *ct : ""}});
    nlohmann::json j;
    try {
        j = parse_json_text(req.body);
    } catch (const nlohmann::json::parse_error& e) {
        throw ApiError(ErrorCode::invalid_json, "The request body is not valid JSON (at byte " +
                                                    std::to_string(e.byte) + ").",
                       {{"offset", e.byte}});
    } catch (const nlohmann::json::exception& e) {
        // e.g. a number out of range (1e400)
        throw ApiError(ErrorCode::invalid_json, std::string("The request body is not usable JSON: ") + e.what(),
                       {{"offset", 0}});
    }
    if (!j.is_object()) throw ApiError(ErrorCode::invalid_request, "The request body must be a JSON object.", {{"field", "body"}});
    return j;
}

FieldReader::FieldReader(const nlohmann::json& object, std::set<std::string> known) : object_(object) {
    for (const auto& [key, value] : object.items()) {
        (void)value;
        if (!known.count(key))
            throw ApiError(ErrorCode::unknown_field,
                           "The field '" + key + "' is not known here (known: " + join(known) + ").",
                           {{"field", key}});
    }
}

std::optional<std::string> FieldReader::string(const std::string& field) const {
    auto it = object_.find(field);
    if (it == object_.end()) return std::nullopt;
    if (!it->is_string()) invalid(field, "The field '" + field + "' must be a string.");
    return it->get<std::string>();
}

std::optional<bool> FieldReader::boolean(const std::string& field) const {
    auto it = object_.find(field);
    if (it == object_.end()) return std::nullopt;
    if (!it->is_boolean()) invalid(field, "The field '" + field + "' must be true or false.");
    return it->get<bool>();
}

std::optional<std::int64_t> FieldReader::integer(const std::string& field, std::int64_t min, std::int64_t max) const {
    auto it = object_.find(field);
    if (it == object_.end()) return std::nullopt;
    if (!it->is_number_integer()) invalid(field, "The field '" + field + "' must be an integer.");
    if (it->is_number_unsigned() && it->get<std::uint64_t>() > static_cast<std::uint64_t>(max))
        invalid(field, "The field '" + field + "' must be between " + std::to_string(min) + " and " +
                           std::to_string(max) + ".");
    const auto v = it->get<std::int64_t>();
    if (v < min || v > max)
        invalid(field, "The field '" + field + "' must be between " + std::to_string(min) + " and " +
                           std::to_string(max) + ".");
    return v;
}

std::size_t utf8_length(std::string_view s) {
    return static_cast<std::size_t>(std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

bool is_valid_snapshot_name(std::string_view name) {
    auto alnum = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
    if (name.empty() || name.size() > 64 || !alnum(name.front())) return false;
    return std::all_of(name.begin() + 1, name.end(), [&](char c) { return alnum(c) || c == '.' || c == '_' || c == '-'; });
}

void check_snapshot_name(const std::string& field, const std::string& value) {
    if (!is_valid_snapshot_name(value))
        invalid(field, "The field '" + field +
                           "' must be 1 to 64 characters of letters, digits, '.', '_' and '-', starting with a "
                           "letter or digit.");
}

void check_display_name(const std::string& field, const std::string& value) {
    if (value.empty()) invalid(field, "The field '" + field + "' must not be empty.");
    if (utf8_length(value) > 255) invalid(field, "The field '" + field + "' must be at most 255 characters long.");
    if (has_control(value, false)) invalid(field, "The field '" + field + "' must not contain control characters.");
    check_xml_text(field, value);
}

void check_description(const std::string& field, const std::string& value) {
    if (utf8_length(value) > 4096) invalid(field, "The field '" + field + "' must be at most 4096 characters long.");
    if (has_control(value, true))
        invalid(field, "The field '" + field +
                           "' must not contain control characters other than line feed and tab.");
    check_xml_text(field, value);
}

namespace {

// Every `{` starts one of the known placeholders.
void check_template(const std::string& field, const std::string& value) {
    check_display_name(field, value);
    for (std::size_t at = value.find('{'); at != std::string::npos; at = value.find('{', at + 1)) {
        const std::size_t close = value.find('}', at);
        const std::string name = close == std::string::npos ? std::string() : value.substr(at + 1, close - at - 1);
        const auto& known = config::ScheduleConfig::display_name_placeholders;
        if (std::find_if(known.begin(), known.end(), [&](const char* k) { return name == k; }) == known.end()) {
            std::string list;
            for (const char* k : known) list += std::string(list.empty() ? "" : ", ") + "{" + k + "}";
            const std::string what = close == std::string::npos ? "an unclosed '{'" : "'" + value.substr(at, close - at + 1) + "'";
            invalid(field, "The field '" + field + "' holds " + what + "; the placeholders are " + list + ".");
        }
    }
}

// ^[1-9][0-9]{0,5}[mhdw]$: a number and a unit.
bool is_valid_max_age(std::string_view v) {
    if (v.size() < 2 || v.size() > 7 || v.front() < '1' || v.front() > '9') return false;
    if (std::string_view("mhdw").find(v.back()) == std::string_view::npos) return false;
    return std::all_of(v.begin(), v.end() - 1, [](char c) { return c >= '0' && c <= '9'; });
}

// A field that JSON null clears in a change: nullopt when absent, an empty inner optional for
// null. A create has nothing to clear: null is refused there as the wrong type (by `read`).
template <class Read, class Value = typename std::invoke_result_t<Read>::value_type>
std::optional<std::optional<Value>> nullable(const nlohmann::json& body, const std::string& field, bool clears,
                                             Read read) {
    auto it = body.find(field);
    if (it == body.end()) return std::nullopt;
    if (clears && it->is_null()) return std::optional<std::optional<Value>>(std::in_place, std::nullopt);
    return std::optional<std::optional<Value>>(std::in_place, read());
}

}  // namespace

ScheduleRequest parse_schedule_request(const nlohmann::json& body, bool create) {
    FieldReader f(body, {"name", "cron", "timezone", "mode", "shutdown_timeout_s", "force_stop", "keep_stopped",
                         "display_name_template", "keep_last", "max_age", "jitter_s", "enabled"});
    if (!create && body.empty())
        invalid("body", "Give at least one field to change.");
    auto required = [&](const char* field, bool present) {
        if (create && !present) invalid(field, std::string("The field '") + field + "' is required.");
    };
    ScheduleRequest r;
    r.name = f.string("name");
    required("name", r.name.has_value());
    if (r.name) check_snapshot_name("name", *r.name);

    r.cron = f.string("cron");
    required("cron", r.cron.has_value());
    if (r.cron && (r.cron->empty() || r.cron->size() > 200))
        invalid("cron", "The field 'cron' must be a cron expression of 1 to 200 characters.");

    r.timezone = f.string("timezone");
    if (r.timezone && (r.timezone->empty() || r.timezone->size() > 64))
        invalid("timezone", "The field 'timezone' must be a time zone name (such as 'Europe/Berlin') of 1 to 64 characters.");

    // A schedule takes snapshots with or without RAM; the third mode only describes what libvirt holds.
    const std::string choices = std::string("\"") + to_string(SnapshotMode::memory) + "\" or \"" +
                                to_string(SnapshotMode::stopped) + "\"";
    if (const auto text = f.string("mode")) {
        r.mode = parse<SnapshotMode>(*text);
        if (!r.mode || *r.mode == SnapshotMode::other) invalid("mode", "The field 'mode' must be " + choices + ".");
    }
    if (create && !r.mode) invalid("mode", "The field 'mode' is required: " + choices + ".");

    if (auto t = f.integer("shutdown_timeout_s", config::SnapshotConfig::shutdown_timeout_min_s,
                           config::SnapshotConfig::shutdown_timeout_max_s))
        r.shutdown_timeout_s = static_cast<unsigned>(*t);
    r.force_stop = f.boolean("force_stop");
    r.keep_stopped = f.boolean("keep_stopped");
    // A PATCH that does not name the mode may set them: the daemon checks the schedule it makes.
    if (r.mode == SnapshotMode::memory)
        for (const char* field : {"shutdown_timeout_s", "force_stop", "keep_stopped"})
            if (body.contains(field))
                invalid(field, std::string("The field '") + field + "' applies to mode \"" +
                                   to_string(SnapshotMode::stopped) + "\" only.");

    r.display_name_template = nullable(body, "display_name_template", !create, [&] { return f.string("display_name_template"); });
    if (r.display_name_template && *r.display_name_template)
        check_template("display_name_template", **r.display_name_template);

    r.keep_last = nullable(body, "keep_last", !create, [&] {
        const auto v = f.integer("keep_last", 1, std::numeric_limits<std::int32_t>::max());
        return v ? std::optional<unsigned>(static_cast<unsigned>(*v)) : std::nullopt;
    });
    r.max_age = nullable(body, "max_age", !create, [&] { return f.string("max_age"); });
    if (r.max_age && *r.max_age && !is_valid_max_age(**r.max_age))
        invalid("max_age", "The field 'max_age' must be a number and a unit m, h, d or w (such as '7d' or '12h').");

    if (auto j = f.integer("jitter_s", 0, config::ScheduleConfig::jitter_max_s)) r.jitter_s = static_cast<unsigned>(*j);
    r.enabled = f.boolean("enabled");

    const bool keeps = (r.keep_last && *r.keep_last) || (r.max_age && *r.max_age);
    if (create && !keeps)
        invalid("keep_last", "A schedule needs 'keep_last', 'max_age' or both, so that its snapshots do not pile up.");
    return r;
}

void check_query(const Request& req, const std::set<std::string>& known) {
    for (const auto& [k, v] : req.query) {
        (void)v;
        if (!known.count(k)) {
            const std::string list = known.empty() ? "none" : join(known);
            invalid(k, "The query parameter '" + k + "' is not known here (known: " + list + ").");
        }
    }
}

std::optional<std::int64_t> query_int(const Request& req, const std::string& name, std::int64_t min, std::int64_t max) {
    const std::string* v = req.query_param(name);
    if (!v) return std::nullopt;
    std::int64_t out = 0;
    const char* begin = v->data();
    const char* end = v->data() + v->size();
    auto [p, ec] = std::from_chars(begin, end, out);
    if (v->empty() || ec != std::errc() || p != end || out < min || out > max)
        invalid(name, "The query parameter '" + name + "' must be an integer from " + std::to_string(min) + " to " +
                          std::to_string(max) + ".");
    return out;
}

std::optional<std::string> query_enum(const Request& req, const std::string& name, const std::set<std::string>& values) {
    const std::string* v = req.query_param(name);
    if (!v) return std::nullopt;
    if (!values.count(*v)) invalid(name, "The query parameter '" + name + "' must be one of " + join(values) + ".");
    return *v;
}

std::optional<bool> query_bool(const Request& req, const std::string& name) {
    const std::string* v = req.query_param(name);
    if (!v) return std::nullopt;
    if (*v == "true" || *v == "1") return true;
    if (*v == "false" || *v == "0") return false;
    invalid(name, "The query parameter '" + name + "' must be true or false.");
}

}  // namespace snapvirt::api
