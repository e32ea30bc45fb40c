#include "api/router.hpp"

#include "tests/support/catch.hpp"

using namespace snapvirt::api;

namespace {
Router make_router() {
    Router r;
    auto h = [](Request&) { return Response{}; };
    r.add("GET", "/v1/instances", Scope::read, Exec::io, h);
    r.add("GET", "/v1/instances/{instance}", Scope::read, Exec::blocking, h);
    r.add("POST", "/v1/instances/{instance}/snapshots", Scope::write, Exec::blocking, h);
    r.add("GET", "/v1/instances/{instance}/snapshots", Scope::read, Exec::io, h);
    r.add("POST", "/v1/snapshots/{id}/revert", Scope::write, Exec::io, h);
    return r;
}
}  // namespace

TEST_CASE("The router matches literal and parameter segments", "[router]") {
    const Router r = make_router();
    auto m = r.match("GET", "/v1/instances");
    REQUIRE(m.route);
    CHECK(m.route->pattern == "/v1/instances");
    m = r.match("GET", "/v1/instances/web 1");
    REQUIRE(m.route);
    CHECK(m.params == std::vector<std::string>{"web 1"});
    m = r.match("POST", "/v1/snapshots/abc/revert");
    REQUIRE(m.route);
    CHECK(m.params == std::vector<std::string>{"abc"});
    CHECK(m.route->scope == Scope::write);
}

TEST_CASE("A path with other methods only gives the allowed ones (405)", "[router]") {
    const Router r = make_router();
    auto m = r.match("DELETE", "/v1/instances/x/snapshots");
    CHECK_FALSE(m.route);
    CHECK(m.allowed == std::vector<std::string>{"POST", "GET"});
}

TEST_CASE("Unknown paths and empty segments do not match (404)", "[router]") {
    const Router r = make_router();
    CHECK_FALSE(r.match("GET", "/v2/instances").route);
    CHECK(r.match("GET", "/v2/instances").allowed.empty());
    CHECK_FALSE(r.match("GET", "/v1//instances").route);
    CHECK_FALSE(r.match("GET", "/v1/instances/a/b/c").route);
    CHECK_FALSE(r.match("GET", "").route);
}

TEST_CASE("HEAD is answered by the GET route", "[router]") {
    const Router r = make_router();
    auto m = r.match("HEAD", "/v1/instances");
    REQUIRE(m.route);
    CHECK(m.route->method == "GET");
}

TEST_CASE("Targets are split and percent-decoded per segment", "[router]") {
    std::string path;
    std::vector<std::pair<std::string, std::string>> query;
    parse_target("/v1/instances/web%201/snapshots?q=a%26b&limit=5&x", path, query);
    CHECK(path == "/v1/instances/web 1/snapshots");
    REQUIRE(query.size() == 3);
    CHECK(query[0] == std::pair<std::string, std::string>{"q", "a&b"});
    CHECK(query[1].second == "5");
    CHECK(query[2].second.empty());
    CHECK_THROWS_AS(parse_target("/v1/instances/a%2Fb", path, query), ApiError);
    CHECK_THROWS_AS(parse_target("/v1/%zz", path, query), ApiError);
    CHECK_THROWS_AS(parse_target("/v1/%4", path, query), ApiError);
    CHECK_THROWS_AS(parse_target("relative", path, query), ApiError);
}
