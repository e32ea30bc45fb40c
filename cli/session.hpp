#pragma once
// The CLI's view of one snapvirtd: requests that either return the API's JSON or throw a
// cli::Failure with the right exit code, safe retries of POSTs under an Idempotency-Key,
// paging, resolving what a user typed to a snapshot or job, and waiting for jobs.
// Single-threaded; one connection per request (client::Client).

#include "cli/client.hpp"
#include "cli/output.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace snapvirt::cli {

using Query = std::vector<std::pair<std::string, std::string>>;

// "/v1/snapshots" + {{"state","ready"}} -> "/v1/snapshots?state=ready" (values percent-encoded).
std::string with_query(const std::string& path, const Query& query);
// A random UUID (version 4) for an Idempotency-Key.
std::string new_idempotency_key();
bool is_uuid(const std::string& text);

struct WaitOptions {
    std::optional<std::chrono::seconds> timeout;  // none: until the job ends
    ProgressMode progress = ProgressMode::none;
    std::string label;                            // "Creating snapshot 'ram' of 'web1'"
};

struct WaitResult {
    json job;                // as last seen
    bool timed_out = false;  // the timeout passed first; the job goes on
};

class Session {
public:
    Session(client::Url url, std::string token, client::TlsOptions tls);

    const client::Url& url() const { return client_.url(); }

    json get(const std::string& target) const;
    // GET that answers nullopt for 404 instead of failing.
    std::optional<json> find(const std::string& target) const;
    // POST with an Idempotency-Key; retried (same key, same body) after a transport error.
    json post(const std::string& target, const json& body, const std::string& idempotency_key) const;
    json patch(const std::string& target, const json& body) const;
    // DELETE; an answer without a body (204) is JSON null.
    json del(const std::string& target) const;

    // Every item of a paged collection (GET path?query&limit=1000&cursor=...).
    json all_pages(const std::string& path, Query query) const;

    // A snapshot by ID, unique ID prefix, INSTANCE/NAME (display name or libvirt name), or a
    // display name or libvirt name that is unique on the host. Returns the Snapshot object.
    json snapshot(const std::string& ref) const;
    // A job by ID or unique ID prefix. Returns the Job object.
    json job(const std::string& ref) const;
    // A schedule by ID, unique ID prefix, INSTANCE/NAME, or a name that is unique on the host.
    // Returns the Schedule object.
    json schedule(const std::string& ref) const;

    // Long-polls GET /v1/jobs/{id}?wait=N until the job ends or the timeout passes, drawing
    // progress. Ctrl-C stops waiting (exit 130) and says how to follow the job; the job goes on.
    // Rides out a daemon restart (up to a minute unreachable).
    WaitResult wait(json job, const WaitOptions& options) const;

private:
    client::Response send(const std::string& method, const std::string& target, const std::string& body,
                          const client::Headers& headers) const;
    [[noreturn]] void fail(const client::Response& r) const;
    [[noreturn]] void fail_transport(const client::TransportError& e, const std::string& hint = {}) const;
    json expect(const client::Response& r, int status_low = 200, int status_high = 299) const;

    client::Client client_;
};

}  // namespace snapvirt::cli
