// api/openapi.json against the code that serves the API: the router's routes and the
// document's paths are the same set; scopes, query parameters, request bodies and error codes
// agree with what the handlers and api/errors.cpp do. Hermetic: a stub backend, no sockets.

#include "tests/openapi/common.hpp"

#include "api/errors.hpp"
#include "api/router.hpp"
#include "api/web.hpp"

#include "tests/support/catch.hpp"

#include <algorithm>
#include <cstdint>
#include <map>
#include <regex>
#include <set>
#include <utility>

using namespace snapvirt;
using namespace snapvirt::openapi_test;
using json = nlohmann::json;

namespace {

const char* const kMethods[] = {"get", "put", "post", "delete", "patch", "options", "trace", "head"};

std::string upper(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    return s;
}
std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

// Follows local $refs ("#/components/...") until an object without one.
const json& resolve(const json& doc, const json& j) {
    const json* p = &j;
    for (int i = 0; i < 16 && p->is_object() && p->contains("$ref"); ++i) {
        const std::string ref = (*p)["$ref"].get<std::string>();
        REQUIRE(ref.rfind("#/", 0) == 0);
        p = &doc.at(json::json_pointer(ref.substr(1)));
    }
    return *p;
}

struct Fixture {
    StubBackend backend;
    api::Router router;
    json doc = document();
    Fixture() { api::add_routes(router, backend, all_route_options()); }

    const json& operation(const api::Route& r) const { return doc.at("paths").at(r.pattern).at(lower(r.method)); }

    std::vector<json> parameters(const json& op, const std::string& in) const {
        std::vector<json> out;
        for (const auto& p : op.value("parameters", json::array())) {
            const json& rp = resolve(doc, p);
            if (rp.at("in") == in) out.push_back(rp);
        }
        return out;
    }

    // A request for the route with every path parameter filled in.
    api::Request request(const api::Route& r) const {
        api::Request req;
        req.method = r.method;
        std::string path;
        for (const auto& seg : r.segments) path += "/" + (seg.front() == '{' ? std::string("x1") : seg);
        req.path = path.empty() ? "/" : path;
        req.target = req.path;
        auto m = router.match(r.method, req.path);
        REQUIRE(m.route == &r);
        req.params = m.params;
        req.request_id = "test";
        return req;
    }
};

// What a handler threw, if it threw an ApiError.
struct Outcome {
    bool threw = false;
    std::string code;
    std::string field;
    std::string message;
};

Outcome call(const api::Route& r, api::Request req) {
    Outcome o;
    try {
        r.handler(req);
    } catch (const api::ApiError& e) {
        o.threw = true;
        o.code = api::code_name(e.code());
        o.field = e.details().is_object() && e.details().contains("field") && e.details()["field"].is_string()
                      ? e.details()["field"].get<std::string>()
                      : std::string();
        o.message = e.what();
    }
    return o;
}

// A value a schema accepts, as a query string.
std::string query_sample(const json& schema) {
    if (schema.contains("enum")) return schema["enum"][0].get<std::string>();
    const json type = schema.value("type", json("string"));
    if (type == "integer") return std::to_string(schema.value("minimum", std::int64_t(0)));
    if (type == "boolean") return "true";
    return "x";
}

// A value a schema accepts, as JSON.
json body_sample(const json& schema) {
    if (schema.contains("enum")) return schema["enum"][0];
    const json type = schema.value("type", json("string"));
    if (type == "integer") return schema.value("minimum", std::int64_t(0));
    if (type == "boolean") return false;
    return "a";
}

bool is_web(const api::Route& r) { return r.pattern == "/" || r.pattern == "/ui/{asset}"; }

}  // namespace

