#include "daemon/api_errors.hpp"

#include <spdlog/spdlog.h>

namespace snapvirt::daemon {

using api::ApiError;
using api::ErrorCode;

void raise(const hv::Error& e) {
    switch (e.kind()) {
        case hv::Error::Kind::unavailable:
            throw ApiError(ErrorCode::hypervisor_unavailable, std::string("libvirt is unreachable: ") + e.what());
        case hv::Error::Kind::domain_not_found: throw ApiError(ErrorCode::instance_not_found, e.what());
        case hv::Error::Kind::snapshot_not_found: throw ApiError(ErrorCode::snapshot_not_found, e.what());
        default: break;
    }
    // libvirt's XML errors quote the document line by line: the client gets one sentence and
    // the code, the log gets the whole text.
    const std::string what = e.what();
    const std::size_t eol = what.find('\n');
    if (e.about_xml() || eol != std::string::npos) {
        spdlog::warn("libvirt refused with a message not shown to the client: {}", what);
        const std::string shown = e.about_xml() ? std::string("libvirt could not accept the XML snapvirtd sent it; "
                                                              "snapvirtd's log has its full message.")
                                                : "libvirt refused: " + what.substr(0, eol);
        throw ApiError(ErrorCode::hypervisor_error, shown, {{"libvirt_code", e.code()}});
    }
    throw ApiError(ErrorCode::hypervisor_error, "libvirt refused: " + what, {{"libvirt_code", e.code()}});
}

void raise(const CatalogError& e) {
    if (e.kind() == CatalogError::Kind::bad_cursor)
        throw ApiError(ErrorCode::invalid_request, e.what(), {{"field", "cursor"}});
    throw e;
}

}  // namespace snapvirt::daemon
