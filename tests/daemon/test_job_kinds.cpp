// The job-kind table: every kind in the vocabulary has exactly one entry, with what the
// runner, cancellation and recovery need.

#include "daemon/jobs/job.hpp"

#include "tests/support/catch.hpp"

#include <algorithm>

using namespace snapvirt;
using namespace snapvirt::daemon;

TEST_CASE("Every job kind is registered once, with its phases, run, withdraw and recover", "[jobs]") {
    for (const JobKind kind : all_values<JobKind>()) {
        INFO(to_string(kind));
        const JobKindEntry& entry = job_kind(kind);
        CHECK(entry.kind == kind);
        CHECK(entry.start != nullptr);
        CHECK(entry.withdraw != nullptr);
        CHECK(entry.recover != nullptr);
        REQUIRE_FALSE(entry.phases.empty());
        CHECK(entry.phases.front() == JobPhase::queued);
        // The endings are the runner's, not a kind's.
        for (const JobPhase p : {JobPhase::succeeded, JobPhase::failed, JobPhase::cancelled})
            CHECK(std::find(entry.phases.begin(), entry.phases.end(), p) == entry.phases.end());
    }
}

TEST_CASE("A job interrupted before it started did nothing", "[jobs]") {
    const ErrorInfo never = interrupted(false, "half done");
    CHECK(never.code == "interrupted");
    CHECK(never.message == "snapvirtd stopped before the job started; nothing was done.");
    CHECK(interrupted(true, "half done").message == "half done");
}
