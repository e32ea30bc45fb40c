// The job kinds. Adding a kind: a file beside this one that defines its JobKindEntry, its word
// in config/vocabulary.hpp, and one row here.

#include "daemon/jobs/job.hpp"

#include <array>
#include <stdexcept>

namespace snapvirt::daemon {

const JobKindEntry& job_kind(JobKind kind) {
    static const std::array<const JobKindEntry*, 3> table{
        &create_job,
        &revert_job,
        &delete_job,
    };
    for (const JobKindEntry* entry : table)
        if (entry->kind == kind) return *entry;
    throw std::logic_error(std::string("No job kind is registered for '") + to_string(kind) + "'.");
}

}  // namespace snapvirt::daemon
