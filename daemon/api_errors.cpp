#include "daemon/api_errors.hpp"

namespace snapvirt::daemon {

using api::ApiError;
using api::ErrorCode;

void raise(const hv::Error& e) {
    switch (e.kind()) {
        case hv::Error::Kind::unavailable:
            throw ApiError(ErrorCode::hypervisor_unavailable, std::string("libvirt is unreachable: ") + e.what());
        case hv::Error::Kind::domain_not_found: throw ApiError(ErrorCode::instance_not_found, e.what());
        case hv::Error::Kind::snapshot_not_found: throw ApiError(ErrorCode::snapshot_not_found, e.what());
        default:
            throw ApiError(ErrorCode::hypervisor_error, std::string("libvirt refused: ") + e.what(),
                           {{"libvirt_code", e.code()}});
    }
}

void raise(const CatalogError& e) {
    if (e.kind() == CatalogError::Kind::bad_cursor)
        throw ApiError(ErrorCode::invalid_request, e.what(), {{"field", "cursor"}});
    throw e;
}

}  // namespace snapvirt::daemon
