#include "api/validate.hpp"
#include "config/config.hpp"

#include "tests/support/catch.hpp"

using namespace snapvirt::api;

namespace {
Request json_request(std::string body, std::string type = "application/json") {
    Request r;
    r.body = std::move(body);
    if (!type.empty()) r.headers.emplace_back("content-type", type);
    return r;
}

ErrorCode code_of(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const ApiError& e) {
        return e.code();
    }
    FAIL("no ApiError thrown");
    return ErrorCode::internal;
}
}  // namespace

TEST_CASE("Invalid JSON is refused with the byte offset", "[validate]") {
    try {
        parse_json_body(json_request("{\"mode\": memory}"), false);
        FAIL("accepted");
    } catch (const ApiError& e) {
        CHECK(e.code() == ErrorCode::invalid_json);
        CHECK(e.details()["offset"] == 10);
        CHECK_THAT(std::string(e.what()), Catch::Contains("byte 10"));
    }
}

TEST_CASE("The content type must be JSON", "[validate]") {
    CHECK(code_of([] { parse_json_body(json_request("{}", "text/plain"), false); }) == ErrorCode::unsupported_media_type);
    CHECK(code_of([] { parse_json_body(json_request("{}", ""), false); }) == ErrorCode::unsupported_media_type);
    CHECK_NOTHROW(parse_json_body(json_request("{}", "Application/JSON; charset=utf-8"), false));
    CHECK(code_of([] { parse_json_body(json_request("[1]"), false); }) == ErrorCode::invalid_request);
    CHECK(code_of([] { parse_json_body(json_request(""), false); }) == ErrorCode::invalid_request);
    CHECK(parse_json_body(json_request(""), true).empty());
}

TEST_CASE("Unknown fields and wrong types name the field", "[validate]") {
    const auto body = nlohmann::json{{"mode", "memory"}, {"colour", "red"}};
    try {
        FieldReader f(body, {"mode"});
        FAIL("accepted");
    } catch (const ApiError& e) {
        CHECK(e.code() == ErrorCode::unknown_field);
        CHECK(e.details()["field"] == "colour");
    }
    const auto typed = nlohmann::json{{"force_stop", "yes"}, {"shutdown_timeout_s", -1}};
    FieldReader f(typed, {"force_stop", "shutdown_timeout_s"});
    CHECK(code_of([&] { f.boolean("force_stop"); }) == ErrorCode::invalid_request);
    CHECK(code_of([&] { f.integer("shutdown_timeout_s", 1, 10); }) == ErrorCode::invalid_request);
    CHECK_FALSE(f.string("absent").has_value());
}

TEST_CASE("Snapshot names follow the contract's pattern", "[validate]") {
    CHECK(is_valid_snapshot_name("a"));
    CHECK(is_valid_snapshot_name("web1-2026.11_26"));
    CHECK(is_valid_snapshot_name(std::string(64, 'x')));
    CHECK_FALSE(is_valid_snapshot_name(std::string(65, 'x')));
    CHECK_FALSE(is_valid_snapshot_name(""));
    CHECK_FALSE(is_valid_snapshot_name("-a"));
    CHECK_FALSE(is_valid_snapshot_name("a/b"));
    CHECK_FALSE(is_valid_snapshot_name("a b"));
    CHECK_FALSE(is_valid_snapshot_name("<x>"));
}

TEST_CASE("Display names and descriptions are bounded in characters, not bytes", "[validate]") {
    std::string umlauts;
    for (int i = 0; i < 255; ++i) umlauts += "\xc3\xa4";  // ä: 2 bytes, 1 character
    CHECK(utf8_length(umlauts) == 255);
    CHECK_NOTHROW(check_display_name("display_name", umlauts));
    CHECK(code_of([&] { check_display_name("display_name", umlauts + "x"); }) == ErrorCode::invalid_request);
    CHECK(code_of([] { check_display_name("display_name", ""); }) == ErrorCode::invalid_request);
    CHECK(code_of([] { check_display_name("display_name", "a\nb"); }) == ErrorCode::invalid_request);
    CHECK_NOTHROW(check_description("description", "line 1\nline 2\twith <xml> & ]]>"));
    CHECK(code_of([] { check_description("description", std::string(4097, 'd')); }) == ErrorCode::invalid_request);
    CHECK(code_of([] { check_description("description", "a\rb"); }) == ErrorCode::invalid_request);
}

