#include "api/web.hpp"

#include "api/assets.hpp"

namespace snapvirt::api {

const Asset* find_asset(std::string_view path) {
    for (const auto& a : assets())
        if (a.path == path) return &a;
    return nullptr;
}

Response serve_web(const Request& req) {
    std::string path = req.path == "/" ? "web/index.html" : "web/" + req.path.substr(std::string("/ui/").size());
    const Asset* a = find_asset(path);
    if (!a || path.find("..") != std::string::npos)
        throw ApiError(ErrorCode::not_found, "There is nothing at '" + req.path + "'.");
    Response r;
    r.content_type = std::string(a->content_type);
    r.body = std::string(a->data);
    r.headers.emplace_back("Content-Security-Policy",
                           "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'");
    r.headers.emplace_back("Referrer-Policy", "no-referrer");
    r.headers.emplace_back("X-Frame-Options", "DENY");
    r.headers.emplace_back("Cache-Control", req.path == "/" ? "no-cache" : "max-age=300");
    return r;
}

std::string openapi_document() {
    const Asset* a = find_asset("openapi.json");
    return a ? std::string(a->data) : std::string();
}

}  // namespace snapvirt::api
