#include "hypervisor/error.hpp"

#include <libvirt/virterror.h>

namespace snapvirt::hv {

Error::Error(Kind kind, std::string message, int code, int domain)
    : std::runtime_error(std::move(message)), kind_(kind), code_(code), domain_(domain) {}

bool Error::about_xml() const noexcept {
    return code_ == VIR_ERR_XML_ERROR || code_ == VIR_ERR_XML_DETAIL || code_ == VIR_ERR_XML_INVALID_SCHEMA;
}

Error Error::from_last(const std::string& context) {
    virError err{};
    virCopyLastError(&err);
    const int code = err.code;
    const int domain = err.domain;
    std::string detail = err.message ? err.message : "unknown libvirt error";
    virResetError(&err);

    Kind kind = Kind::failed;
    switch (code) {
        case VIR_ERR_NO_DOMAIN: kind = Kind::domain_not_found; break;
        case VIR_ERR_NO_DOMAIN_SNAPSHOT: kind = Kind::snapshot_not_found; break;
        case VIR_ERR_OPERATION_INVALID: kind = Kind::operation_invalid; break;
        case VIR_ERR_OPERATION_TIMEOUT:
        case VIR_ERR_AGENT_UNRESPONSIVE: kind = Kind::timeout; break;
        case VIR_ERR_NO_SUPPORT:
        case VIR_ERR_OPERATION_UNSUPPORTED:
        case VIR_ERR_CONFIG_UNSUPPORTED: kind = Kind::unsupported; break;
        case VIR_ERR_NO_CONNECT:
        case VIR_ERR_INVALID_CONN:
        case VIR_ERR_RPC:
        case VIR_ERR_AUTH_FAILED:
        case VIR_ERR_AUTH_UNAVAILABLE: kind = Kind::unavailable; break;
        default:
            if (domain == VIR_FROM_RPC || domain == VIR_FROM_REMOTE) kind = Kind::unavailable;
    }
    std::string message = context.empty() ? detail : context + ": " + detail;
    return Error(kind, std::move(message), code, domain);
}

}  // namespace snapvirt::hv
