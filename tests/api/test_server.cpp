// The HTTP server against a fake backend: transport rules, error format, auth, long-polls and
// the event stream, all on port 0 with the io_context on two threads.

#include "api/event_hub.hpp"
#include "api/json.hpp"
#include "api/routes.hpp"
#include "api/server.hpp"
#include "cli/client.hpp"
#include "config/config.hpp"
#include "tests/support/daemon.hpp"

#include "tests/support/catch.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

using namespace snapvirt;
using namespace snapvirt::api;
using namespace std::chrono_literals;

namespace {

class FakeBackend final : public Backend {
public:
    std::vector<Instance> list_instances() override { return {Instance{"u1", "web1", "running", 64, 1, 0, {}, {}}}; }
    Instance get_instance(const std::string& x) override {
        blocking_thread = std::this_thread::get_id();
        if (x != "web1") throw ApiError(ErrorCode::instance_not_found, "There is no instance '" + x + "'.");
        return list_instances()[0];
    }
    std::vector<Snapshot> list_instance_snapshots(const std::string&) override { return {}; }
    Page<Snapshot> list_snapshots(const SnapshotQuery&) override { return {}; }
    Snapshot get_snapshot(const std::string& id) override {
        throw ApiError(ErrorCode::snapshot_not_found, "There is no snapshot '" + id + "'.");
    }
    CreateSnapshotResult create_snapshot(const std::string& instance, const CreateSnapshotRequest& r) override {
        std::lock_guard lock(mu);
        ++creates;
        Job j;
        j.id = "job-" + std::to_string(creates);
        j.kind = snapvirt::JobKind::create;
        j.instance = {"u1", instance};
        jobs[j.id] = j;
        Snapshot s;
        s.id = "snap-" + std::to_string(creates);
        s.mode = r.mode;
        return {j, s};
    }
    Snapshot edit_snapshot(const std::string& id, const EditSnapshotRequest&) override { return get_snapshot(id); }
    Job revert_snapshot(const std::string& id, const RevertRequest&) override { get_snapshot(id); return {}; }
    Job delete_snapshot(const std::string& id, bool) override { get_snapshot(id); return {}; }
    Page<Job> list_jobs(const JobQuery&) override { return {}; }
    Job get_job(const std::string& id) override {
        std::lock_guard lock(mu);
        auto it = jobs.find(id);
        if (it == jobs.end()) throw ApiError(ErrorCode::job_not_found, "There is no job '" + id + "'.");
        return it->second;
    }
    Job cancel_job(const std::string& id) override { return get_job(id); }
    std::vector<Schedule> list_instance_schedules(const std::string& instance) override {
        if (instance != "web1") throw ApiError(ErrorCode::instance_not_found, "There is no instance '" + instance + "'.");
        std::lock_guard lock(mu);
        std::vector<Schedule> out;
        for (const auto& [id, s] : schedules) out.push_back(s);
        return out;
    }
    Page<Schedule> list_schedules(const ScheduleQuery& q) override {
        std::lock_guard lock(mu);
        last_schedule_query = q;
        Page<Schedule> page;
        for (const auto& [id, s] : schedules) page.items.push_back(s);
        page.next_cursor = "c2";
        return page;
    }
    Schedule get_schedule(const std::string& id) override {
        std::lock_guard lock(mu);
        auto it = schedules.find(id);
        if (it == schedules.end()) throw ApiError(ErrorCode::schedule_not_found, "There is no schedule '" + id + "'.");
        return it->second;
    }
    Schedule create_schedule(const std::string& instance, const ScheduleRequest& r) override {
        blocking_thread = std::this_thread::get_id();
        std::lock_guard lock(mu);
        Schedule s;
        s.id = "sched-" + std::to_string(++schedule_creates);
        s.instance = {"u1", instance};
        s.name = *r.name;
        s.cron = *r.cron;
        s.mode = *r.mode;
        s.stopped.shutdown_timeout_s = r.shutdown_timeout_s;
        s.stopped.force_stop = r.force_stop.value_or(false);
        s.keep_last = r.keep_last.value_or(std::nullopt);
        s.max_age = r.max_age.value_or(std::nullopt);
        s.next_run_at = 1795744800000;  // 2026-11-27T02:00:00.000Z
        s.created_at = s.updated_at = 1795700000123;
        schedules[s.id] = s;
        return s;
    }
    Schedule edit_schedule(const std::string& id, const ScheduleRequest& r) override {
        Schedule s = get_schedule(id);
        std::lock_guard lock(mu);
        if (r.enabled) s.enabled = *r.enabled;
        if (!s.enabled) s.next_run_at.reset();
        if (r.keep_last) s.keep_last = *r.keep_last;
        return schedules[id] = s;
    }
    void delete_schedule(const std::string& id, bool with_snapshots) override {
        get_schedule(id);
        std::lock_guard lock(mu);
        schedules.erase(id);
        deleted_with_snapshots = with_snapshots;
    }
    Readiness readiness() override { return {ready, ready ? "" : "libvirt is unreachable: test."}; }
    Host host() override {
        Host h;
        h.hostname = "hv1";
        h.libvirt_version = "9.0.0";
        h.qemu_version = "7.2.0";
        h.snapvirt_version = "0.1.0";
        h.stale = !ready;
        h.capabilities = {{snapvirt::SnapshotMode::memory, snapvirt::SnapshotMode::stopped},
                          {snapvirt::SnapshotMethod::internal}, false};
        return h;
    }
    std::optional<StoredResponse> find_idempotent(const std::string& key) override {
        std::lock_guard lock(mu);
        auto it = idem.find(key);
        if (it == idem.end()) return std::nullopt;
        return it->second;
    }
    void remember_idempotent(const std::string& key, const StoredResponse& r) override {
        std::lock_guard lock(mu);
        idem[key] = r;
    }
    Scope authenticate(const std::string& token) override {
        if (token == "r-token") return reader_revoked ? Scope::none : Scope::read;
        if (token == "w-token") return Scope::write;
        return Scope::none;
    }

