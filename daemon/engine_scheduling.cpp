// The engine's side of the scheduler: its wiring and the SchedulerHost it implements.
// TODO(schedules): the runner's part lands here (daemon/schedule/scheduler.*).

#include "daemon/engine.hpp"

namespace snapvirt::daemon {

void Engine::schedules_changed() {}

}  // namespace snapvirt::daemon
