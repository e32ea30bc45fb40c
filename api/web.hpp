#pragma once
// The daemon's own web page: `GET /` and `GET /ui/{asset}`, served from embedded files with
// a strict Content-Security-Policy (nothing loads from anywhere but this daemon).

#include "api/http.hpp"

#include <string>

namespace snapvirt::api {

Response serve_web(const Request& req);
std::string openapi_document();

}  // namespace snapvirt::api
