#pragma once
// What the route files (routes.cpp, routes_schedules.cpp) share: answers written from the
// contract's objects, and the query parameters every list takes. Internal to api/.

#include "api/json.hpp"
#include "api/router.hpp"
#include "api/validate.hpp"

#include <optional>
#include <string>
#include <vector>

namespace snapvirt::api::routes {

template <class T>
Response object_response(const T& value, int status = 200) {
    return json_response(status, json_string(value));
}

// {"items": [...]} (and "next_cursor" for pages), written without a JSON tree.
template <class T>
Response items_response(const std::vector<T>& items) {
    std::string body = "{\"items\":";
    body.reserve(items.size() * 480 + 32);
    write_json(body, items);
    body += '}';
    return json_response(200, std::move(body));
}

template <class T>
Response page_response(const Page<T>& page) {
    std::string body = "{\"items\":";
    body.reserve(page.items.size() * 480 + 64);
    write_json(body, page.items);
    body += ",\"next_cursor\":";
    if (page.next_cursor)
        write_string(body, *page.next_cursor);
    else
        body += "null";
    body += '}';
    return json_response(200, std::move(body));
}

inline unsigned page_limit(const Request& req) {
    return static_cast<unsigned>(query_int(req, "limit", 1, 1000).value_or(100));
}

inline std::optional<std::string> query_string(const Request& req, const std::string& name) {
    const std::string* v = req.query_param(name);
    if (!v) return std::nullopt;
    return *v;
}

inline void no_body(const Request& req) {
    if (!req.body.empty())
        throw ApiError(ErrorCode::invalid_request, "This request takes no body.", {{"field", "body"}});
}

// The schedules' endpoints (routes_schedules.cpp).
void add_schedule_routes(Router& router, Backend* backend);

}  // namespace snapvirt::api::routes
