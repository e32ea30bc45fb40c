#pragma once
// Files embedded into the binary at build time (cmake/embed.cmake): the web page and the
// OpenAPI document.

#include <string_view>
#include <vector>

namespace snapvirt::api {

struct Asset {
    std::string_view path;          // relative to api/: "web/index.html", "openapi.json"
    std::string_view content_type;
    std::string_view data;
};

const std::vector<Asset>& assets();
const Asset* find_asset(std::string_view path);

}  // namespace snapvirt::api
