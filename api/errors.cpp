#include "api/errors.hpp"

namespace snapvirt::api {

const char* code_name(ErrorCode code) {
    switch (code) {
        case ErrorCode::invalid_json: return "invalid_json";
        case ErrorCode::invalid_request: return "invalid_request";
        case ErrorCode::unknown_field: return "unknown_field";
        case ErrorCode::unauthenticated: return "unauthenticated";
        case ErrorCode::forbidden: return "forbidden";
        case ErrorCode::instance_not_found: return "instance_not_found";
        case ErrorCode::snapshot_not_found: return "snapshot_not_found";
        case ErrorCode::job_not_found: return "job_not_found";
        case ErrorCode::schedule_not_found: return "schedule_not_found";
        case ErrorCode::not_found: return "not_found";
        case ErrorCode::method_not_allowed: return "method_not_allowed";
        case ErrorCode::body_too_large: return "body_too_large";
        case ErrorCode::unsupported_media_type: return "unsupported_media_type";
        case ErrorCode::header_too_large: return "header_too_large";
        case ErrorCode::instance_busy: return "instance_busy";
        case ErrorCode::snapshot_exists: return "snapshot_exists";
        case ErrorCode::schedule_exists: return "schedule_exists";
        case ErrorCode::snapshot_limit_reached: return "snapshot_limit_reached";
        case ErrorCode::snapshot_not_ready: return "snapshot_not_ready";
        case ErrorCode::snapshot_has_children: return "snapshot_has_children";
        case ErrorCode::method_conflict: return "method_conflict";
        case ErrorCode::idempotency_conflict: return "idempotency_conflict";
        case ErrorCode::job_not_cancellable: return "job_not_cancellable";
        case ErrorCode::instance_not_running: return "instance_not_running";
        case ErrorCode::unsupported_disk: return "unsupported_disk";
        case ErrorCode::unsupported_firmware: return "unsupported_firmware";
        case ErrorCode::unsupported_libvirt: return "unsupported_libvirt";
        case ErrorCode::insufficient_storage: return "insufficient_storage";
        case ErrorCode::too_many_connections: return "too_many_connections";
        case ErrorCode::hypervisor_unavailable: return "hypervisor_unavailable";
        case ErrorCode::hypervisor_error: return "hypervisor_error";
        case ErrorCode::internal: return "internal";
    }
    return "internal";
}

int http_status(ErrorCode code) {
    switch (code) {
        case ErrorCode::invalid_json:
        case ErrorCode::invalid_request:
        case ErrorCode::unknown_field: return 400;
        case ErrorCode::unauthenticated: return 401;
        case ErrorCode::forbidden: return 403;
        case ErrorCode::instance_not_found:
        case ErrorCode::snapshot_not_found:
        case ErrorCode::job_not_found:
        case ErrorCode::schedule_not_found:
        case ErrorCode::not_found: return 404;
        case ErrorCode::method_not_allowed: return 405;
        case ErrorCode::body_too_large: return 413;
        case ErrorCode::unsupported_media_type: return 415;
        case ErrorCode::header_too_large: return 431;
        case ErrorCode::instance_busy:
        case ErrorCode::snapshot_exists:
        case ErrorCode::schedule_exists:
        case ErrorCode::snapshot_limit_reached:
        case ErrorCode::snapshot_not_ready:
        case ErrorCode::snapshot_has_children:
        case ErrorCode::method_conflict:
        case ErrorCode::idempotency_conflict:
        case ErrorCode::job_not_cancellable: return 409;
        case ErrorCode::instance_not_running:
        case ErrorCode::unsupported_disk:
        case ErrorCode::unsupported_firmware:
        case ErrorCode::unsupported_libvirt: return 422;
        case ErrorCode::insufficient_storage: return 507;
        case ErrorCode::too_many_connections:
        case ErrorCode::hypervisor_unavailable: return 503;
        case ErrorCode::hypervisor_error: return 502;
        case ErrorCode::internal: return 500;
    }
    return 500;
}

std::string error_body(const ApiError& e) {
    nlohmann::json body = {{"error", {{"code", code_name(e.code())}, {"message", e.what()}}}};
    if (!e.details().empty()) body["error"]["details"] = e.details();
    return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace snapvirt::api
