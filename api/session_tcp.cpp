// The HTTP session over TCP: one instantiation of api/session_impl.hpp.
#include "api/session_impl.hpp"

namespace snapvirt::api {
template class Session<TcpStream>;
}  // namespace snapvirt::api
