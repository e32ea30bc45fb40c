// The HTTP session over TLS: one instantiation of api/session_impl.hpp.
#include "api/session_impl.hpp"

namespace snapvirt::api {
template class Session<TlsStream>;
}  // namespace snapvirt::api
