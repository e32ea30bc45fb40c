#pragma once
// The contract's error codes and the one place that maps them to HTTP status codes.

#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>

namespace snapvirt::api {

enum class ErrorCode {
    invalid_json,
    invalid_request,
    unknown_field,
    unauthenticated,
    forbidden,
    instance_not_found,
    snapshot_not_found,
    job_not_found,
    schedule_not_found,
    not_found,
    method_not_allowed,
    body_too_large,
    unsupported_media_type,
    header_too_large,
    instance_busy,
    snapshot_exists,
    schedule_exists,
    snapshot_limit_reached,
    snapshot_not_ready,
    snapshot_has_children,
    method_conflict,
    idempotency_conflict,
    job_not_cancellable,
    instance_not_running,
    unsupported_disk,
    unsupported_firmware,
    unsupported_libvirt,
    insufficient_storage,
    too_many_connections,
    hypervisor_unavailable,
    hypervisor_error,
    internal,
};

const char* code_name(ErrorCode code);
int http_status(ErrorCode code);

// An error the API reports to its caller. `message` is a whole sentence for people;
// `details` carries machine-readable specifics (e.g. job_id, field, offset).
class ApiError : public std::runtime_error {
public:
    ApiError(ErrorCode code, std::string message, nlohmann::json details = nlohmann::json::object())
        : std::runtime_error(std::move(message)), code_(code), details_(std::move(details)) {}
    ErrorCode code() const noexcept { return code_; }
    const nlohmann::json& details() const noexcept { return details_; }

private:
    ErrorCode code_;
    nlohmann::json details_;
};

// {"error": {"code": ..., "message": ..., "details": ...}}
std::string error_body(const ApiError& e);

}  // namespace snapvirt::api
