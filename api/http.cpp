#include "api/http.hpp"

#include "api/json.hpp"

#include <algorithm>

namespace snapvirt::api {

const std::string* Request::header(std::string_view name) const {
    for (const auto& [k, v] : headers)
        if (k == name) return &v;
    return nullptr;
}

const std::string* Request::query_param(std::string_view name) const {
    for (const auto& [k, v] : query)
        if (k == name) return &v;
    return nullptr;
}

Response json_response(int status, std::string body) {
    Response r;
    r.status = status;
    r.body = std::move(body);
    return r;
}

Response error_response(const ApiError& e) {
    Response r = json_response(http_status(e.code()), error_body(e));
    if (e.code() == ErrorCode::method_not_allowed && e.details().contains("allow")) {
        std::string allow;
        for (const auto& m : e.details()["allow"]) allow += (allow.empty() ? "" : ", ") + m.get<std::string>();
        r.headers.emplace_back("Allow", allow);
    }
    return r;
}

std::string lower_ascii(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
}

bool is_sane_token_text(std::string_view s, std::size_t max) {
    if (s.empty() || s.size() > max) return false;
    for (unsigned char c : s)
        if (c <= 0x20 || c >= 0x7f) return false;
    return true;
}

std::string percent_decode(std::string_view s, bool plus_is_space) {
    auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (c == '%') {
            if (i + 2 >= s.size())
                throw ApiError(ErrorCode::invalid_request, "The request target has an incomplete percent escape.");
            const int hi = hex(s[i + 1]);
            const int lo = hex(s[i + 2]);
            if (hi < 0 || lo < 0)
                throw ApiError(ErrorCode::invalid_request, "The request target has an invalid percent escape.");
            out.push_back(static_cast<char>(hi * 16 + lo));
            i += 2;
        } else if (c == '+' && plus_is_space) {
            out.push_back(' ');
        } else {
            out.push_back(c);
        }
    }
    return out;
}

void parse_target(std::string_view target, std::string& path, std::vector<std::pair<std::string, std::string>>& query) {
    const auto q = target.find('?');
    const std::string_view raw_path = target.substr(0, q);
    if (raw_path.empty() || raw_path.front() != '/')
        throw ApiError(ErrorCode::invalid_request, "The request target must be an absolute path.");
    // Decode segment by segment so that an encoded '/' stays inside its segment.
    path.clear();
    std::size_t i = 0;
    while (i < raw_path.size()) {
        const std::size_t j = raw_path.find('/', i + 1);
        const std::string_view seg = raw_path.substr(i + 1, j == std::string_view::npos ? std::string_view::npos : j - i - 1);
        std::string decoded = percent_decode(seg, false);
        if (decoded.find('/') != std::string::npos || decoded.find('\0') != std::string::npos)
            throw ApiError(ErrorCode::invalid_request, "A path segment may not contain an encoded '/' or NUL.");
        path += '/';
        path += decoded;
        if (j == std::string_view::npos) break;
        i = j;
    }
    query.clear();
    if (q == std::string_view::npos) return;
    std::string_view rest = target.substr(q + 1);
    while (!rest.empty()) {
        const auto amp = rest.find('&');
        const std::string_view pair = rest.substr(0, amp);
        if (!pair.empty()) {
            const auto eq = pair.find('=');
            std::string key = percent_decode(pair.substr(0, eq), true);
            std::string value = eq == std::string_view::npos ? "" : percent_decode(pair.substr(eq + 1), true);
            query.emplace_back(std::move(key), std::move(value));
        }
        if (amp == std::string_view::npos) break;
        rest = rest.substr(amp + 1);
    }
}

}  // namespace snapvirt::api