    void finish(const std::string& id, EventHub& hub) {
        Job j;
        {
            std::lock_guard lock(mu);
            jobs[id].state = snapvirt::JobState::succeeded;
            j = jobs[id];
        }
        hub.job_updated(j);
    }

    std::mutex mu;
    std::map<std::string, Job> jobs;
    std::map<std::string, StoredResponse> idem;
    std::map<std::string, Schedule> schedules;
    ScheduleQuery last_schedule_query;
    std::optional<bool> deleted_with_snapshots;
    int schedule_creates = 0;
    int creates = 0;
    std::atomic<bool> ready{true};
    std::atomic<bool> reader_revoked{false};
    std::thread::id blocking_thread;
};

struct Fixture {
    explicit Fixture(ServerOptions opts = {}) {
        socket_dir = test::make_temp_dir("snapvirt-unit");
        if (opts.endpoints.empty()) {
            opts.endpoints.push_back(Endpoint{Endpoint::Kind::tcp, "127.0.0.1", 0, "", false});
            opts.endpoints.push_back(Endpoint{Endpoint::Kind::unix_socket, "", 0, (socket_dir / "s.sock").string(), false});
        }
        opts.io_threads = 2;
        opts.heartbeat = 1s;
        RouteOptions ro;
        ro.version = "test";
        ro.metrics = [this] { return metrics.render(); };
        add_routes(router, backend, ro);
        server = std::make_unique<Server>(opts, router, backend, hub, metrics);
        server->start();
        url = client::Url::parse(server->endpoints().at(0));
    }
    ~Fixture() {
        server->stop();
        std::filesystem::remove_all(socket_dir);
    }
    client::Client as(const std::string& token = "w-token") const { return client::Client(url, token); }
    client::Client unix() const { return client::Client(client::Url::parse("unix:" + (socket_dir / "s.sock").string())); }

    FakeBackend backend;
    EventHub hub;
    Metrics metrics;
    Router router;
    std::unique_ptr<Server> server;
    client::Url url;
    std::filesystem::path socket_dir;
};

std::string error_code(const client::Response& r) { return r.json()["error"]["code"]; }

}  // namespace

TEST_CASE("Unknown paths, wrong methods and bad bodies get the contract's JSON errors", "[server]") {
    Fixture f;
    auto c = f.as();
    auto r = c.get("/v1/nothing");
    CHECK(r.status == 404);
    CHECK(error_code(r) == "not_found");
    CHECK(*r.header("content-type") == "application/json");

    r = c.send("PUT", "/v1/instances", "", {});
    CHECK(r.status == 405);
    CHECK(error_code(r) == "method_not_allowed");
    CHECK(*r.header("allow") == "GET");

    r = c.send("POST", "/v1/instances/web1/snapshots", "{\"mode\": mem", {{"Content-Type", "application/json"}});
    CHECK(r.status == 400);
    CHECK(error_code(r) == "invalid_json");
    CHECK(r.json()["error"]["details"]["offset"] == 10);

    r = c.send("POST", "/v1/instances/web1/snapshots", "mode=memory", {{"Content-Type", "application/x-www-form-urlencoded"}});
    CHECK(r.status == 415);
    CHECK(error_code(r) == "unsupported_media_type");

    r = c.post("/v1/instances/web1/snapshots", {{"mode", "memory"}, {"nmae", "x"}});
    CHECK(r.status == 400);
    CHECK(error_code(r) == "unknown_field");
    CHECK(r.json()["error"]["details"]["field"] == "nmae");

    r = c.post("/v1/instances/web1/snapshots", {{"mode", "memory"}, {"name", "bad name"}});
    CHECK(r.status == 400);
    CHECK(error_code(r) == "invalid_request");
    CHECK(r.json()["error"]["details"]["field"] == "name");
    CHECK(f.backend.creates == 0);

    r = c.get("/v1/snapshots?limit=5000");
    CHECK(r.status == 400);
    CHECK(r.json()["error"]["details"]["field"] == "limit");
}

TEST_CASE("Bodies over the limit get 413 and oversized headers 431", "[server]") {
    ServerOptions o;
    o.max_body_bytes = 1024;
    o.max_header_bytes = 2048;
    Fixture f(o);
    auto c = f.as();
    const std::string big = "{\"mode\":\"memory\",\"description\":\"" + std::string(2000, 'x') + "\"}";
    auto r = c.send("POST", "/v1/instances/web1/snapshots", big, {{"Content-Type", "application/json"}});
    CHECK(r.status == 413);
    CHECK(error_code(r) == "body_too_large");
    CHECK(f.backend.creates == 0);

    r = c.get("/v1/instances", {{"X-Padding", std::string(4000, 'p')}});
    CHECK(r.status == 431);
}

