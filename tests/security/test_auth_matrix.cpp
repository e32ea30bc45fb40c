// The auth matrix: every route of the real route table, called with no token, a bogus token,
// a read token and a write token, over plain TCP, TLS, mutual TLS and the Unix socket of a
// running snapvirtd. Tokens are made with `snapvirtd token create` while the daemon runs.

#include "api/routes.hpp"
#include "tests/security/security_support.hpp"

#include <functional>
#include <map>
#include <set>
#include <thread>

using namespace snapvirt;
using namespace snapvirt::sec;
using namespace std::chrono_literals;

namespace {

// Never called: add_routes only needs a Backend to bind the handlers to.
class NoBackend final : public api::Backend {
    [[noreturn]] static void no() { throw std::logic_error("not called"); }

public:
    std::vector<api::Instance> list_instances() override { no(); }
    api::Instance get_instance(const std::string&) override { no(); }
    std::vector<api::Snapshot> list_instance_snapshots(const std::string&) override { no(); }
    api::Page<api::Snapshot> list_snapshots(const api::SnapshotQuery&) override { no(); }
    api::Snapshot get_snapshot(const std::string&) override { no(); }
    api::CreateSnapshotResult create_snapshot(const std::string&, const api::CreateSnapshotRequest&) override { no(); }
    api::Snapshot edit_snapshot(const std::string&, const api::EditSnapshotRequest&) override { no(); }
    api::Job revert_snapshot(const std::string&, const api::RevertRequest&) override { no(); }
    api::Job delete_snapshot(const std::string&, bool) override { no(); }
    api::Page<api::Job> list_jobs(const api::JobQuery&) override { no(); }
    api::Job get_job(const std::string&) override { no(); }
    api::Job cancel_job(const std::string&) override { no(); }
    std::vector<api::Schedule> list_instance_schedules(const std::string&) override { no(); }
    api::Page<api::Schedule> list_schedules(const api::ScheduleQuery&) override { no(); }
    api::Schedule get_schedule(const std::string&) override { no(); }
    api::Schedule create_schedule(const std::string&, const api::ScheduleRequest&) override { no(); }
    api::Schedule edit_schedule(const std::string&, const api::ScheduleRequest&) override { no(); }
    void delete_schedule(const std::string&, bool) override { no(); }
    api::Readiness readiness() override { no(); }
    api::Host host() override { no(); }
    std::optional<api::StoredResponse> find_idempotent(const std::string&) override { no(); }
    void remember_idempotent(const std::string&, const api::StoredResponse&) override { no(); }
    api::Scope authenticate(const std::string&) override { no(); }
};

struct RouteInfo {
    std::string method;
    std::string pattern;
    api::Scope scope;
};

// The daemon's route table, built the way main.cpp builds it (every optional route on).
std::vector<RouteInfo> router_routes() {
    static NoBackend backend;
    api::Router router;
    api::RouteOptions o;
    o.version = "test";
    o.metrics = [] { return std::string(); };
    o.openapi_json = "{}";
    o.web = [](const api::Request&) { return api::Response{}; };
    api::add_routes(router, backend, o);
    std::vector<RouteInfo> out;
    for (const auto& r : router.routes()) out.push_back({r.method, r.pattern, r.scope});
    return out;
}

// The contract (shared/design/api-v1.md): open routes, read routes (GETs, events, metrics),
// write routes (everything else).
const std::map<std::pair<std::string, std::string>, api::Scope>& contract() {
    static const std::map<std::pair<std::string, std::string>, api::Scope> c = {
        {{"GET", "/healthz"}, api::Scope::none},
        {{"GET", "/readyz"}, api::Scope::none},
        {{"GET", "/openapi.json"}, api::Scope::none},
        {{"GET", "/"}, api::Scope::none},
        {{"GET", "/ui/{asset}"}, api::Scope::none},
        {{"GET", "/metrics"}, api::Scope::read},
        {{"GET", "/v1/events"}, api::Scope::read},
        {{"GET", "/v1/host"}, api::Scope::read},
        {{"GET", "/v1/instances"}, api::Scope::read},
        {{"GET", "/v1/instances/{instance}"}, api::Scope::read},
        {{"GET", "/v1/instances/{instance}/snapshots"}, api::Scope::read},
        {{"POST", "/v1/instances/{instance}/snapshots"}, api::Scope::write},
        {{"GET", "/v1/snapshots"}, api::Scope::read},
        {{"GET", "/v1/snapshots/{id}"}, api::Scope::read},
        {{"PATCH", "/v1/snapshots/{id}"}, api::Scope::write},
        {{"DELETE", "/v1/snapshots/{id}"}, api::Scope::write},
        {{"POST", "/v1/snapshots/{id}/revert"}, api::Scope::write},
        {{"GET", "/v1/jobs"}, api::Scope::read},
        {{"GET", "/v1/jobs/{id}"}, api::Scope::read},
        {{"POST", "/v1/jobs/{id}/cancel"}, api::Scope::write},
        {{"GET", "/v1/instances/{instance}/schedules"}, api::Scope::read},
        {{"POST", "/v1/instances/{instance}/schedules"}, api::Scope::write},
        {{"GET", "/v1/schedules"}, api::Scope::read},
        {{"GET", "/v1/schedules/{id}"}, api::Scope::read},
        {{"PATCH", "/v1/schedules/{id}"}, api::Scope::write},
        {{"DELETE", "/v1/schedules/{id}"}, api::Scope::write},
    };
    return c;
}

struct Case {
    std::string method;
    std::string target;
    std::string body;
    api::Scope scope;
};

// One concrete request per route: parameters name things that do not exist, so a request
// that gets through does nothing (404) — the point is only whether it got through.
std::vector<Case> cases() {
    std::vector<Case> out;
    for (const auto& r : router_routes()) {
        std::string target = r.pattern;
        auto subst = [&](const std::string& param, const std::string& value) {
            for (auto p = target.find(param); p != std::string::npos; p = target.find(param))
                target.replace(p, param.size(), value);
        };
        subst("{instance}", "svt-sec-absent");
        subst("{id}", "00000000-0000-4000-8000-000000000000");
        subst("{asset}", "app.js");
        REQUIRE(target.find('{') == std::string::npos);
        std::string body;
        if (r.method == "POST" && r.pattern == "/v1/instances/{instance}/snapshots") body = R"({"mode":"memory"})";
        if (r.method == "POST" && r.pattern == "/v1/instances/{instance}/schedules")
            body = R"({"name":"n","cron":"@daily","mode":"memory","keep_last":1})";
        if (r.method == "PATCH") body = r.pattern == "/v1/schedules/{id}" ? R"({"enabled":false})" : R"({"display_name":"x"})";
        if (r.pattern == "/v1/snapshots/{id}/revert") body = "{}";
        out.push_back({r.method, target, body, r.scope});
    }
    return out;
}

bool got_through(const Outcome& o) { return o.transport_error.empty() && o.status >= 200 && o.status < 500 && o.status != 401 && o.status != 403; }

std::string describe(const Outcome& o) {
    return o.transport_error.empty() ? std::to_string(o.status) + " " + o.code : "transport error: " + o.transport_error;
}

// The whole matrix for one transport; `as(token)` makes a client.
void check_matrix(const std::function<client::Client(const std::string&)>& as, const std::string& read_token,
                  const std::string& write_token) {
    const std::string bogus = "svt_" + std::string(43, 'A');
    for (const auto& c : cases()) {
        INFO(c.method << " " << c.target);
        const Outcome none = call(as(""), c.method, c.target, c.body);
        const Outcome wrong = call(as(bogus), c.method, c.target, c.body);
        const Outcome read = call(as(read_token), c.method, c.target, c.body);
        const Outcome write = call(as(write_token), c.method, c.target, c.body);
        INFO("none: " << describe(none) << "; bogus: " << describe(wrong) << "; read: " << describe(read)
                      << "; write: " << describe(write));
        if (c.scope == api::Scope::none) {
            CHECK(got_through(none));
            CHECK(got_through(wrong));
        } else {
            CHECK(none.status == 401);
            CHECK(none.code == "unauthenticated");
            CHECK(none.www_authenticate);
            CHECK(wrong.status == 401);
            CHECK(wrong.code == "unauthenticated");
            if (c.method == "GET" && c.target != "/v1/events") {
                const Outcome head = call(as(""), "HEAD", c.target);
                CHECK(head.status == 401);
            }
        }
        if (c.scope == api::Scope::write) {
            CHECK(read.status == 403);
            CHECK(read.code == "forbidden");
        } else {
            CHECK(got_through(read));
        }
        CHECK(got_through(write));
        if (c.scope != api::Scope::none && c.target != "/v1/events") {
            // Answers computed for a token (the server may reuse them) never reach a caller without one.
            const Outcome again = call(as(""), c.method, c.target, c.body);
            CHECK(again.status == 401);
        }
    }
}

// Creates a token while the daemon runs and waits until the daemon takes it (it re-reads
// its tokens when the catalog changed, at most every 500 ms).
std::string new_token_in_use(const test::Daemon& d, const std::function<client::Client(const std::string&)>& as,
                             const std::string& scope, const std::string& name) {
    const std::string token = create_token(d.state_dir(), scope, name);
    CHECK(test::eventually([&] { return as(token).get("/v1/instances").status == 200; }, 2s, 50ms));
    return token;
}

void check_revocation(const test::Daemon& d, const std::function<client::Client(const std::string&)>& as,
                      const std::string& token, const std::string& name) {
    REQUIRE(as(token).get("/v1/instances").status == 200);
    revoke_token(d.state_dir(), name);
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(test::eventually([&] { return as(token).get("/v1/instances").status == 401; }, 3s, 50ms));
    CHECK(std::chrono::steady_clock::now() - t0 < 1500ms);
    CHECK(as(token).post("/v1/instances/svt-sec-absent/snapshots", {{"mode", "memory"}}).status == 401);
}

}  // namespace

