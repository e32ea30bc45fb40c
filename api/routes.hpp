#pragma once
// The contract's endpoints, bound to a Backend.

#include "api/backend.hpp"
#include "api/router.hpp"

#include <functional>
#include <string>

namespace snapvirt::api {

struct RouteOptions {
    std::string version;                          // reported by /healthz
    std::function<std::string()> metrics;         // Prometheus text for /metrics
    std::string openapi_json;                     // served at /openapi.json
    std::function<Response(const Request&)> web;  // GET / and its assets
};

void add_routes(Router& router, Backend& backend, const RouteOptions& options);

// SHA-256 of the parts of a POST that decide whether a retry is "the same request".
std::string request_fingerprint(const Request& req);

}  // namespace snapvirt::api
