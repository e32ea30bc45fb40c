#pragma once
// The hypervisor layer's one error type: libvirt's code, domain and message, copied on the
// failing thread right after the failing call (libvirt's last error is thread-local and the
// next call, even a free, overwrites it).

#include <stdexcept>
#include <string>

namespace snapvirt::hv {

class Error : public std::runtime_error {
public:
    enum class Kind {
        unavailable,         // no connection to libvirtd, or it went away during the call
        domain_not_found,
        snapshot_not_found,
        operation_invalid,   // e.g. the domain is not running
        timeout,             // libvirt's job lock or an agent timed out
        unsupported,
        failed,              // anything else libvirt reported
    };

    Error(Kind kind, std::string message, int code = 0, int domain = 0);

    // Copies libvirt's last error of this thread; `context` says what was attempted.
    static Error from_last(const std::string& context);

    Kind kind() const noexcept { return kind_; }
    int code() const noexcept { return code_; }
    int domain() const noexcept { return domain_; }
    // libvirt could not parse or validate XML: its message quotes the document, which is
    // snapvirtd's to log and never a client's to read.
    bool about_xml() const noexcept;

private:
    Kind kind_;
    int code_;
    int domain_;
};

}  // namespace snapvirt::hv