TEST_CASE("Every route of the router is in the contract with the scope the contract gives it", "[security][auth]") {
    const auto routes = router_routes();
    std::set<std::pair<std::string, std::string>> seen;
    for (const auto& r : routes) {
        INFO(r.method << " " << r.pattern);
        seen.insert({r.method, r.pattern});
        const auto it = contract().find({r.method, r.pattern});
        if (it != contract().end()) {
            CHECK(static_cast<int>(r.scope) == static_cast<int>(it->second));
        } else {
            // A route the contract does not name yet: GETs need read, everything else write.
            WARN("route not in the contract list of this test: " << r.method << " " << r.pattern);
            CHECK(static_cast<int>(r.scope) == static_cast<int>(r.method == "GET" ? api::Scope::read : api::Scope::write));
        }
    }
    for (const auto& [key, scope] : contract()) {
        INFO(key.first << " " << key.second);
        CHECK(seen.count(key) == 1);
    }
}

TEST_CASE("Auth matrix over plain TCP and the Unix socket", "[security][auth]") {
    test::Daemon d;
    auto as = [&](const std::string& token) { return d.client(token); };
    const std::string read = new_token_in_use(d, as, "read", "matrix-read");
    const std::string write = new_token_in_use(d, as, "write", "matrix-write");

    SECTION("TCP") { check_matrix(as, read, write); }
    SECTION("Unix socket: the file permissions decide, any caller may do anything") {
        auto unix_as = [&](const std::string& token) {
            return client::Client(client::Url::parse("unix:" + d.socket_path().string()), token);
        };
        for (const auto& c : cases()) {
            INFO(c.method << " " << c.target);
            const Outcome o = call(unix_as(""), c.method, c.target, c.body);
            INFO(describe(o));
            CHECK(got_through(o));
        }
    }
    SECTION("The Authorization header: scheme and form") {
        auto raw = [&](const std::string& value) {
            return d.client("").get("/v1/instances", {{"Authorization", value}}).status;
        };
        CHECK(raw("Bearer " + read) == 200);
        CHECK(raw("bearer " + read) == 200);
        CHECK(raw("Basic " + read) == 401);
        CHECK(raw(read) == 401);
        CHECK(raw("Bearer") == 401);
        CHECK(raw("Bearer ") == 401);
        CHECK(raw("Bearer " + read + "x") == 401);
        CHECK(raw("Bearer " + read.substr(0, read.size() - 1)) == 401);
        CHECK(raw("Bearer " + std::string(600, 'a')) == 401);
    }
    SECTION("A revoked token is refused within about a second") { check_revocation(d, as, write, "matrix-write"); }
    check_log_hygiene(d.log(), {d.token(), read, write});
}

