#include "api/router.hpp"

#include <algorithm>

namespace snapvirt::api {

namespace {

std::vector<std::string> split_path(const std::string& path) {
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i < path.size()) {
        if (path[i] == '/') {
            ++i;
            continue;
        }
        const std::size_t j = path.find('/', i);
        out.push_back(path.substr(i, j == std::string::npos ? std::string::npos : j - i));
        if (j == std::string::npos) break;
        i = j;
    }
    return out;
}

bool is_param(const std::string& seg) { return seg.size() > 2 && seg.front() == '{' && seg.back() == '}'; }

}  // namespace

void Router::add(std::string method, std::string pattern, Scope scope, Exec exec, Handler handler, bool cacheable) {
    Route r{std::move(method), std::move(pattern), scope, exec, std::move(handler), {}, cacheable};
    r.segments = split_path(r.pattern);
    routes_.push_back(std::move(r));
}

Router::Match Router::match(const std::string& method, const std::string& path) const {
    Match m;
    // A trailing slash is not a different resource, but an empty segment inside is no match.
    if (path.empty() || path.front() != '/' || path.find("//") != std::string::npos) return m;
    const auto segs = split_path(path);
    for (const auto& r : routes_) {
        if (r.segments.size() != segs.size()) continue;
        std::vector<std::string> params;
        bool ok = true;
        for (std::size_t i = 0; i < segs.size() && ok; ++i) {
            if (is_param(r.segments[i]))
                params.push_back(segs[i]);
            else
                ok = r.segments[i] == segs[i];
        }
        if (!ok) continue;
        if (r.method == method || (method == "HEAD" && r.method == "GET")) {
            m.route = &r;
            m.params = std::move(params);
            return m;
        }
        if (std::find(m.allowed.begin(), m.allowed.end(), r.method) == m.allowed.end()) m.allowed.push_back(r.method);
    }
    return m;
}

}  // namespace snapvirt::api
