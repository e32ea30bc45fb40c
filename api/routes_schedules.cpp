// The schedules' endpoints (docs/api.md, "Schedules"): a schedule is made for an instance,
// read, changed and deleted by its id. The bodies are checked by parse_schedule_request; what
// needs the daemon (the cron expression, the time zone, the limits) by the backend.

#include "api/route_support.hpp"

namespace snapvirt::api::routes {

namespace {

// Not cacheable: a schedule's next_run_at and last_run move with time and runs.
void add_instance_schedule_routes(Router& router, Backend* b) {
    router.add("GET", "/v1/instances/{instance}/schedules", Scope::read, Exec::io, [b](Request& req) {
        check_query(req, {});
        return items_response(b->list_instance_schedules(req.params[0]));
    });
    router.add("POST", "/v1/instances/{instance}/schedules", Scope::write, Exec::blocking, [b](Request& req) {
        check_query(req, {});
        const auto request = parse_schedule_request(parse_json_body(req, false), true);
        const Schedule schedule = b->create_schedule(req.params[0], request);
        Response r = object_response(schedule, 201);
        r.headers.emplace_back("Location", "/v1/schedules/" + schedule.id);
        return r;
    });
}

void add_schedule_id_routes(Router& router, Backend* b) {
    router.add("GET", "/v1/schedules", Scope::read, Exec::io, [b](Request& req) {
        check_query(req, {"instance", "limit", "cursor"});
        ScheduleQuery q;
        q.instance = query_string(req, "instance");
        q.limit = page_limit(req);
        q.cursor = query_string(req, "cursor");
        return page_response(b->list_schedules(q));
    });
    router.add("GET", "/v1/schedules/{id}", Scope::read, Exec::io, [b](Request& req) {
        check_query(req, {});
        return object_response(b->get_schedule(req.params[0]));
    });
    router.add("PATCH", "/v1/schedules/{id}", Scope::write, Exec::blocking, [b](Request& req) {
        check_query(req, {});
        const auto request = parse_schedule_request(parse_json_body(req, false), false);
        return object_response(b->edit_schedule(req.params[0], request));
    });
    router.add("DELETE", "/v1/schedules/{id}", Scope::write, Exec::blocking, [b](Request& req) {
        check_query(req, {"snapshots"});
        no_body(req);
        b->delete_schedule(req.params[0], query_bool(req, "snapshots").value_or(false));
        Response r;
        r.status = 204;
        return r;
    });
}

}  // namespace

void add_schedule_routes(Router& router, Backend* backend) {
    add_instance_schedule_routes(router, backend);
    add_schedule_id_routes(router, backend);
}

}  // namespace snapvirt::api::routes