TEST_CASE("Auth matrix over TLS", "[security][auth][tls]") {
    auto t = start_tls_daemon(false);
    auto as = [&](const std::string& token) { return t.as(token); };
    const std::string read = new_token_in_use(*t.daemon, as, "read", "tls-read");
    const std::string write = new_token_in_use(*t.daemon, as, "write", "tls-write");

    SECTION("matrix") { check_matrix(as, read, write); }
    SECTION("No plaintext HTTP on the TLS port") {
        client::Url plain = t.url;
        plain.kind = client::Url::Kind::http;
        const Outcome o = call(client::Client(plain, write), "GET", "/healthz");
        CHECK((!o.transport_error.empty() || o.status != 200));
        const Outcome o2 = call(client::Client(plain, write), "GET", "/v1/instances");
        CHECK((!o2.transport_error.empty() || o2.status != 200));
    }
    SECTION("A client that does not trust the test CA refuses the server") {
        const Outcome o = call(client::Client(t.url, write, client::TlsOptions{}), "GET", "/healthz");
        CHECK(!o.transport_error.empty());
    }
    SECTION("A revoked token is refused within about a second") { check_revocation(*t.daemon, as, read, "tls-read"); }
    check_log_hygiene(t.daemon->log(), {t.admin_token, read, write});
}

