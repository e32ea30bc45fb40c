#pragma once
// Maps a method and path to a handler. Patterns are literal segments and `{name}` parameters.
// Built once at start-up; matching is read-only and thread-safe.

#include "api/http.hpp"

#include <functional>
#include <string>
#include <vector>

namespace snapvirt::api {

using Handler = std::function<Response(Request&)>;

// Where a handler runs: on the I/O thread (fast, catalog-only) or on the blocking pool
// (may wait on the hypervisor).
enum class Exec { io, blocking };

struct Route {
    std::string method;
    std::string pattern;   // "/v1/snapshots/{id}/revert"
    Scope scope;           // the least a caller needs (none: open to all)
    Exec exec;
    Handler handler;
    std::vector<std::string> segments;
    bool cacheable = false;  // a catalog read whose answer may be reused while nothing changed
};

class Router {
public:
    void add(std::string method, std::string pattern, Scope scope, Exec exec, Handler handler, bool cacheable = false);

    struct Match {
        const Route* route = nullptr;     // set when method and path match
        std::vector<std::string> params;
        std::vector<std::string> allowed; // the path matched other methods only (405)
    };
    Match match(const std::string& method, const std::string& path) const;

    const std::vector<Route>& routes() const { return routes_; }

private:
    std::vector<Route> routes_;
};

}  // namespace snapvirt::api
