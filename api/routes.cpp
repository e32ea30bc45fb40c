#include "api/routes.hpp"

#include "api/route_support.hpp"
#include "config/config.hpp"
#include "config/text.hpp"

#include <charconv>

namespace snapvirt::api {

using namespace routes;

namespace {

// A query parameter that names one of E's values.
template <class E>
std::optional<E> query_word(const Request& req, const std::string& name) {
    static const std::set<std::string> words = [] {
        std::set<std::string> out;
        for (const E value : all_values<E>()) out.insert(to_string(value));
        return out;
    }();
    const auto text = query_enum(req, name, words);
    return text ? parse<E>(*text) : std::nullopt;
}

Response ok_json(const nlohmann::json& j, int status = 200) {
    return json_response(status, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

CreateSnapshotRequest read_create(const Request& req) {
    const auto body = parse_json_body(req, false);
    FieldReader f(body, {"mode", "method", "name", "display_name", "description", "shutdown_timeout_s",
                         "force_stop", "keep_stopped"});
    CreateSnapshotRequest r;
    // A snapshot is taken with or without RAM; the third mode only describes what libvirt holds.
    const std::string choices = std::string("\"") + to_string(SnapshotMode::memory) + "\" or \"" +
                                to_string(SnapshotMode::stopped) + "\"";
    const auto mode_text = f.string("mode");
    if (!mode_text)
        throw ApiError(ErrorCode::invalid_request, "The field 'mode' is required: " + choices + ".", {{"field", "mode"}});
    const auto mode = parse<SnapshotMode>(*mode_text);
    if (!mode || *mode == SnapshotMode::other)
        throw ApiError(ErrorCode::invalid_request, "The field 'mode' must be " + choices + ".", {{"field", "mode"}});
    r.mode = *mode;
    if (const auto method_text = f.string("method")) {
        const auto method = parse<MethodChoice>(*method_text);
        if (!method)
            throw ApiError(ErrorCode::invalid_request,
                           "The field 'method' must be " + joined<MethodChoice>(true) + ".", {{"field", "method"}});
        r.method = *method;
    }
    r.name = f.string("name");
    if (r.name) check_snapshot_name("name", *r.name);
    r.display_name = f.string("display_name");
    if (r.display_name) check_display_name("display_name", *r.display_name);
    r.description = f.string("description").value_or("");
    check_description("description", r.description);
    auto timeout = f.integer("shutdown_timeout_s", config::SnapshotConfig::shutdown_timeout_min_s,
                             config::SnapshotConfig::shutdown_timeout_max_s);
    auto force = f.boolean("force_stop");
    auto keep = f.boolean("keep_stopped");
    if (r.mode == SnapshotMode::memory) {
        for (const char* field : {"shutdown_timeout_s", "force_stop", "keep_stopped"})
            if (body.contains(field))
                throw ApiError(ErrorCode::invalid_request,
                               std::string("The field '") + field + "' applies to mode \"" +
                                   to_string(SnapshotMode::stopped) + "\" only.",
                               {{"field", field}});
    }
    if (timeout) r.shutdown_timeout_s = static_cast<unsigned>(*timeout);
    r.force_stop = force.value_or(false);
    r.keep_stopped = keep.value_or(false);
    return r;
}

EditSnapshotRequest read_edit(const Request& req) {
    const auto body = parse_json_body(req, false);
    FieldReader f(body, {"display_name", "description"});
    EditSnapshotRequest r;
    r.display_name = f.string("display_name");
    if (r.display_name) check_display_name("display_name", *r.display_name);
    r.description = f.string("description");
    if (r.description) check_description("description", *r.description);
    if (!r.display_name && !r.description)
        throw ApiError(ErrorCode::invalid_request, "Give 'display_name', 'description' or both to change.",
                       {{"field", "body"}});
    return r;
}

RevertRequest read_revert(const Request& req) {
    const auto body = parse_json_body(req, true);
    FieldReader f(body, {"start", "force"});
    RevertRequest r;
    if (auto start = f.string("start")) {
        const auto target = parse<RevertTarget>(*start);
        if (!target)
            throw ApiError(ErrorCode::invalid_request,
                           "The field 'start' must be " + joined<RevertTarget>(true) + ".", {{"field", "start"}});
        r.start = *target;
    }
    r.force = f.boolean("force").value_or(false);
    return r;
}

Response accepted_job(const Job& job) {
    std::string body = "{\"job\":";
    write_json(body, job);
    body += '}';
    Response r = json_response(202, std::move(body));
    r.headers.emplace_back("Location", "/v1/jobs/" + job.id);
    return r;
}

}  // namespace

std::string request_fingerprint(const Request& req) {
    std::string canonical = req.method + " " + req.target + "\n";
    try {
        canonical += req.body.empty() ? "{}" : parse_json_text(req.body).dump();
    } catch (const std::exception&) {  // not JSON, too deep: compare the bytes
        canonical += req.body;
    }
    return sha256_hex(canonical);
}

namespace {

void add_health_routes(Router& router, Backend* b, const RouteOptions& options) {
    router.add("GET", "/healthz", Scope::none, Exec::io, [version = options.version](Request& req) {
        check_query(req, {});
        return ok_json({{"status", "ok"}, {"version", version}});
    });
    router.add("GET", "/readyz", Scope::none, Exec::io, [b](Request& req) {
        check_query(req, {});
        const Readiness r = b->readiness();
        if (!r.ready) return error_response(ApiError(ErrorCode::hypervisor_unavailable, r.reason));
        return ok_json({{"status", "ready"}});
    });
}

void add_host_routes(Router& router, Backend* b) {
    router.add("GET", "/v1/host", Scope::read, Exec::io, [b](Request& req) {
        check_query(req, {});
        return object_response(b->host());
    });
}

void add_instance_routes(Router& router, Backend* b) {
    router.add("GET", "/v1/instances", Scope::read, Exec::io, [b](Request& req) {
        check_query(req, {});
        return items_response(b->list_instances());
    },
               true);
    router.add("GET", "/v1/instances/{instance}", Scope::read, Exec::blocking, [b](Request& req) {
        check_query(req, {});
        return object_response(b->get_instance(req.params[0]));
    });
    router.add("GET", "/v1/instances/{instance}/snapshots", Scope::read, Exec::io, [b](Request& req) {
        check_query(req, {});
        return items_response(b->list_instance_snapshots(req.params[0]));
    },
               true);
    router.add("POST", "/v1/instances/{instance}/snapshots", Scope::write, Exec::blocking, [b](Request& req) {
        check_query(req, {});
        const auto request = read_create(req);
        const auto result = b->create_snapshot(req.params[0], request);
        std::string body = "{\"job\":";
        write_json(body, result.job);
        body += ",\"snapshot\":";
        write_json(body, result.snapshot);
        body += '}';
        Response r = json_response(202, std::move(body));
        r.headers.emplace_back("Location", "/v1/jobs/" + result.job.id);
        return r;
    });
}

void add_snapshot_routes(Router& router, Backend* b) {
    router.add("GET", "/v1/snapshots", Scope::read, Exec::io, [b](Request& req) {
        check_query(req, {"instance", "state", "mode", "q", "limit", "cursor"});
        SnapshotQuery q;
        q.instance = query_string(req, "instance");
        q.state = query_word<SnapshotState>(req, "state");
        q.mode = query_word<SnapshotMode>(req, "mode");
        q.q = query_string(req, "q");
        q.limit = page_limit(req);
        q.cursor = query_string(req, "cursor");
        return page_response(b->list_snapshots(q));
    }, true);
    router.add("GET", "/v1/snapshots/{id}", Scope::read, Exec::io, [b](Request& req) {
        check_query(req, {});
        return object_response(b->get_snapshot(req.params[0]));
    },
               true);
    router.add("PATCH", "/v1/snapshots/{id}", Scope::write, Exec::blocking, [b](Request& req) {
        check_query(req, {});
        const auto request = read_edit(req);
        return object_response(b->edit_snapshot(req.params[0], request));
    });
    router.add("DELETE", "/v1/snapshots/{id}", Scope::write, Exec::blocking, [b](Request& req) {
        check_query(req, {"children"});
        no_body(req);
        return accepted_job(b->delete_snapshot(req.params[0], query_bool(req, "children").value_or(false)));
    });
    router.add("POST", "/v1/snapshots/{id}/revert", Scope::write, Exec::blocking, [b](Request& req) {
        check_query(req, {});
        const auto request = read_revert(req);
        return accepted_job(b->revert_snapshot(req.params[0], request));
    });
}

void add_job_routes(Router& router, Backend* b) {
    router.add("GET", "/v1/jobs", Scope::read, Exec::io, [b](Request& req) {
        check_query(req, {"instance", "kind", "state", "limit", "cursor"});
        JobQuery q;
        q.instance = query_string(req, "instance");
        q.kind = query_word<JobKind>(req, "kind");
        q.state = query_word<JobState>(req, "state");
        q.limit = page_limit(req);
        q.cursor = query_string(req, "cursor");
        return page_response(b->list_jobs(q));
    }, true);
    router.add("GET", "/v1/jobs/{id}", Scope::read, Exec::io, [b](Request& req) {
        check_query(req, {"wait"});
        const auto wait = query_int(req, "wait", 0, 60).value_or(0);
        Job job = b->get_job(req.params[0]);
        Response r = object_response(job);
        if (!job.terminal() && wait > 0 && !req.wait_done)
            r.long_poll = LongPoll{job.id, std::chrono::steady_clock::now() + std::chrono::seconds(wait)};
        return r;
    });
    router.add("POST", "/v1/jobs/{id}/cancel", Scope::write, Exec::io, [b](Request& req) {
        check_query(req, {});
        const auto body = parse_json_body(req, true);
        FieldReader none(body, {});  // the body is optional and has no fields
        Job job = b->cancel_job(req.params[0]);
        return object_response(job, 202);
    });
}

// The event stream, metrics, the OpenAPI document and the web page.
void add_service_routes(Router& router, const RouteOptions& options) {
    router.add("GET", "/v1/events", Scope::read, Exec::io, [](Request& req) {
        check_query(req, {"last_event_id"});
        Response r;
        r.content_type = "text/event-stream";
        EventStream s;
        const std::string* last = req.header("last-event-id");
        std::optional<std::int64_t> from_query = query_int(req, "last_event_id", 0, INT64_MAX);
        if (last && !last->empty()) {
            std::uint64_t id = 0;
            const char* end = last->data() + last->size();
            auto [p, ec] = std::from_chars(last->data(), end, id);
            if (ec != std::errc() || p != end)
                throw ApiError(ErrorCode::invalid_request,
                               "The Last-Event-ID header must be an event id (a decimal number).",
                               {{"field", "Last-Event-ID"}});
            s.last_event_id = id;
        } else if (from_query) {
            s.last_event_id = static_cast<std::uint64_t>(*from_query);
        }
        r.event_stream = s;
        return r;
    });

    if (options.metrics)
        router.add("GET", "/metrics", Scope::read, Exec::io, [m = options.metrics](Request& req) {
            check_query(req, {});
            Response r;
            r.content_type = "text/plain; version=0.0.4; charset=utf-8";
            r.body = m();
            return r;
        });
    if (!options.openapi_json.empty())
        router.add("GET", "/openapi.json", Scope::none, Exec::io, [doc = options.openapi_json](Request& req) {
            check_query(req, {});
            return json_response(200, doc);
        });
    if (options.web) {
        router.add("GET", "/", Scope::none, Exec::io, [w = options.web](Request& req) { return w(req); });
        router.add("GET", "/ui/{asset}", Scope::none, Exec::io, [w = options.web](Request& req) { return w(req); });
    }
}

}  // namespace

void add_routes(Router& router, Backend& backend, const RouteOptions& options) {
    Backend* b = &backend;
    add_health_routes(router, b, options);
    add_host_routes(router, b);
    add_instance_routes(router, b);
    add_snapshot_routes(router, b);
    add_job_routes(router, b);
    add_schedule_routes(router, b);
    add_service_routes(router, options);
}

}  // namespace snapvirt::api