TEST_CASE("Expect: 100-continue is honoured", "[server]") {
    Fixture f;
    client::Connection conn(f.url);
    const std::string body = "{\"mode\":\"memory\"}";
    conn.send_raw("POST /v1/instances/web1/snapshots HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer w-token\r\n"
                  "Content-Type: application/json\r\nExpect: 100-continue\r\nConnection: close\r\nContent-Length: " +
                  std::to_string(body.size()) + "\r\n\r\n");
    const std::string interim = conn.read_raw(300ms);
    CHECK(interim.rfind("HTTP/1.1 100 Continue", 0) == 0);
    conn.send_raw(body);
    CHECK(conn.read_raw(5s).find("HTTP/1.1 202 Accepted") != std::string::npos);
}

TEST_CASE("Tokens on TCP: none, read and write scopes", "[server][auth]") {
    Fixture f;
    CHECK(f.as("").get("/healthz").status == 200);
    auto r = f.as("").get("/v1/instances");
    CHECK(r.status == 401);
    CHECK(error_code(r) == "unauthenticated");
    CHECK(r.header("www-authenticate") != nullptr);
    CHECK(f.as("wrong").get("/v1/instances").status == 401);
    CHECK(f.as("r-token").get("/v1/instances").status == 200);
    r = f.as("r-token").post("/v1/instances/web1/snapshots", {{"mode", "memory"}});
    CHECK(r.status == 403);
    CHECK(error_code(r) == "forbidden");
    CHECK(f.backend.creates == 0);
    CHECK(f.as("w-token").post("/v1/instances/web1/snapshots", {{"mode", "memory"}}).status == 202);
}

