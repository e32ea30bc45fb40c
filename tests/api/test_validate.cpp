#include "api/validate.hpp"

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