TEST_CASE("The routes of the router and the paths of the document are the same set", "[openapi]") {
    Fixture f;
    std::set<std::pair<std::string, std::string>> in_router, in_document;
    for (const auto& r : f.router.routes())
        if (r.method != "HEAD") in_router.emplace(r.method, r.pattern);
    for (const auto& [path, item] : f.doc.at("paths").items())
        for (const char* m : kMethods)
            if (item.contains(m) && std::string(m) != "head") in_document.emplace(upper(m), path);

    std::vector<std::string> only_router, only_document;
    for (const auto& [m, p] : in_router)
        if (!in_document.count({m, p})) only_router.push_back(m + " " + p);
    for (const auto& [m, p] : in_document)
        if (!in_router.count({m, p})) only_document.push_back(m + " " + p);
    INFO("routed but not documented: " << json(only_router).dump());
    INFO("documented but not routed: " << json(only_document).dump());
    CHECK(only_router.empty());
    CHECK(only_document.empty());
    CHECK(in_router.size() >= 24);
}

TEST_CASE("The security requirement of each operation is the scope its route needs", "[openapi]") {
    Fixture f;
    for (const auto& r : f.router.routes()) {
        INFO(r.method << " " << r.pattern);
        const json& op = f.operation(r);
        REQUIRE(op.contains("security"));
        switch (r.scope) {
            case api::Scope::none: CHECK(op["security"] == json::array()); break;
            case api::Scope::read: CHECK(op["security"] == json::parse(R"([{"bearerAuth":["read"]}])")); break;
            case api::Scope::write: CHECK(op["security"] == json::parse(R"([{"bearerAuth":["write"]}])")); break;
        }
        const auto& responses = op.at("responses");
        CHECK(responses.contains("401") == (r.scope != api::Scope::none));
        CHECK(responses.contains("403") == (r.scope == api::Scope::write));
        // Every POST takes an Idempotency-Key.
        bool idem = false;
        for (const auto& p : f.parameters(op, "header")) idem = idem || p["name"] == "Idempotency-Key";
        CHECK(idem == (r.method == "POST"));
    }
}

TEST_CASE("Each operation documents exactly the query parameters its handler accepts", "[openapi]") {
    Fixture f;
    std::map<std::string, std::string> probe_values;  // a valid value where some operation documents the name
    std::set<std::string> probes = {"zz_unknown", "instance", "state", "mode", "kind", "q", "limit", "cursor",
                                    "wait", "children", "last_event_id", "page", "offset", "sort", "name",
                                    "id", "force", "start", "token", "access_token"};
    for (const auto& [path, item] : f.doc.at("paths").items())
        for (const auto& [method, op] : item.items())
            for (const auto& p : f.parameters(op, "query")) {
                probes.insert(p["name"].get<std::string>());
                probe_values[p["name"].get<std::string>()] = query_sample(p["schema"]);
            }
    for (const auto& r : f.router.routes()) {
        INFO(r.method << " " << r.pattern);
        const auto params = f.parameters(f.operation(r), "query");
        if (is_web(r)) {
            CHECK(params.empty());  // the web page ignores its query
            continue;
        }
        std::set<std::string> names;
        for (const auto& p : params) names.insert(p["name"].get<std::string>());

        // All documented parameters with valid values: none is refused.
        api::Request req = f.request(r);
        for (const auto& p : params) req.query.emplace_back(p["name"], query_sample(p["schema"]));
        Outcome o = call(r, req);
        INFO(o.code << " " << o.field << ": " << o.message);
        CHECK_FALSE((o.threw && names.count(o.field)));

        // Every value of an enum, and the bounds of an integer, are accepted; beyond them, refused.
        for (const auto& p : params) {
            const std::string name = p["name"];
            const json& s = p["schema"];
            INFO("parameter " << name);
            auto with = [&](const std::string& value) {
                api::Request q = f.request(r);
                q.query.emplace_back(name, value);
                return call(r, q);
            };
            auto refused = [&](const std::string& value) {
                INFO("value '" << value << "'");
                Outcome x = with(value);
                CHECK(x.threw);
                CHECK(x.code == "invalid_request");
                CHECK(x.field == name);
            };
            auto accepted = [&](const std::string& value) {
                INFO("value '" << value << "'");
                Outcome x = with(value);
                CHECK_FALSE((x.threw && x.field == name));
            };
            if (s.contains("enum")) {
                for (const auto& v : s["enum"]) accepted(v.get<std::string>());
                refused("no-such-value");
            } else if (s.value("type", "") == "integer") {
                REQUIRE(s.contains("minimum"));
                REQUIRE(s.contains("maximum"));
                const auto min = s["minimum"].get<std::int64_t>();
                const auto max = s["maximum"].get<std::int64_t>();
                accepted(std::to_string(min));
                accepted(std::to_string(max));
                refused(min == 0 ? "-1" : std::to_string(min - 1));
                refused(std::to_string(static_cast<std::uint64_t>(max) + 1));
                refused("ten");
                if (s.contains("default")) accepted(std::to_string(s["default"].get<std::int64_t>()));
            } else if (s.value("type", "") == "boolean") {
                accepted("true");
                accepted("false");
                refused("maybe");
            }
        }

        // A parameter the document does not list for this operation is refused, naming it: probed
        // with every query parameter of the whole API and a few likely names.
        for (const auto& probe : probes) {
            if (names.count(probe)) continue;
            INFO("undocumented parameter " << probe);
            api::Request extra = f.request(r);
            extra.query.emplace_back(probe, probe_values.count(probe) ? probe_values[probe] : "1");
            Outcome x = call(r, extra);
            CHECK(x.threw);
            CHECK(x.code == "invalid_request");
            CHECK(x.field == probe);
            CHECK_THAT(x.message, Catch::Contains("not known"));
        }
    }
}

