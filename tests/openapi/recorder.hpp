#pragma once
// Records what the real daemon answers, one JSON object a line, for validate.mjs to check
// against api/openapi.json: method, target, the route template the daemon's router matches
// (null when none does), status, content type, headers, body, and for the event stream the
// events read.

#include "tests/openapi/common.hpp"

#include "api/router.hpp"
#include "cli/client.hpp"

#include "tests/support/catch.hpp"

#include <filesystem>
#include <fstream>
#include <mutex>

namespace snapvirt::openapi_test {

class Recorder {
public:
    explicit Recorder(const std::string& name) {
        std::filesystem::create_directories(SNAPVIRT_OPENAPI_RECORD_DIR);
        path_ = std::string(SNAPVIRT_OPENAPI_RECORD_DIR) + "/" + name + ".jsonl";
        out_.open(path_, std::ios::trunc);
        REQUIRE(out_.good());
        api::add_routes(router_, backend_, all_route_options());
    }

    // The route template the daemon matches for this method and target; for a path that exists
    // with other methods only (405), that path's template; null for none.
    nlohmann::json route_of(const std::string& method, const std::string& target) const {
        std::string path;
        std::vector<std::pair<std::string, std::string>> query;
        try {
            api::parse_target(target, path, query);
        } catch (const api::ApiError&) {
            return nullptr;
        }
        if (auto m = router_.match(method, path); m.route) return m.route->pattern;
        for (const auto& r : router_.routes())
            if (auto m = router_.match(r.method, path); m.route) return m.route->pattern;
        return nullptr;
    }

    void record(const std::string& method, const std::string& target, const client::Response& r,
                const nlohmann::json& events = nullptr) {
        nlohmann::json line;
        line["method"] = method;
        line["target"] = target;
        line["route"] = route_of(method, target);
        line["status"] = r.status;
        const std::string* ct = r.header("content-type");
        line["content_type"] = ct ? *ct : "";
        nlohmann::json headers = nlohmann::json::object();
        for (const auto& [k, v] : r.headers) headers[k] = v;
        line["headers"] = headers;
        line["body"] = r.body;
        if (!events.is_null()) line["events"] = events;
        std::lock_guard lock(mu_);
        out_ << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
        out_.flush();
        ++count_;
    }

    client::Response send(const client::Client& c, const std::string& method, const std::string& target,
                          const std::string& body = {}, const client::Headers& headers = {}) {
        client::Response r = c.send(method, target, body, headers);
        record(method, target, r);
        return r;
    }
    client::Response get(const client::Client& c, const std::string& target, const client::Headers& headers = {}) {
        return send(c, "GET", target, {}, headers);
    }
    client::Response post(const client::Client& c, const std::string& target, const nlohmann::json& body,
                          const client::Headers& headers = {}) {
        return send(c, "POST", target, body.is_null() ? std::string() : body.dump(), headers);
    }
    client::Response patch(const client::Client& c, const std::string& target, const nlohmann::json& body) {
        return send(c, "PATCH", target, body.dump());
    }
    client::Response del(const client::Client& c, const std::string& target) { return send(c, "DELETE", target); }

    std::size_t count() const { return count_; }
    const std::string& path() const { return path_; }

private:
    std::string path_;
    std::ofstream out_;
    std::mutex mu_;
    std::size_t count_ = 0;
    StubBackend backend_;
    api::Router router_;
};

}  // namespace snapvirt::openapi_test