TEST_CASE("Auth matrix over mutual TLS", "[security][auth][tls]") {
    auto t = start_tls_daemon(true);
    auto as = [&](const std::string& token) { return t.as(token); };
    const std::string read = new_token_in_use(*t.daemon, as, "read", "mtls-read");
    const std::string write = new_token_in_use(*t.daemon, as, "write", "mtls-write");

    SECTION("matrix with the client certificate") { check_matrix(as, read, write); }
    SECTION("Without a client certificate nothing gets through, not even /healthz") {
        client::TlsOptions no_cert;
        no_cert.ca_file = pki().ca_crt.string();
        for (const auto& target : {"/healthz", "/v1/instances"}) {
            const Outcome o = call(client::Client(t.url, write, no_cert), "GET", target);
            INFO(target << ": " << describe(o));
            CHECK(!o.transport_error.empty());
        }
    }
    SECTION("A self-signed client certificate is refused") {
        client::TlsOptions rogue = t.tls;
        rogue.cert_file = pki().rogue_crt.string();
        rogue.key_file = pki().rogue_key.string();
        for (const auto& target : {"/healthz", "/v1/instances"}) {
            const Outcome o = call(client::Client(t.url, write, rogue), "GET", target);
            INFO(target << ": " << describe(o));
            CHECK(!o.transport_error.empty());
        }
    }
    SECTION("A certificate of the CA made for a server (extendedKeyUsage serverAuth) is no client certificate") {
        client::TlsOptions server_as_client = t.tls;
        server_as_client.cert_file = pki().server_crt.string();
        server_as_client.key_file = pki().server_key.string();
        const Outcome o = call(client::Client(t.url, write, server_as_client), "GET", "/v1/instances");
        INFO(describe(o));
        CHECK(!o.transport_error.empty());
    }
    SECTION("The client certificate does not replace the token") {
        CHECK(t.as("").get("/healthz").status == 200);
        CHECK(t.as("").get("/v1/instances").status == 401);
        CHECK(t.as(read).get("/v1/instances").status == 200);
    }
    check_log_hygiene(t.daemon->log(), {t.admin_token, read, write});
}