TEST_CASE("Each request body documents exactly the fields its handler reads", "[openapi]") {
    Fixture f;
    int bodies = 0;
    for (const auto& r : f.router.routes()) {
        INFO(r.method << " " << r.pattern);
        const json& op = f.operation(r);
        if (!op.contains("requestBody")) {
            // Operations without a documented body take none: DELETE refuses one outright.
            if (r.method == "DELETE") {
                api::Request req = f.request(r);
                req.body = "{}";
                req.headers.emplace_back("content-type", "application/json");
                Outcome o = call(r, req);
                CHECK(o.code == "invalid_request");
                CHECK(o.field == "body");
            }
            continue;
        }
        ++bodies;
        const json& body = resolve(f.doc, op["requestBody"]);
        const json& schema = resolve(f.doc, body.at("content").at("application/json").at("schema"));
        REQUIRE(schema.value("type", "") == "object");
        const json props = schema.value("properties", json::object());
        const json required = schema.value("required", json::array());
        json base = json::object();
        for (const auto& name : required) base[name.get<std::string>()] = body_sample(props.at(name.get<std::string>()));

        auto send = [&](const std::string& text, const std::string& content_type = "application/json") {
            api::Request req = f.request(r);
            req.body = text;
            if (!content_type.empty()) req.headers.emplace_back("content-type", content_type);
            return call(r, req);
        };

        // An empty body: refused exactly when the document says the body is required.
        {
            Outcome o = send("", "");
            INFO("empty body: " << o.code << " " << o.field);
            if (body.value("required", false)) {
                CHECK(o.code == "invalid_request");
                CHECK(o.field == "body");
            } else {
                CHECK_FALSE(o.threw);
            }
        }
        // Each documented field is known to the handler.
        for (const auto& [name, s] : props.items()) {
            json b = base;
            b[name] = body_sample(s);
            Outcome o = send(b.dump());
            INFO("field " << name << ": " << o.code << " " << o.message);
            CHECK(o.code != "unknown_field");
        }
        // A field the document does not list: refused exactly when additionalProperties is false.
        {
            json b = base;
            b["zz_extra"] = 1;
            Outcome o = send(b.dump());
            INFO("extra field: " << o.code << " " << o.field);
            if (schema.contains("additionalProperties") && schema["additionalProperties"] == false) {
                CHECK(o.code == "unknown_field");
                CHECK(o.field == "zz_extra");
            } else {
                CHECK(o.code != "unknown_field");
            }
        }
        // Each required field, left out, is named.
        for (const auto& name : required) {
            json b = base;
            b.erase(name.get<std::string>());
            if (b.empty()) b["display_name"] = "x";  // keep the body non-empty (PATCH needs one field)
            Outcome o = send(b.dump());
            CHECK(o.code == "invalid_request");
            CHECK(o.field == name.get<std::string>());
        }
        // A body that is not JSON-typed: 415, which the document lists.
        {
            Outcome o = send(base.empty() ? "{}" : base.dump(), "text/plain");
            CHECK(o.code == "unsupported_media_type");
            CHECK(op.at("responses").contains("415"));
        }
        // Not JSON at all: 400 invalid_json.
        {
            Outcome o = send("{\"mode\":");
            CHECK(o.code == "invalid_json");
        }
    }
    CHECK(bodies == 6);
}

