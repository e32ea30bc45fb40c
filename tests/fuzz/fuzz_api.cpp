// libFuzzer harness for snapvirtd's request handling, without sockets or coroutines:
//   raw bytes -> Beast's request_parser over a flat_buffer (the server's header and body
//   limits, pipelined requests as on a keep-alive connection) -> api::parse_target ->
//   api::Router::match on the real route table (api::add_routes) -> the matched handler
//   (parse_json_body, FieldReader, the check_* validators, query parsing) against a stub
//   backend that returns canned objects -> the JSON the server would send.
// An input whose first byte is 0xFF skips HTTP framing ("structured" mode): lines give the
// method, the target, the Idempotency-Key and the body, so the fuzzer reaches validation fast.
//
// Findings are crashes: sanitizer reports, and the server's "500 internal" path (any
// exception that is not an api::ApiError, an ApiError with code internal), a response that
// claims JSON but is not, a long-poll that never ends. Beast stays in this file only.

#include "api/errors.hpp"
#include "api/event_hub.hpp"
#include "api/http.hpp"
#include "api/json.hpp"
#include "api/metrics.hpp"
#include "api/router.hpp"
#include "api/routes.hpp"
#include "api/validate.hpp"

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <cstring>
#include <string_view>

namespace {

using namespace snapvirt::api;
namespace beast = boost::beast;
namespace http = beast::http;

// The server's defaults (api/server.hpp ServerOptions).
constexpr std::uint32_t max_header_bytes = 16 * 1024;
constexpr std::uint32_t max_body_bytes = 64 * 1024;

[[noreturn]] void finding(const char* what, const std::string& detail = {}) {
    std::fprintf(stderr, "FINDING: %s %s\n", what, detail.substr(0, 500).c_str());
    std::abort();
}

Instance make_instance(const std::string& name) {
    Instance i;
    i.uuid = "4f2c1a6e-0000-4000-8000-00000000000" + std::to_string(name.size() % 10);
    i.name = name;
    i.state = "running";
    i.memory_mib = 64;
    i.vcpus = 1;
    i.snapshot_count = 2;
    i.current_snapshot_id = "s-" + name;
    return i;
}

Snapshot make_snapshot(const std::string& id, const std::string& instance) {
    Snapshot s;
    s.id = id;
    s.instance = {"4f2c1a6e-0000-4000-8000-000000000001", instance};
    s.name = "snap-" + id;
    s.display_name = "Snapshot " + id;
    s.description = "desc\n\t" + id;
    s.mode = snapvirt::SnapshotMode::memory;
    s.state = snapvirt::SnapshotState::ready;
    s.parent_id = id.empty() ? std::optional<std::string>() : std::optional<std::string>("p-" + id);
    s.created_at = 1'790'000'000'000LL;
    s.size_bytes = 4096;
    s.guest_paused_ms = 12;
    return s;
}

Job make_job(const std::string& id, snapvirt::JobKind kind, snapvirt::JobState state) {
    Job j;
    j.id = id;
    j.kind = kind;
    j.instance = {"4f2c1a6e-0000-4000-8000-000000000001", "web1"};
    j.snapshot_id = "s-" + id;
    j.state = state;
    j.progress = {"saving", 40};
    j.created_at = 1'790'000'000'000LL;
    j.started_at = j.created_at + 5;
    if (j.terminal()) j.finished_at = j.created_at + 50;
    return j;
}

void maybe_missing(const std::string& what, ErrorCode code) {
    if (what.empty() || what == "missing" || what.front() == '!')
        throw ApiError(code, "There is no '" + what + "'.", {{"id", what}});
    if (what == "busy") throw ApiError(ErrorCode::instance_busy, "Busy with '" + what + "'.", {{"job_id", what}});
}

Schedule make_schedule(const std::string& id, const std::string& instance) {
    Schedule s;
    s.id = id;
    s.instance = {"u-" + instance, instance};
    s.name = id;
    s.cron = "*/5 * * * *";
    s.keep_last = 3;
    s.next_run_at = 1'700'000'000'000;
    s.last_run = snapvirt::ScheduleRun{1'699'999'700'000, 1'699'999'701'000, std::string("j1"),
                                       snapvirt::ScheduleOutcome::failed, snapvirt::ErrorInfo{"create_failed", "fuzz"}};
    return s;
}

class StubBackend final : public Backend {
public:
    explicit StubBackend(EventHub& hub) : hub_(hub) {}

