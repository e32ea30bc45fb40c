#include "config/vocabulary.hpp"

#include "tests/support/catch.hpp"

#include <set>
#include <string>

using namespace snapvirt;

namespace {

// Every value's word parses back to the value; the words are distinct and non-empty.
template <class E>
void round_trips() {
    std::set<std::string> seen;
    for (const E value : all_values<E>()) {
        const std::string word = to_string(value);
        CHECK_FALSE(word.empty());
        CHECK(seen.insert(word).second);
        REQUIRE(parse<E>(word));
        CHECK(*parse<E>(word) == value);
    }
}

}  // namespace

TEST_CASE("Every word of the vocabulary round-trips", "[vocabulary]") {
    round_trips<SnapshotMode>();
    round_trips<SnapshotMethod>();
    round_trips<SnapshotState>();
    round_trips<JobKind>();
    round_trips<JobState>();
    round_trips<JobPhase>();
    round_trips<RevertTarget>();
}

TEST_CASE("The words are the contract's", "[vocabulary]") {
    CHECK(std::string(to_string(SnapshotMode::memory)) == "memory");
    CHECK(std::string(to_string(SnapshotMode::stopped)) == "stopped");
    CHECK(std::string(to_string(SnapshotMethod::internal)) == "internal");
    CHECK(std::string(to_string(SnapshotState::missing)) == "missing");
    CHECK(std::string(to_string(JobKind::delete_)) == "delete");
    CHECK(std::string(to_string(JobState::cancelled)) == "cancelled");
    CHECK(std::string(to_string(JobPhase::shutting_down)) == "shutting_down");
    CHECK(std::string(to_string(RevertTarget::automatic)) == "auto");
    CHECK(joined<JobKind>() == "create, revert, delete");
    CHECK(joined<RevertTarget>(true) == "\"auto\", \"running\", \"paused\" or \"stopped\"");
}

TEST_CASE("Unknown words do not parse", "[vocabulary]") {
    CHECK_FALSE(parse<SnapshotMode>(""));
    CHECK_FALSE(parse<SnapshotMode>("Memory"));
    CHECK_FALSE(parse<SnapshotMode>("memory "));
    CHECK_FALSE(parse<SnapshotState>("deleted"));
    CHECK_FALSE(parse<JobKind>("delete_"));
    CHECK_FALSE(parse<JobState>("done"));
    CHECK_FALSE(parse<RevertTarget>("automatic"));
    CHECK_FALSE(parse<SnapshotMethod>("manual"));
}

TEST_CASE("Predicates over the vocabulary", "[vocabulary]") {
    CHECK(terminal(JobState::succeeded));
    CHECK(terminal(JobState::failed));
    CHECK(terminal(JobState::cancelled));
    CHECK_FALSE(terminal(JobState::queued));
    CHECK_FALSE(terminal(JobState::running));
    CHECK(in_flight(SnapshotState::creating));
    CHECK(in_flight(SnapshotState::reverting));
    CHECK(in_flight(SnapshotState::deleting));
    CHECK_FALSE(in_flight(SnapshotState::ready));
    CHECK_FALSE(in_flight(SnapshotState::missing));
    CHECK(phase_of(JobState::failed) == JobPhase::failed);
}