TEST_CASE("The error codes of the document are those of api/errors.cpp with their statuses", "[openapi]") {
    Fixture f;
    const json& error = f.doc.at("components").at("schemas").at("Error");
    const json& codes = error.at("properties").at("error").at("properties").at("code").at("enum");
    std::set<std::string> documented;
    for (const auto& c : codes) documented.insert(c.get<std::string>());
    std::map<std::string, int> implemented;
    for (int i = 0; i <= static_cast<int>(api::ErrorCode::internal); ++i) {
        const auto code = static_cast<api::ErrorCode>(i);
        implemented[api::code_name(code)] = api::http_status(code);
    }
    std::set<std::string> names;
    for (const auto& [name, status] : implemented) names.insert(name);
    CHECK(documented == names);

    const std::string description = error.at("description");
    for (const auto& [name, status] : implemented) {
        INFO(name);
        CHECK_THAT(description, Catch::Contains("- `" + name + "` (" + std::to_string(status) + "):"));
    }

    // Every error response names its codes ("Codes: `a`, `b`."), and each code has that status.
    std::set<std::string> seen;
    auto check_response = [&](const std::string& where, const std::string& status, const json& response) {
        const json& r = resolve(f.doc, response);
        const int st = std::stoi(status);
        if (st < 400) return;
        INFO(where << " " << status);
        CHECK(resolve(f.doc, r.at("content").at("application/json").at("schema")) ==
              f.doc.at("components").at("schemas").at("Error"));
        const std::string d = r.at("description");
        const auto at = d.find("Codes: ");
        REQUIRE(at != std::string::npos);
        static const std::regex code_re("`([a-z_]+)`");
        const std::string list = d.substr(at);
        for (auto it = std::sregex_iterator(list.begin(), list.end(), code_re); it != std::sregex_iterator(); ++it) {
            const std::string code = (*it)[1];
            INFO("code " << code);
            REQUIRE(implemented.count(code));
            CHECK(implemented[code] == st);
            seen.insert(code);
        }
    };
    for (const auto& [path, item] : f.doc.at("paths").items())
        for (const auto& [method, op] : item.items())
            for (const auto& [status, response] : op.at("responses").items())
                check_response(method + " " + path, status, response);
    for (const auto& [status, response] : f.doc.at("x-unmatched-responses").at("responses").items())
        check_response("x-unmatched-responses", status, response);
    // request_timeout is declared but never sent (see the Error schema); everything else is reachable.
    for (const auto& [name, status] : implemented) {
        if (name == "request_timeout") continue;
        INFO("code " << name << " is in no response of the document");
        CHECK(seen.count(name) == 1);
    }
}

TEST_CASE("The daemon serves api/openapi.json as it is in the source tree", "[openapi]") {
    const std::string text = read_text(document_path());
    CHECK(api::openapi_document() == text);
    const json doc = json::parse(text);
    CHECK(doc.at("openapi") == "3.1.0");
    CHECK(doc.at("info").at("title") == "snapvirt");
    CHECK(doc.at("info").at("x-daemon-version") == SNAPVIRT_PROJECT_VERSION);
    CHECK_THAT(doc.at("info").at("summary").get<std::string>(), Catch::Contains(std::string("snapvirtd ") + SNAPVIRT_PROJECT_VERSION));
    CHECK_THAT(doc.at("info").at("version").get<std::string>(), Catch::StartsWith("1."));
}
