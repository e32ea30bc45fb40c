#pragma once
// Transport-neutral request and response: what handlers see instead of sockets.

#include "api/backend.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace snapvirt::api {

struct Request {
    std::string method;                                        // "GET"
    std::string target;                                        // as sent: path and query
    std::string path;                                          // percent-decoded, without the query
    std::vector<std::pair<std::string, std::string>> query;    // percent-decoded
    std::vector<std::pair<std::string, std::string>> headers;  // names lower-case
    std::string body;
    std::vector<std::string> params;  // path parameters, filled by the router
    Scope scope = Scope::write;       // what the caller may do (set by the server)
    std::string request_id;
    bool wait_done = false;           // a long-poll has already waited once

    const std::string* header(std::string_view name) const;
    const std::string* query_param(std::string_view name) const;
};

// The session waits for an event about `key` (a job id) or until `deadline`, then calls the
// handler again with wait_done set.
struct LongPoll {
    std::string key;
    std::chrono::steady_clock::time_point deadline;
};

// The session turns the connection into a Server-Sent Events stream.
struct EventStream {
    std::optional<std::uint64_t> last_event_id;
};

struct Response {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
    // Set instead of `body` by the answer cache: the cached bytes go out without a copy.
    std::shared_ptr<const std::string> shared_body;
    std::vector<std::pair<std::string, std::string>> headers;
    std::optional<LongPoll> long_poll;
    std::optional<EventStream> event_stream;

    const std::string& bytes() const { return shared_body ? *shared_body : body; }
};

Response json_response(int status, std::string body);
Response error_response(const ApiError& e);

// Splits "/a/b?x=1&y=%20" into a decoded path and query pairs. Throws ApiError(invalid_request).
void parse_target(std::string_view target, std::string& path, std::vector<std::pair<std::string, std::string>>& query);
std::string percent_decode(std::string_view s, bool plus_is_space);

// ASCII lower case (header names).
std::string lower_ascii(std::string_view s);

// 1 to `max` visible ASCII characters (tokens, request ids, idempotency keys).
bool is_sane_token_text(std::string_view s, std::size_t max);

}  // namespace snapvirt::api