TEST_CASE("The Unix socket needs no token and is created with mode 0660", "[server][auth]") {
    Fixture f;
    struct stat st {};
    REQUIRE(::stat((f.socket_dir / "s.sock").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0660);
    CHECK(f.unix().get("/v1/instances").status == 200);
    CHECK(f.unix().post("/v1/instances/web1/snapshots", {{"mode", "memory"}}).status == 202);
}

TEST_CASE("Blocking handlers run off the I/O threads", "[server]") {
    Fixture f;
    auto r = f.as().get("/v1/instances/web1");
    CHECK(r.status == 200);
    CHECK(r.json()["name"] == "web1");
    CHECK(f.backend.blocking_thread != std::thread::id());
    CHECK(f.as().get("/v1/instances/nope").status == 404);
}

TEST_CASE("readyz answers 503 with the reason", "[server]") {
    Fixture f;
    f.backend.ready = false;
    auto r = f.as("").get("/readyz");
    CHECK(r.status == 503);
    CHECK(error_code(r) == "hypervisor_unavailable");
    CHECK_THAT(r.json()["error"]["message"].get<std::string>(), Catch::Contains("unreachable"));
}

TEST_CASE("GET /v1/host answers the backend's host with a read token, also while libvirt is away", "[server]") {
    Fixture f;
    CHECK(f.as("").get("/v1/host").status == 401);
    auto r = f.as("r-token").get("/v1/host");
    REQUIRE(r.status == 200);
    const auto host = r.json();
    CHECK(host["hostname"] == "hv1");
    CHECK(host["libvirt_version"] == "9.0.0");
    CHECK(host["qemu_version"] == "7.2.0");
    CHECK(host["snapvirt_version"] == "0.1.0");
    CHECK(host["stale"] == false);
    CHECK(host["capabilities"] == nlohmann::json{{"modes", {"memory", "stopped"}}, {"methods", {"internal"}},
                                                 {"external_revert", false}});
    f.backend.ready = false;
    r = f.as().get("/v1/host");
    REQUIRE(r.status == 200);
    CHECK(r.json()["stale"] == true);
}

TEST_CASE("A job long-poll answers as soon as the job ends", "[server]") {
    Fixture f;
    const auto created = f.as().post("/v1/instances/web1/snapshots", {{"mode", "memory"}}).json();
    const std::string id = created["job"]["id"];
    std::thread finisher([&] {
        std::this_thread::sleep_for(300ms);
        f.backend.finish(id, f.hub);
    });
    const auto t0 = std::chrono::steady_clock::now();
    auto r = f.as().get("/v1/jobs/" + id + "?wait=10");
    const auto took = std::chrono::steady_clock::now() - t0;
    finisher.join();
    CHECK(r.status == 200);
    CHECK(r.json()["state"] == "succeeded");
    CHECK(took >= 250ms);
    CHECK(took < 5s);

    // A wait on a job that does not end answers after the wait.
    const auto other = f.as().post("/v1/instances/web1/snapshots", {{"mode", "memory"}}).json();
    const auto t1 = std::chrono::steady_clock::now();
    r = f.as().get("/v1/jobs/" + other["job"]["id"].get<std::string>() + "?wait=1");
    CHECK(r.json()["state"] == "queued");
    CHECK(std::chrono::steady_clock::now() - t1 >= 900ms);
    CHECK(f.as().get("/v1/jobs/x?wait=61").status == 400);
}

TEST_CASE("Idempotency-Key replays the first answer and refuses a different body", "[server]") {
    Fixture f;
    auto c = f.as();
    auto first = c.post("/v1/instances/web1/snapshots", {{"mode", "memory"}}, {{"Idempotency-Key", "k1"}});
    auto again = c.post("/v1/instances/web1/snapshots", {{"mode", "memory"}}, {{"Idempotency-Key", "k1"}});
    CHECK(first.status == 202);
    CHECK(again.status == 202);
    CHECK(again.body == first.body);
    CHECK(*again.header("location") == *first.header("location"));
    CHECK(f.backend.creates == 1);
    auto other = c.post("/v1/instances/web1/snapshots", {{"mode", "stopped"}}, {{"Idempotency-Key", "k1"}});
    CHECK(other.status == 409);
    CHECK(error_code(other) == "idempotency_conflict");
    CHECK(f.backend.creates == 1);
}

TEST_CASE("The event stream delivers events with ids and resumes after Last-Event-ID", "[server][events]") {
    Fixture f;
    client::Connection stream(f.url);
    auto head = stream.open_stream("/v1/events", {{"Authorization", "Bearer r-token"}});
    REQUIRE(head.status == 200);
    CHECK(head.header("content-type")->find("text/event-stream") == 0);
    Job j;
    j.id = "j-1";
    f.hub.job_updated(j);
    auto ev = stream.next_event(5s);
    REQUIRE(ev);
    CHECK(ev->type == "job.updated");
    CHECK(nlohmann::json::parse(ev->data)["id"] == "j-1");
    const std::string first_id = ev->id;

    j.id = "j-2";
    f.hub.job_updated(j);
    j.id = "j-3";
    f.hub.job_updated(j);
    client::Connection resumed(f.url);
    REQUIRE(resumed.open_stream("/v1/events", {{"Authorization", "Bearer r-token"}, {"Last-Event-ID", first_id}}).status == 200);
    auto a = resumed.next_event(5s);
    auto b = resumed.next_event(5s);
    REQUIRE(a);
    REQUIRE(b);
    CHECK(nlohmann::json::parse(a->data)["id"] == "j-2");
    CHECK(nlohmann::json::parse(b->data)["id"] == "j-3");
}

TEST_CASE("A consumer that falls behind is dropped without blocking publishers", "[server][events]") {
    EventHub hub(16, 8);
    std::atomic<int> notified{0};
    auto sub = hub.subscribe([&] { ++notified; });
    for (int i = 0; i < 20; ++i) hub.publish("job.updated", "{}");
    CHECK(sub->overflowed());
    CHECK(notified >= 8);
    hub.unsubscribe(sub);
    CHECK(hub.subscriber_count() == 0);
}

TEST_CASE("200 idle connections do not stop a normal request", "[server][limits]") {
    ServerOptions o;
    o.header_timeout = 3s;
    Fixture f(o);
    std::vector<int> idle;
    for (int i = 0; i < 200; ++i) {
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(f.url.port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        idle.push_back(fd);
    }
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(f.as().get("/v1/instances").status == 200);
    CHECK(std::chrono::steady_clock::now() - t0 < 2s);
    // The header deadline closes the idle ones.
    std::this_thread::sleep_for(4s);
    char byte;
    int closed = 0;
    for (int fd : idle) {
        if (::recv(fd, &byte, 1, MSG_DONTWAIT) == 0) ++closed;
        ::close(fd);
    }
    CHECK(closed == 200);
}

TEST_CASE("The connection cap refuses extra connections with 503", "[server][limits]") {
    ServerOptions o;
    o.max_connections = 3;
    Fixture f(o);
    std::vector<std::unique_ptr<client::Connection>> held;
    for (int i = 0; i < 3; ++i) held.push_back(std::make_unique<client::Connection>(f.url));
    std::this_thread::sleep_for(200ms);
    auto r = f.as().get("/v1/instances");
    CHECK(r.status == 503);
    CHECK(error_code(r) == "too_many_connections");
    held.clear();
    CHECK(test::eventually([&] { return f.as().get("/v1/instances").status == 200; }, 3s));
}

TEST_CASE("Requests are counted in the metrics", "[server][metrics]") {
    Fixture f;
    f.as().get("/v1/instances");
    f.as().get("/v1/nothing");
    const std::string text = f.as().get("/metrics").body;
    CHECK_THAT(text, Catch::Contains("snapvirt_http_requests_total{method=\"GET\",route=\"/v1/instances\",status=\"200\"} 1"));
    CHECK_THAT(text, Catch::Contains("route=\"unmatched\",status=\"404\"} 1"));
    CHECK_THAT(text, Catch::Contains("snapvirt_http_request_duration_seconds_bucket"));
}

TEST_CASE("The request id is echoed and generated when absent", "[server]") {
    Fixture f;
    auto r = f.as().get("/healthz", {{"X-Request-Id", "abc-123"}});
    CHECK(*r.header("x-request-id") == "abc-123");
    r = f.as().get("/healthz");
    CHECK(r.header("x-request-id")->size() >= 8);
}

TEST_CASE("Cacheable reads are reused only while the generation stays the same", "[server][cache]") {
    struct Counting final : public Backend {
        std::atomic<int> lists{0};
        std::atomic<std::uint64_t> gen{1};
        std::vector<Instance> list_instances() override {
            ++lists;
            return {Instance{"u" + std::to_string(gen.load()), "web1", "running", 64, 1, 0, {}, {}}};
        }
        Instance get_instance(const std::string&) override { return {}; }
        std::vector<Snapshot> list_instance_snapshots(const std::string&) override { return {}; }
        Page<Snapshot> list_snapshots(const SnapshotQuery&) override { return {}; }
        Snapshot get_snapshot(const std::string&) override { return {}; }
        CreateSnapshotResult create_snapshot(const std::string&, const CreateSnapshotRequest&) override { return {}; }
        Snapshot edit_snapshot(const std::string&, const EditSnapshotRequest&) override { return {}; }
        Job revert_snapshot(const std::string&, const RevertRequest&) override { return {}; }
        Job delete_snapshot(const std::string&, bool) override { return {}; }
        Page<Job> list_jobs(const JobQuery&) override { return {}; }
        Job get_job(const std::string&) override { return {}; }
        Job cancel_job(const std::string&) override { return {}; }
        std::vector<Schedule> list_instance_schedules(const std::string&) override { return {}; }
        Page<Schedule> list_schedules(const ScheduleQuery&) override { return {}; }
        Schedule get_schedule(const std::string&) override { return {}; }
        Schedule create_schedule(const std::string&, const ScheduleRequest&) override { return {}; }
        Schedule edit_schedule(const std::string&, const ScheduleRequest&) override { return {}; }
        void delete_schedule(const std::string&, bool) override {}
        Readiness readiness() override { return {true, ""}; }
        Host host() override { return {}; }
        std::optional<StoredResponse> find_idempotent(const std::string&) override { return std::nullopt; }
        void remember_idempotent(const std::string&, const StoredResponse&) override {}
        Scope authenticate(const std::string&) override { return Scope::write; }
        std::uint64_t generation() override { return gen; }
    } backend;
    EventHub hub;
    Metrics metrics;
    Router router;
    add_routes(router, backend, RouteOptions{});
    ServerOptions o;
    o.endpoints.push_back(Endpoint{Endpoint::Kind::tcp, "127.0.0.1", 0, "", false});
    Server server(o, router, backend, hub, metrics);
    server.start();
    client::Client c(client::Url::parse(server.endpoints().at(0)), "t");
    const auto first = c.get("/v1/instances").body;
    CHECK(c.get("/v1/instances").body == first);
    CHECK(backend.lists == 1);
    CHECK(c.get("/v1/instances?").status == 200);  // another target is another entry
    CHECK(backend.lists == 2);
    backend.gen = 2;
    const auto second = c.get("/v1/instances").body;
    CHECK(second != first);
    CHECK(backend.lists == 3);
    server.stop();
}

TEST_CASE("A request stalled in its headers is disconnected at the header deadline", "[server][limits]") {
    ServerOptions o;
    o.header_timeout = 1s;
    Fixture f(o);
    client::Connection partial(f.url);
    partial.send_raw("GET /v1/instances HTTP/1.1\r\nHost: x\r\n");
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(partial.read_raw(5s).empty());  // closed, not answered
    CHECK(std::chrono::steady_clock::now() - t0 < 3s);
}

TEST_CASE("Two requests with one Idempotency-Key at once: one runs, the other is told to retry", "[server]") {
    Fixture f;
    std::atomic<int> conflicts{0}, accepted{0};
    std::vector<std::thread> clients;
    for (int i = 0; i < 8; ++i)
        clients.emplace_back([&] {
            auto r = f.as().post("/v1/instances/web1/snapshots", {{"mode", "memory"}}, {{"Idempotency-Key", "race"}});
            if (r.status == 202) ++accepted;
            if (r.status == 409) ++conflicts;
        });
    for (auto& t : clients) t.join();
    // Every answer is either the one job (first or replayed) or "still being answered".
    CHECK(accepted + conflicts == 8);
    CHECK(f.backend.creates == 1);
}

namespace {

// Everything the server sends on a fresh connection for `bytes`, until it closes.
std::string raw_exchange(const client::Url& url, const std::string& bytes) {
    client::Connection c(url, {}, 3s);
    c.send_raw(bytes);
    try {
        return c.read_raw(3s);
    } catch (const client::TransportError&) {
        return {};
    }
}

}  // namespace

TEST_CASE("Framing per RFC 9112: Transfer-Encoding, Host and Authorization", "[server][framing]") {
    Fixture f;
    const std::string inner = "GET /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer w-token\r\n\r\n";
    for (const std::string te : {"gzip", "identity", "xchunked", "chunked, identity"}) {
        INFO(te);
        const std::string answer = raw_exchange(
            f.url, "POST /v1/jobs/x/cancel HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer w-token\r\nTransfer-Encoding: " + te +
                       "\r\n\r\n" + inner);
        CHECK(answer.rfind("HTTP/1.1 400", 0) == 0);
        CHECK(answer.find("\"field\":\"Transfer-Encoding\"") != std::string::npos);
        CHECK(answer.find("HTTP/1.1 ", 1) == std::string::npos);
    }
    CHECK(raw_exchange(f.url, "GET /healthz HTTP/1.1\r\n\r\n").rfind("HTTP/1.1 400", 0) == 0);
    CHECK(raw_exchange(f.url, "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").rfind("HTTP/1.1 400", 0) == 0);
    const std::string two_auth = raw_exchange(
        f.url, "GET /v1/instances HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer w-token\r\nAuthorization: Bearer r-token\r\n\r\n");
    CHECK(two_auth.rfind("HTTP/1.1 400", 0) == 0);
    CHECK(two_auth.find("\"field\":\"Authorization\"") != std::string::npos);
    // Exactly one chunked is fine, and so is HTTP/1.0 without a Host.
    CHECK(raw_exchange(f.url, "GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n")
              .rfind("HTTP/1.1 200", 0) == 0);
    CHECK(raw_exchange(f.url, "GET /healthz HTTP/1.0\r\n\r\n").rfind("HTTP/1.1 200", 0) == 0);
}

TEST_CASE("A revoked token's busy event stream ends within a second", "[server][events][auth]") {
    Fixture f;
    client::Connection stream(f.url);
    REQUIRE(stream.open_stream("/v1/events", {{"Authorization", "Bearer r-token"}}).status == 200);
    std::atomic<bool> done{false};
    std::thread publisher([&] {
        for (int i = 0; !done; ++i) {
            Job j;
            j.id = "busy-" + std::to_string(i);
            f.hub.job_updated(j);
            std::this_thread::sleep_for(20ms);
        }
    });
    for (int i = 0; i < 3; ++i) CHECK(stream.next_event(5s).has_value());
    f.backend.reader_revoked = true;
    const auto t0 = std::chrono::steady_clock::now();
    bool ended = false;
    while (!ended && std::chrono::steady_clock::now() - t0 < 5s) {
        try {
            stream.next_event(100ms);
        } catch (const client::TransportError&) {
            ended = true;
        }
    }
    done = true;
    publisher.join();
    CHECK(ended);
    CHECK(std::chrono::steady_clock::now() - t0 < 1s);
}

TEST_CASE("A quiet event stream notices a revoked token within a second too", "[server][events][auth]") {
    ServerOptions o;
    Fixture f(o);
    client::Connection stream(f.url);
    REQUIRE(stream.open_stream("/v1/events", {{"Authorization", "Bearer r-token"}}).status == 200);
    f.backend.reader_revoked = true;
    const auto t0 = std::chrono::steady_clock::now();
    bool ended = false;
    while (!ended && std::chrono::steady_clock::now() - t0 < 5s) {
        try {
            stream.next_event(100ms);
        } catch (const client::TransportError&) {
            ended = true;
        }
    }
    CHECK(ended);
    CHECK(std::chrono::steady_clock::now() - t0 < 2s);
}

TEST_CASE("The Unix socket has a connection budget of its own", "[server][limits]") {
    ServerOptions o;
    o.max_connections = 3;
    Fixture f(o);
    std::vector<std::unique_ptr<client::Connection>> held;
    for (int i = 0; i < 3; ++i) held.push_back(std::make_unique<client::Connection>(f.url));
    std::this_thread::sleep_for(200ms);
    CHECK(f.as().get("/v1/instances").status == 503);
    CHECK(f.unix().get("/v1/instances").status == 200);
}

TEST_CASE("Under a spent budget an idle unproven connection gives its place to a new one", "[server][limits]") {
    ServerOptions o;
    o.max_connections = 3;
    o.evict_unproven_after = 300ms;
    Fixture f(o);
    // One proven connection (a request with a token), kept open.
    client::Connection proven(f.url);
    CHECK(proven.request("GET", "/v1/instances", "", {{"Authorization", "Bearer r-token"}}).status == 200);
    std::vector<std::unique_ptr<client::Connection>> idle;
    for (int i = 0; i < 2; ++i) idle.push_back(std::make_unique<client::Connection>(f.url));
    std::this_thread::sleep_for(500ms);
    CHECK(f.as().get("/v1/instances").status == 200);
    CHECK(f.as().get("/v1/instances").status == 200);
    // The proven one was not the one to go.
    CHECK(proven.request("GET", "/v1/instances", "", {{"Authorization", "Bearer r-token"}}).status == 200);
}

TEST_CASE("Per client address, TCP connections are capped", "[server][limits]") {
    ServerOptions o;
    o.max_connections_per_client = 2;
    o.evict_unproven_after = 60s;
    Fixture f(o);
    std::vector<std::unique_ptr<client::Connection>> held;
    for (int i = 0; i < 2; ++i) held.push_back(std::make_unique<client::Connection>(f.url));
    std::this_thread::sleep_for(200ms);
    const auto r = f.as().get("/v1/instances");
    CHECK(r.status == 503);
    CHECK(error_code(r) == "too_many_connections");
    held.clear();
    CHECK(test::eventually([&] { return f.as().get("/v1/instances").status == 200; }, 3s));
}

TEST_CASE("A schedule is made with 201, a Location and the contract's JSON, once per Idempotency-Key", "[server][schedules]") {
    Fixture f;
    auto c = f.as();
    const nlohmann::json body = {{"name", "nightly"}, {"cron", "0 2 * * *"}, {"mode", "memory"}, {"keep_last", 7}};
    auto r = c.post("/v1/instances/web1/schedules", body, {{"Idempotency-Key", "s1"}});
    REQUIRE(r.status == 201);
    CHECK(*r.header("location") == "/v1/schedules/sched-1");
    CHECK(f.backend.blocking_thread != std::thread::id());
    const auto s = r.json();
    CHECK(s["id"] == "sched-1");
    CHECK(s["instance"] == nlohmann::json{{"uuid", "u1"}, {"name", "web1"}});
    CHECK(s["name"] == "nightly");
    CHECK(s["cron"] == "0 2 * * *");
    CHECK(s["timezone"] == "UTC");
    CHECK(s["mode"] == "memory");
    // The stopped options mean nothing for memory mode.
    CHECK(s["shutdown_timeout_s"].is_null());
    CHECK(s["force_stop"].is_null());
    CHECK(s["keep_stopped"].is_null());
    CHECK(s["display_name_template"] == snapvirt::config::ScheduleConfig::default_display_name_template);
    CHECK(s["keep_last"] == 7);
    CHECK(s["max_age"].is_null());
    CHECK(s["jitter_s"] == 0);
    CHECK(s["enabled"] == true);
    CHECK(s["next_run_at"] == "2026-11-27T02:00:00.000Z");
    CHECK(s["last_run"].is_null());
    CHECK(s["created_at"] == "2026-11-26T13:33:20.123Z");
    CHECK(s["updated_at"] == s["created_at"]);

    auto again = c.post("/v1/instances/web1/schedules", body, {{"Idempotency-Key", "s1"}});
    CHECK(again.status == 201);
    CHECK(again.body == r.body);
    CHECK(*again.header("location") == "/v1/schedules/sched-1");
    CHECK(again.header("idempotent-replayed"));
    CHECK(f.backend.schedule_creates == 1);

    auto stopped = c.post("/v1/instances/web1/schedules", {{"name", "cold"}, {"cron", "@daily"}, {"mode", "stopped"},
                                                           {"force_stop", true}, {"max_age", "4w"}});
    REQUIRE(stopped.status == 201);
    CHECK(stopped.json()["shutdown_timeout_s"].is_null());  // unset: the configuration's default
    CHECK(stopped.json()["force_stop"] == true);
    CHECK(stopped.json()["keep_stopped"] == false);
    CHECK(stopped.json()["keep_last"].is_null());
    CHECK(stopped.json()["max_age"] == "4w");

    auto bad = c.post("/v1/instances/web1/schedules", {{"name", "x"}, {"cron", "@daily"}, {"mode", "memory"}});
    CHECK(bad.status == 400);
    CHECK(bad.json()["error"]["details"]["field"] == "keep_last");
    CHECK(f.backend.schedule_creates == 2);
}

TEST_CASE("Schedules are read, changed and deleted by id", "[server][schedules]") {
    Fixture f;
    auto c = f.as();
    REQUIRE(c.post("/v1/instances/web1/schedules",
                   {{"name", "hourly"}, {"cron", "@hourly"}, {"mode", "memory"}, {"keep_last", 24}})
                .status == 201);
    auto list = c.get("/v1/instances/web1/schedules");
    REQUIRE(list.status == 200);
    REQUIRE(list.json()["items"].size() == 1);
    CHECK(list.json()["items"][0]["name"] == "hourly");
    CHECK(list.json().size() == 1);  // unpaged: no next_cursor
    CHECK(c.get("/v1/instances/nope/schedules").status == 404);
    CHECK(c.get("/v1/instances/web1/schedules?limit=5").status == 400);

    auto page = c.get("/v1/schedules?instance=web1&limit=1&cursor=c1");
    REQUIRE(page.status == 200);
    CHECK(page.json()["next_cursor"] == "c2");
    CHECK(page.json()["items"].size() == 1);
    CHECK(f.backend.last_schedule_query.instance == "web1");
    CHECK(f.backend.last_schedule_query.limit == 1u);
    CHECK(f.backend.last_schedule_query.cursor == "c1");
    REQUIRE(c.get("/v1/schedules").status == 200);
    CHECK(f.backend.last_schedule_query.limit == 100u);
    CHECK(c.get("/v1/schedules?limit=1001").json()["error"]["details"]["field"] == "limit");
    CHECK(c.get("/v1/schedules?state=ready").json()["error"]["details"]["field"] == "state");

    CHECK(c.get("/v1/schedules/sched-1").json()["name"] == "hourly");
    auto missing = c.get("/v1/schedules/nope");
    CHECK(missing.status == 404);
    CHECK(error_code(missing) == "schedule_not_found");
    CHECK(c.send("HEAD", "/v1/schedules/sched-1", "", {}).status == 200);

    auto edited = c.patch("/v1/schedules/sched-1", {{"enabled", false}, {"keep_last", nullptr}});
    REQUIRE(edited.status == 200);
    CHECK(edited.json()["enabled"] == false);
    CHECK(edited.json()["next_run_at"].is_null());
    CHECK(edited.json()["keep_last"].is_null());
    CHECK(error_code(c.patch("/v1/schedules/sched-1", nlohmann::json::object())) == "invalid_request");
    CHECK(error_code(c.patch("/v1/schedules/sched-1", {{"cron", nullptr}})) == "invalid_request");
    CHECK(error_code(c.patch("/v1/schedules/sched-1", {{"nmae", "x"}})) == "unknown_field");
    CHECK(error_code(c.patch("/v1/schedules/nope", {{"enabled", true}})) == "schedule_not_found");

    auto not_allowed = c.send("PUT", "/v1/schedules/sched-1", "{}", {});
    CHECK(not_allowed.status == 405);
    CHECK(*not_allowed.header("allow") == "GET, PATCH, DELETE");
    CHECK(*c.send("DELETE", "/v1/instances/web1/schedules", "", {}).header("allow") == "GET, POST");
    CHECK(c.send("POST", "/v1/schedules", "{}", {}).status == 405);

    CHECK(error_code(c.del("/v1/schedules/sched-1?snapshots=maybe")) == "invalid_request");
    CHECK(error_code(c.send("DELETE", "/v1/schedules/sched-1", "{}", {{"Content-Type", "application/json"}})) ==
          "invalid_request");
    auto deleted = c.del("/v1/schedules/sched-1?snapshots=true");
    CHECK(deleted.status == 204);
    CHECK(deleted.body.empty());
    CHECK(deleted.header("content-length") == nullptr);
    CHECK(f.backend.deleted_with_snapshots == true);
    // The connection goes on after a 204: the next answer is read whole.
    client::Connection conn(f.url);
    REQUIRE(c.post("/v1/instances/web1/schedules", {{"name", "b"}, {"cron", "@daily"}, {"mode", "memory"}, {"max_age", "7d"}})
                .status == 201);
    CHECK(conn.request("DELETE", "/v1/schedules/sched-2", "", {{"Authorization", "Bearer w-token"}}).status == 204);
    CHECK(f.backend.deleted_with_snapshots == false);
    CHECK(conn.request("GET", "/v1/schedules/sched-2", "", {{"Authorization", "Bearer w-token"}}).status == 404);
}

TEST_CASE("Schedules are read with the read scope and changed with the write scope only", "[server][schedules][auth]") {
    Fixture f;
    REQUIRE(f.as().post("/v1/instances/web1/schedules",
                        {{"name", "n"}, {"cron", "@daily"}, {"mode", "memory"}, {"keep_last", 1}})
                .status == 201);
    auto reader = f.as("r-token");
    CHECK(reader.get("/v1/instances/web1/schedules").status == 200);
    CHECK(reader.get("/v1/schedules").status == 200);
    CHECK(reader.get("/v1/schedules/sched-1").status == 200);
    CHECK(error_code(reader.post("/v1/instances/web1/schedules",
                                 {{"name", "m"}, {"cron", "@daily"}, {"mode", "memory"}, {"keep_last", 1}})) == "forbidden");
    CHECK(error_code(reader.patch("/v1/schedules/sched-1", {{"enabled", false}})) == "forbidden");
    CHECK(error_code(reader.del("/v1/schedules/sched-1")) == "forbidden");
    CHECK(f.as("").get("/v1/schedules").status == 401);
    CHECK(f.backend.schedule_creates == 1);
    CHECK(f.backend.schedules.size() == 1);
}

TEST_CASE("Schedule events reach the event stream with the contract's data", "[server][events][schedules]") {
    Fixture f;
    client::Connection stream(f.url);
    REQUIRE(stream.open_stream("/v1/events", {{"Authorization", "Bearer r-token"}}).status == 200);
    Schedule s;
    s.id = "sched-9";
    s.instance = {"u1", "web1"};
    s.name = "nightly";
    s.cron = "0 2 * * *";
    s.timezone = "Europe/Berlin";
    s.mode = snapvirt::SnapshotMode::stopped;
    s.stopped = {90, true, false};
    s.display_name_template = "{schedule} {date}";
    s.keep_last = 3;
    ScheduleRun run;
    run.slot = 1795744800000;
    run.at = 1795744803500;
    run.job_id = "job-7";
    run.outcome = snapvirt::ScheduleOutcome::failed;
    run.error = snapvirt::ErrorInfo{"snapshot_limit_reached", "Instance 'web1' has 10 snapshots."};
    f.hub.schedule_created(s);
    s.last_run = run;
    f.hub.schedule_run(s, run);
    f.hub.schedule_updated(s);
    f.hub.schedule_deleted(s);

    auto created = stream.next_event(5s);
    REQUIRE(created);
    CHECK(created->type == "schedule.created");
    const auto c = nlohmann::json::parse(created->data);
    CHECK(c["id"] == "sched-9");
    CHECK(c["timezone"] == "Europe/Berlin");
    CHECK(c["mode"] == "stopped");
    CHECK(c["shutdown_timeout_s"] == 90);
    CHECK(c["force_stop"] == true);
    CHECK(c["keep_stopped"] == false);
    CHECK(c["display_name_template"] == "{schedule} {date}");
    CHECK(c["last_run"].is_null());

    auto ran = stream.next_event(5s);
    REQUIRE(ran);
    CHECK(ran->type == "schedule.run");
    CHECK(nlohmann::json::parse(ran->data) ==
          nlohmann::json{{"schedule_id", "sched-9"},
                         {"instance", {{"uuid", "u1"}, {"name", "web1"}}},
                         {"slot", "2026-11-27T02:00:00.000Z"},
                         {"at", "2026-11-27T02:00:03.500Z"},
                         {"job_id", "job-7"},
                         {"outcome", "failed"},
                         {"error", {{"code", "snapshot_limit_reached"}, {"message", "Instance 'web1' has 10 snapshots."}}}});

    auto updated = stream.next_event(5s);
    REQUIRE(updated);
    CHECK(updated->type == "schedule.updated");
    CHECK(nlohmann::json::parse(updated->data)["last_run"] ==
          nlohmann::json{{"at", "2026-11-27T02:00:03.500Z"},
                         {"slot", "2026-11-27T02:00:00.000Z"},
                         {"job_id", "job-7"},
                         {"outcome", "failed"},
                         {"error", {{"code", "snapshot_limit_reached"}, {"message", "Instance 'web1' has 10 snapshots."}}}});
    auto deleted = stream.next_event(5s);
    REQUIRE(deleted);
    CHECK(deleted->type == "schedule.deleted");
    CHECK(nlohmann::json::parse(deleted->data)["id"] == "sched-9");
}

TEST_CASE("A snapshot names the schedule whose run took it", "[server][schedules]") {
    Snapshot s;
    s.id = "snap-1";
    s.schedule_id = "sched-1";
    auto j = nlohmann::json::parse(json_string(s));
    CHECK(j["schedule_id"] == "sched-1");
    s.schedule_id.reset();
    j = nlohmann::json::parse(json_string(s));
    REQUIRE(j.contains("schedule_id"));
    CHECK(j["schedule_id"].is_null());
}
