#include "api/errors.hpp"
#include "api/http.hpp"
#include "api/json.hpp"

#include "tests/support/catch.hpp"

using namespace snapvirt::api;

TEST_CASE("Every error code maps to the contract's status", "[errors]") {
    CHECK(http_status(ErrorCode::invalid_json) == 400);
    CHECK(http_status(ErrorCode::unknown_field) == 400);
    CHECK(http_status(ErrorCode::unauthenticated) == 401);
    CHECK(http_status(ErrorCode::forbidden) == 403);
    CHECK(http_status(ErrorCode::snapshot_not_found) == 404);
    CHECK(http_status(ErrorCode::method_not_allowed) == 405);
    CHECK(http_status(ErrorCode::body_too_large) == 413);
    CHECK(http_status(ErrorCode::unsupported_media_type) == 415);
    CHECK(http_status(ErrorCode::instance_busy) == 409);
    CHECK(http_status(ErrorCode::job_not_cancellable) == 409);
    CHECK(http_status(ErrorCode::unsupported_firmware) == 422);
    CHECK(http_status(ErrorCode::hypervisor_unavailable) == 503);
    CHECK(http_status(ErrorCode::internal) == 500);
    CHECK(std::string(code_name(ErrorCode::instance_not_running)) == "instance_not_running");
}

TEST_CASE("Error bodies have the contract's shape", "[errors]") {
    const ApiError e(ErrorCode::instance_busy, "Instance 'web1' is busy.", {{"job_id", "j1"}});
    const auto body = nlohmann::json::parse(error_body(e));
    CHECK(body["error"]["code"] == "instance_busy");
    CHECK(body["error"]["message"] == "Instance 'web1' is busy.");
    CHECK(body["error"]["details"]["job_id"] == "j1");
    const Response r = error_response(e);
    CHECK(r.status == 409);
    CHECK(r.content_type == "application/json");
}

TEST_CASE("A 405 carries an Allow header", "[errors]") {
    const Response r = error_response(ApiError(ErrorCode::method_not_allowed, "no", {{"allow", {"GET", "POST"}}}));
    REQUIRE(r.headers.size() == 1);
    CHECK(r.headers[0].first == "Allow");
    CHECK(r.headers[0].second == "GET, POST");
}

TEST_CASE("Times are RFC 3339 in UTC", "[json]") {
    CHECK(format_time(0) == "1970-01-01T00:00:00.000Z");
    CHECK(format_time(1795696000123) == "2026-11-26T12:26:40.123Z");
}

TEST_CASE("JSON strings are escaped and invalid UTF-8 is replaced", "[json]") {
    std::string out;
    write_string(out, "a\"b\\c\n\t\x01 \xc3\xa4 \xff end");
    CHECK(out == "\"a\\\"b\\\\c\\n\\t\\u0001 \xc3\xa4 \xef\xbf\xbd end\"");
    CHECK(nlohmann::json::parse(out).get<std::string>() == "a\"b\\c\n\t\x01 \xc3\xa4 \xef\xbf\xbd end");
}

TEST_CASE("Objects are written in the contract's shape", "[json]") {
    Snapshot s;
    s.id = "s1";
    s.instance = {"u1", "web1"};
    s.name = "n";
    s.display_name = "<d>";
    s.parent_id = "p";
    s.guest_paused_ms = 42;
    s.error = ErrorInfo{"x", "y"};
    const auto j = nlohmann::json::parse(json_string(s));
    CHECK(j["instance"]["name"] == "web1");
    CHECK(j["display_name"] == "<d>");
    CHECK(j["parent_id"] == "p");
    CHECK(j["size_bytes"].is_null());
    CHECK(j["guest_paused_ms"] == 42);
    CHECK(j["error"]["code"] == "x");
    CHECK(j["schedule_id"].is_null());
    CHECK(j["method"] == "internal");
    CHECK(j.size() == 16);
    Job job;
    job.progress = {"saving", std::nullopt};
    const auto jj = nlohmann::json::parse(json_string(job));
    CHECK(jj["progress"]["phase"] == "saving");
    CHECK(jj["progress"]["percent"].is_null());
    CHECK(jj["started_at"].is_null());
    CHECK_FALSE(jj.contains("recovered"));
    Instance i;
    i.stale = true;
    CHECK(nlohmann::json::parse(json_string(i))["stale"] == true);
}
