#pragma once
// Where the Backend façade returns to api/: the hypervisor's and the catalog's errors turned
// into the API's, in this one place.

#include "api/errors.hpp"
#include "daemon/catalog_error.hpp"
#include "hypervisor/error.hpp"

namespace snapvirt::daemon {

// A libvirt failure as the API reports it: unreachable is 503, a missing domain or snapshot
// 404, anything else libvirt refused 502 with libvirt's own words. Never a 500: that is for bugs.
[[noreturn]] void raise(const hv::Error& e);
// A cursor the catalog never handed out is the caller's mistake (400); every other catalog
// failure stays what it is (a 500: the server's last resort).
[[noreturn]] void raise(const CatalogError& e);

template <class F>
auto translating_errors(F&& fn) {
    try {
        return fn();
    } catch (const hv::Error& e) {
        raise(e);
    } catch (const CatalogError& e) {
        if (e.kind() != CatalogError::Kind::bad_cursor) throw;
        raise(e);
    }
}

}  // namespace snapvirt::daemon
