// The HTTP session over a Unix socket: one instantiation of api/session_impl.hpp.
#include "api/session_impl.hpp"

namespace snapvirt::api {
template class Session<UnixStream>;
}  // namespace snapvirt::api
