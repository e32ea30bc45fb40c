#pragma once
// The catalog's one error type. Storage knows nothing of HTTP: the Backend façade
// (daemon/engine.cpp) turns these into api::ApiError where a request meets them.

#include <stdexcept>
#include <string>

namespace snapvirt::daemon {

class CatalogError : public std::runtime_error {
public:
    enum class Kind {
        bad_cursor,  // a page cursor this catalog never handed out
        conflict,    // a uniqueness constraint (a name or display name taken)
        failed,      // anything else SQLite or the file system reported
    };
    CatalogError(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
    Kind kind() const noexcept { return kind_; }

private:
    Kind kind_;
};

}  // namespace snapvirt::daemon