TEST_CASE("Query parameters are checked", "[validate]") {
    Request r;
    r.query = {{"limit", "0"}};
    CHECK(code_of([&] { query_int(r, "limit", 1, 1000); }) == ErrorCode::invalid_request);
    r.query = {{"limit", "12x"}};
    CHECK(code_of([&] { query_int(r, "limit", 1, 1000); }) == ErrorCode::invalid_request);
    r.query = {{"limit", "1000"}};
    CHECK(query_int(r, "limit", 1, 1000) == 1000);
    r.query = {{"state", "weird"}};
    CHECK(code_of([&] { query_enum(r, "state", {"ready"}); }) == ErrorCode::invalid_request);
    r.query = {{"bogus", "1"}};
    CHECK(code_of([&] { check_query(r, {"limit"}); }) == ErrorCode::invalid_request);
}

namespace {
ScheduleRequest schedule(const nlohmann::json& body, bool create = true) { return parse_schedule_request(body, create); }

nlohmann::json minimal_schedule() { return {{"name", "nightly"}, {"cron", "0 2 * * *"}, {"mode", "memory"}, {"keep_last", 7}}; }

// The code and details.field of what a schedule body is refused with.
std::pair<ErrorCode, std::string> refusal(const nlohmann::json& body, bool create = true) {
    try {
        parse_schedule_request(body, create);
    } catch (const ApiError& e) {
        return {e.code(), e.details().value("field", "")};
    }
    FAIL("accepted: " << body.dump());
    return {ErrorCode::internal, ""};
}

std::pair<ErrorCode, std::string> invalid(const std::string& field) { return {ErrorCode::invalid_request, field}; }
}  // namespace

TEST_CASE("A schedule is made with a name, a cron expression, a mode and keep_last or max_age", "[validate][schedules]") {
    const auto r = schedule(minimal_schedule());
    CHECK(r.name == "nightly");
    CHECK(r.cron == "0 2 * * *");
    CHECK(r.mode == snapvirt::SnapshotMode::memory);
    REQUIRE(r.keep_last);
    CHECK(*r.keep_last == 7u);
    CHECK_FALSE(r.max_age);
    CHECK_FALSE(r.timezone);
    CHECK_FALSE(r.display_name_template);
    CHECK_FALSE(r.enabled);

    auto body = minimal_schedule();
    body.erase("keep_last");
    body["max_age"] = "7d";
    CHECK(schedule(body).max_age == std::optional<std::optional<std::string>>("7d"));

    for (const char* field : {"name", "cron", "mode"}) {
        INFO(field);
        auto without = minimal_schedule();
        without.erase(field);
        CHECK(refusal(without) == invalid(field));
    }
    auto neither = minimal_schedule();
    neither.erase("keep_last");
    CHECK(refusal(neither) == invalid("keep_last"));
    neither["keep_last"] = nullptr;
    neither["max_age"] = nullptr;
    CHECK(refusal(neither) == invalid("keep_last"));
}

TEST_CASE("Every schedule field is checked and named when wrong", "[validate][schedules]") {
    const auto with = [](const std::string& field, const nlohmann::json& value) {
        auto body = minimal_schedule();
        body[field] = value;
        return body;
    };
    const auto accepted = [&](const std::string& field, const nlohmann::json& value) {
        INFO(field << " = " << value.dump());
        CHECK_NOTHROW(schedule(with(field, value)));
    };
    const auto refused = [&](const std::string& field, const nlohmann::json& value) {
        INFO(field << " = " << value.dump());
        CHECK(refusal(with(field, value)) == invalid(field));
    };
    CHECK(refusal(with("colour", "red")) == std::pair<ErrorCode, std::string>{ErrorCode::unknown_field, "colour"});
    CHECK(refusal(with("method", "internal")).first == ErrorCode::unknown_field);

    accepted("name", std::string(64, 'n'));
    accepted("name", "web1.nightly_2-x");
    for (const nlohmann::json& v : {nlohmann::json(""), nlohmann::json(std::string(65, 'n')), nlohmann::json("-x"),
                                    nlohmann::json("a b"), nlohmann::json(7), nlohmann::json(nullptr)})
        refused("name", v);

    accepted("cron", "*/20 * * * * *");
    accepted("cron", "@daily");
    accepted("cron", std::string(200, '*'));
    for (const nlohmann::json& v : {nlohmann::json(""), nlohmann::json(std::string(201, '*')), nlohmann::json(5),
                                    nlohmann::json(nullptr)})
        refused("cron", v);

    accepted("timezone", "Europe/Berlin");
    accepted("timezone", std::string(64, 'z'));
    for (const nlohmann::json& v : {nlohmann::json(""), nlohmann::json(std::string(65, 'z')), nlohmann::json(1),
                                    nlohmann::json(nullptr)})
        refused("timezone", v);

    accepted("mode", "stopped");
    for (const nlohmann::json& v : {nlohmann::json("other"), nlohmann::json("warm"), nlohmann::json(nullptr)})
        refused("mode", v);

    accepted("display_name_template", "{schedule} on {instance}: {date} {time} ({datetime})");
    accepted("display_name_template", "nightly } with a brace");
    accepted("display_name_template", std::string(255, 't'));
    for (const nlohmann::json& v : {nlohmann::json("{hostname}"), nlohmann::json("{date"), nlohmann::json("{}"),
                                    nlohmann::json("{ date}"), nlohmann::json(""), nlohmann::json(std::string(256, 't')),
                                    nlohmann::json("a\nb"), nlohmann::json(3)})
        refused("display_name_template", v);

    accepted("keep_last", 1);
    for (const nlohmann::json& v : {nlohmann::json(0), nlohmann::json(-1), nlohmann::json(1.5), nlohmann::json("7")})
        refused("keep_last", v);

    for (const char* v : {"90m", "12h", "7d", "4w", "999999d"}) accepted("max_age", v);
    for (const nlohmann::json& v : {nlohmann::json("0d"), nlohmann::json("07d"), nlohmann::json("1000000d"),
                                    nlohmann::json("7"), nlohmann::json("d"), nlohmann::json("7s"), nlohmann::json("7D"),
                                    nlohmann::json(" 7d"), nlohmann::json(7)})
        refused("max_age", v);

    accepted("jitter_s", 0);
    accepted("jitter_s", snapvirt::config::ScheduleConfig::jitter_max_s);
    for (const nlohmann::json& v : {nlohmann::json(-1), nlohmann::json(snapvirt::config::ScheduleConfig::jitter_max_s + 1),
                                    nlohmann::json(nullptr)})
        refused("jitter_s", v);

    accepted("enabled", false);
    refused("enabled", "no");
    refused("enabled", nullptr);
}