    std::vector<Instance> list_instances() override { return {make_instance("web1"), make_instance("db")}; }
    Instance get_instance(const std::string& x) override {
        maybe_missing(x, ErrorCode::instance_not_found);
        return make_instance(x);
    }
    std::vector<Snapshot> list_instance_snapshots(const std::string& x) override {
        maybe_missing(x, ErrorCode::instance_not_found);
        return {make_snapshot("a", x), make_snapshot("b", x)};
    }
    Page<Snapshot> list_snapshots(const SnapshotQuery& q) override {
        Page<Snapshot> p;
        Snapshot s = make_snapshot(q.cursor.value_or("c"), q.instance.value_or("web1"));
        if (q.state) s.state = *q.state;
        if (q.mode) s.mode = *q.mode;
        if (q.q) s.description = *q.q;
        p.items.assign(q.limit % 3, s);
        p.next_cursor = q.cursor;
        return p;
    }
    Snapshot get_snapshot(const std::string& id) override {
        maybe_missing(id, ErrorCode::snapshot_not_found);
        return make_snapshot(id, "web1");
    }
    CreateSnapshotResult create_snapshot(const std::string& instance, const CreateSnapshotRequest& r) override {
        maybe_missing(instance, ErrorCode::instance_not_found);
        if (r.mode != snapvirt::SnapshotMode::memory && r.mode != snapvirt::SnapshotMode::stopped)
            finding("create_snapshot got mode", snapvirt::to_string(r.mode));
        if (r.name && !is_valid_snapshot_name(*r.name)) finding("create_snapshot got name", *r.name);
        Snapshot s = make_snapshot("new", instance);
        s.name = r.name.value_or(instance + "-20260101-000000");
        s.display_name = r.display_name.value_or(s.name);
        s.description = r.description;
        s.mode = r.mode;
        s.state = snapvirt::SnapshotState::creating;
        Job j = make_job("job-new", snapvirt::JobKind::create, snapvirt::JobState::queued);
        hub_.job_updated(j);
        hub_.snapshot_created(s);
        return {j, s};
    }
    Snapshot edit_snapshot(const std::string& id, const EditSnapshotRequest& r) override {
        maybe_missing(id, ErrorCode::snapshot_not_found);
        Snapshot s = make_snapshot(id, "web1");
        if (r.display_name) s.display_name = *r.display_name;
        if (r.description) s.description = *r.description;
        hub_.snapshot_updated(s);
        return s;
    }
    Job revert_snapshot(const std::string& id, const RevertRequest& r) override {
        maybe_missing(id, ErrorCode::snapshot_not_found);
        if (!snapvirt::parse<snapvirt::RevertTarget>(snapvirt::to_string(r.start)))
            finding("revert_snapshot got start", std::to_string(static_cast<int>(r.start)));
        return make_job("job-rev", snapvirt::JobKind::revert, snapvirt::JobState::queued);
    }
    Job delete_snapshot(const std::string& id, bool) override {
        maybe_missing(id, ErrorCode::snapshot_not_found);
        Snapshot s = make_snapshot(id, "web1");
        hub_.snapshot_deleted(s);
        return make_job("job-del", snapvirt::JobKind::delete_, snapvirt::JobState::queued);
    }
    Page<Job> list_jobs(const JobQuery& q) override {
        Page<Job> p;
        p.items.push_back(make_job(q.cursor.value_or("j"), q.kind.value_or(snapvirt::JobKind::create),
                                   q.state.value_or(snapvirt::JobState::running)));
        p.next_cursor = q.cursor;
        return p;
    }
    Job get_job(const std::string& id) override {
        maybe_missing(id, ErrorCode::job_not_found);
        // Ids starting with 'r' are still running: the handler asks for a long-poll.
        return make_job(id, snapvirt::JobKind::create,
                        id.front() == 'r' ? snapvirt::JobState::running : snapvirt::JobState::succeeded);
    }
    Job cancel_job(const std::string& id) override {
        maybe_missing(id, ErrorCode::job_not_found);
        if (id == "saving") throw ApiError(ErrorCode::job_not_cancellable, "Saving memory.");
        return make_job(id, snapvirt::JobKind::create, snapvirt::JobState::cancelled);
    }
    std::vector<Schedule> list_instance_schedules(const std::string& x) override {
        maybe_missing(x, ErrorCode::instance_not_found);
        return {make_schedule("s1", x)};
    }
    Page<Schedule> list_schedules(const ScheduleQuery& q) override {
        Page<Schedule> p;
        p.items = {make_schedule("s1", q.instance.value_or("web1"))};
        if (q.cursor) p.next_cursor = *q.cursor + "x";
        return p;
    }
    Schedule get_schedule(const std::string& id) override {
        maybe_missing(id, ErrorCode::schedule_not_found);
        return make_schedule(id, "web1");
    }
    Schedule create_schedule(const std::string& instance, const ScheduleRequest& r) override {
        maybe_missing(instance, ErrorCode::instance_not_found);
        Schedule s = make_schedule(r.name.value_or("unnamed"), instance);
        if (r.cron) s.cron = *r.cron;  // whatever passed validation is written escaped
        if (r.timezone) s.timezone = *r.timezone;
        if (r.display_name_template) s.display_name_template = *r.display_name_template;
        hub_.schedule_created(s);
        return s;
    }
    Schedule edit_schedule(const std::string& id, const ScheduleRequest& r) override {
        Schedule s = get_schedule(id);
        if (r.enabled) s.enabled = *r.enabled;
        if (r.max_age) s.max_age = *r.max_age;
        hub_.schedule_updated(s);
        return s;
    }
    void delete_schedule(const std::string& id, bool) override { hub_.schedule_deleted(get_schedule(id)); }
    Readiness readiness() override { return {ready_ = !ready_, "libvirt is unreachable: fuzz."}; }
    Host host() override {
        Host h;
        h.hostname = "fuzz\x01host\xff";  // written escaped, never raw
        h.libvirt_version = ready_ ? std::optional<std::string>("11.3.0") : std::nullopt;
        h.snapvirt_version = "0.1.0";
        h.stale = !ready_;
        h.capabilities.modes = {snapvirt::SnapshotMode::memory};
        h.capabilities.methods = {snapvirt::SnapshotMethod::internal, snapvirt::SnapshotMethod::external};
        h.capabilities.external_revert = true;
        return h;
    }
    std::optional<StoredResponse> find_idempotent(const std::string& key) override {
        if (key == "replay") return StoredResponse{"0000", 202, "{\"job\":{}}", "/v1/jobs/x"};
        return std::nullopt;
    }
    void remember_idempotent(const std::string&, const StoredResponse&) override {}
    Scope authenticate(const std::string& token) override {
        return token == "w" ? Scope::write : token == "r" ? Scope::read : Scope::none;
    }

private:
    EventHub& hub_;
    bool ready_ = true;
};

bool is_json_type(const std::string& content_type) { return content_type.rfind("application/json", 0) == 0; }

void check_response(const Response& r, const Request& req) {
    if (r.status < 100 || r.status > 599) finding("status out of range", std::to_string(r.status));
    if (is_json_type(r.content_type) && !r.body.empty() && !nlohmann::json::accept(r.body))
        finding("a JSON response that is not JSON", req.method + " " + req.target + " -> " + r.body);
    for (const auto& [k, v] : r.headers)
        for (char c : k + v)
            if (c == '\r' || c == '\n' || c == '\0') finding("a response header with CR, LF or NUL", k + ": " + v);
}

struct World {
    EventHub hub{64, 16};
    StubBackend backend{hub};
    Router router;
    World() {
        RouteOptions o;
        o.version = "fuzz";
        o.metrics = [] { return std::string("# metrics\n"); };
        o.openapi_json = "{\"openapi\":\"3.1.0\"}";
        o.web = [](const Request& req) {
            Response r;
            r.content_type = "text/html; charset=utf-8";
            r.body = "<!doctype html>" + req.path;
            return r;
        };
        add_routes(router, backend, o);
    }
};

World& world() {
    static World w;
    return w;
}

// What Pipeline::handle (api/pipeline.cpp) does, minus authentication and the I/O.
void handle(Request& req, Metrics& metrics) {
    World& w = world();
    std::string route_name = "unmatched";
    int status = 0;
    try {
        parse_target(req.target, req.path, req.query);
        if (req.path.empty() || req.path.front() != '/') finding("parse_target gave a relative path", req.path);
        auto m = w.router.match(req.method, req.path);
        if (!m.route) {
            if (!m.allowed.empty())
                throw ApiError(ErrorCode::method_not_allowed,
                               "The method " + req.method + " is not allowed on '" + req.path + "'.", {{"allow", m.allowed}});
            throw ApiError(ErrorCode::not_found, "There is nothing at '" + req.path + "'.");
        }
        const Route& route = *m.route;
        if (route.method != req.method && !(req.method == "HEAD" && route.method == "GET"))
            finding("the router matched another method", req.method + " -> " + route.method);
        std::size_t params = 0;
        for (const auto& seg : route.segments) params += seg.size() > 2 && seg.front() == '{';
        if (m.params.size() != params) finding("parameter count", route.pattern);
        for (const auto& p : m.params)
            if (p.empty() || p.find('/') != std::string::npos) finding("an empty parameter or one with '/'", p);
        route_name = route.pattern;
        req.params = std::move(m.params);
        if (req.method == "POST" && req.header("idempotency-key")) {
            const std::string fp = request_fingerprint(req);
            if (fp.size() != 64) finding("fingerprint length", fp);
            (void)w.backend.find_idempotent(*req.header("idempotency-key"));
        }
        Response res = route.handler(req);
        if (res.long_poll) {
            req.wait_done = true;
            res = route.handler(req);
            if (res.long_poll) finding("a long-poll that asks to wait again after wait_done", req.target);
        }
        check_response(res, req);
        status = res.status;
    }
#ifdef SNAPVIRT_FUZZ_SKIP_KNOWN
    // Lets an exploratory build look past findings already reported (never in the ctest run):
    // parse_json_body catches only json::parse_error, so a number like 1e400
    // (json::out_of_range 406) escapes as a 500.
    catch (const nlohmann::json::out_of_range&) {
        return;
    }
#endif
    catch (const ApiError& e) {
        if (e.code() == ErrorCode::internal) finding("ApiError internal", e.what());
        const Response r = error_response(e);
        if (r.status < 400) finding("an error with a status below 400", std::to_string(r.status));
        check_response(r, req);
        status = r.status;
    }
    metrics.observe_request(req.method, route_name, status, 0.001);
}

Request from_beast(http::request<http::string_body>& h) {
    Request req;
    req.method = std::string(h.method_string());
    req.target = std::string(h.target());
    for (const auto& f : h) {
        std::string name(f.name_string());
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        req.headers.emplace_back(std::move(name), std::string(f.value()));
    }
    req.body = std::move(h.body());
    req.request_id = "fuzz";
    return req;
}

void raw_http(const std::uint8_t* data, std::size_t size, Metrics& metrics) {
    if (size == 0) return;
    beast::flat_buffer buffer;
    auto mb = buffer.prepare(size);
    std::memcpy(mb.data(), data, size);
    buffer.commit(size);
    // Up to four pipelined requests, as one keep-alive connection would read them.
    for (int n = 0; n < 4 && buffer.size() > 0; ++n) {
        http::request_parser<http::string_body> parser;
        parser.header_limit(max_header_bytes);
        parser.body_limit(max_body_bytes);
        parser.eager(true);
        beast::error_code ec;
        // As Beast's read loop does it: put() everything there is; need_more means the input
        // ends inside the message, which a connection sees as the client's EOF (put() must not
        // be called again on the same bytes without new ones: Beast asserts on that).
        while (!parser.is_done()) {
            const std::size_t used = parser.put(buffer.data(), ec);
            buffer.consume(used);
            if (ec == http::error::need_more) {
                parser.put_eof(ec);
                break;
            }
            if (ec || used == 0) break;
        }
        if (ec || !parser.is_done()) return;
        Request req = from_beast(parser.get());
        handle(req, metrics);
        if (!parser.get().keep_alive()) return;
    }
}

void structured(const std::uint8_t* data, std::size_t size, Metrics& metrics) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    auto next_line = [&]() {
        const auto nl = in.find('\n');
        std::string_view line = in.substr(0, nl);
        in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
        return std::string(line);
    };
    Request req;
    req.method = next_line();
    req.target = next_line();
    const std::string key = next_line();
    const std::string type = next_line();
    req.body = std::string(in);
    if (!key.empty()) req.headers.emplace_back("idempotency-key", key);
    req.headers.emplace_back("content-type", type.empty() ? "application/json" : type);
    req.request_id = "fuzz";
    handle(req, metrics);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    Metrics metrics;  // per input: the fuzzer's inputs must not pile up label sets
    if (size > 0 && data[0] == 0xFF)
        structured(data + 1, size - 1, metrics);
    else
        raw_http(data, size, metrics);
    (void)metrics.render();
    auto sub = world().hub.subscribe([] {});
    (void)sub->take();
    world().hub.unsubscribe(sub);
    return 0;
}