TEST_CASE("A schedule's stopped options go with mode stopped only", "[validate][schedules]") {
    auto stopped = minimal_schedule();
    stopped["mode"] = "stopped";
    stopped["shutdown_timeout_s"] = 60;
    stopped["force_stop"] = true;
    stopped["keep_stopped"] = false;
    const auto r = schedule(stopped);
    CHECK(r.shutdown_timeout_s == 60u);
    CHECK(r.force_stop == true);
    CHECK(r.keep_stopped == false);

    stopped["shutdown_timeout_s"] = snapvirt::config::SnapshotConfig::shutdown_timeout_max_s + 1;
    CHECK(refusal(stopped) == invalid("shutdown_timeout_s"));
    stopped["shutdown_timeout_s"] = 0;
    CHECK(refusal(stopped) == invalid("shutdown_timeout_s"));

    for (const char* field : {"shutdown_timeout_s", "force_stop", "keep_stopped"}) {
        INFO(field);
        auto memory = minimal_schedule();
        memory[field] = std::string(field) == "shutdown_timeout_s" ? nlohmann::json(60) : nlohmann::json(false);
        CHECK(refusal(memory) == invalid(field));
        // A change that says memory is refused too; one that does not name the mode is the
        // daemon's to check against the schedule it changes.
        nlohmann::json patch = {{"mode", "memory"}, {field, memory[field]}};
        CHECK(refusal(patch, false) == invalid(field));
        patch.erase("mode");
        CHECK_NOTHROW(schedule(patch, false));
    }
}

TEST_CASE("A schedule change names only what it changes and null clears the optional fields", "[validate][schedules]") {
    const auto r = schedule({{"enabled", false}}, false);
    CHECK(r.enabled == false);
    CHECK_FALSE(r.name);
    CHECK_FALSE(r.cron);
    CHECK_FALSE(r.mode);
    CHECK_FALSE(r.keep_last);

    const auto cleared = schedule({{"keep_last", nullptr}, {"max_age", nullptr}, {"display_name_template", nullptr}}, false);
    REQUIRE(cleared.keep_last);
    CHECK_FALSE(*cleared.keep_last);
    REQUIRE(cleared.max_age);
    CHECK_FALSE(*cleared.max_age);
    REQUIRE(cleared.display_name_template);
    CHECK_FALSE(*cleared.display_name_template);

    const auto set = schedule({{"keep_last", 3}, {"max_age", "12h"}, {"display_name_template", "{date}"}}, false);
    CHECK(set.keep_last == std::optional<std::optional<unsigned>>(3u));
    CHECK(set.max_age == std::optional<std::optional<std::string>>("12h"));
    CHECK(set.display_name_template == std::optional<std::optional<std::string>>("{date}"));

    CHECK(refusal(nlohmann::json::object(), false) == invalid("body"));
    for (const char* field : {"name", "cron", "timezone", "mode", "jitter_s", "enabled", "force_stop"}) {
        INFO(field);
        CHECK(refusal({{field, nullptr}}, false) == invalid(field));
    }
    CHECK(refusal({{"nmae", "x"}}, false).first == ErrorCode::unknown_field);
}
