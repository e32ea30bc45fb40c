#pragma once
// snapvirt's words: every mode, method, state, kind and phase as an enum with one to_string and
// one parse. The strings are written here and nowhere else in C++; they appear only at the
// edges (JSON in api/, SQL in the catalog, libvirt XML in hypervisor/). A check in
// tests/config/check_vocabulary.sh keeps it so.
//
// Header-only and constexpr: any layer may include it (config/ is the lowest one).

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace snapvirt {

// What a snapshot holds: a running guest's RAM and disks, a stopped guest's disks, or
// something snapvirt did not make and cannot classify (found in libvirt).
enum class SnapshotMode { memory, stopped, other };

// Where libvirt keeps a snapshot: inside the qcow2 images (internal), or in files of its own —
// an overlay per disk and a memory state file (external). docs/api.md, "Snapshot methods".
enum class SnapshotMethod { internal, external };

// What a create asks for: a method, or auto (snapvirt picks by the rules of docs/api.md).
enum class MethodChoice { automatic, internal, external };

enum class SnapshotState { creating, ready, reverting, deleting, error, missing };

enum class JobKind { create, revert, delete_ };

enum class JobState { queued, running, succeeded, failed, cancelled };

// The step a job is at, as its progress reports it (and test delays name it).
enum class JobPhase {
    queued,
    starting,
    saving,
    shutting_down,
    stopping,
    snapshotting,
    finishing,
    reverting,
    deleting,
    waiting_for_libvirt,
    succeeded,
    failed,
    cancelled,
};

// How a revert leaves the guest: as the snapshot was (auto), running, paused or stopped.
enum class RevertTarget { automatic, running, paused, stopped };

// How a schedule's run at one slot ended (docs/api.md, "Schedules"): its job is queued or
// running, the job succeeded or failed, the instance stayed busy past the window (missed), or
// it was not in a state for the mode and no job was made (skipped).
enum class ScheduleOutcome { running, succeeded, failed, missed, skipped };

// The spelling of each value, in declaration order.
template <class E>
struct Words;
template <>
struct Words<SnapshotMode> {
    static constexpr std::array<const char*, 3> names{"memory", "stopped", "other"};
};
template <>
struct Words<SnapshotMethod> {
    static constexpr std::array<const char*, 2> names{"internal", "external"};
};
template <>
struct Words<MethodChoice> {
    static constexpr std::array<const char*, 3> names{"auto", "internal", "external"};
};
template <>
struct Words<SnapshotState> {
    static constexpr std::array<const char*, 6> names{"creating", "ready", "reverting", "deleting", "error", "missing"};
};
template <>
struct Words<JobKind> {
    static constexpr std::array<const char*, 3> names{"create", "revert", "delete"};
};
template <>
struct Words<JobState> {
    static constexpr std::array<const char*, 5> names{"queued", "running", "succeeded", "failed", "cancelled"};
};
template <>
struct Words<JobPhase> {
    static constexpr std::array<const char*, 13> names{
        "queued",   "starting", "saving",   "shutting_down",       "stopping", "snapshotting", "finishing",
        "reverting", "deleting", "waiting_for_libvirt", "succeeded", "failed", "cancelled"};
};
template <>
struct Words<RevertTarget> {
    static constexpr std::array<const char*, 4> names{"auto", "running", "paused", "stopped"};
};

template <>
struct Words<ScheduleOutcome> {
    static constexpr std::array<const char*, 5> names{"running", "succeeded", "failed", "missed", "skipped"};
};

template <class E>
constexpr const char* to_string(E value) {
    return Words<E>::names[static_cast<std::size_t>(value)];
}

template <class E>
constexpr std::optional<E> parse(std::string_view text) {
    for (std::size_t i = 0; i < Words<E>::names.size(); ++i)
        if (text == Words<E>::names[i]) return static_cast<E>(i);
    return std::nullopt;
}

// The values of E in order, for "one of ..." messages and validation lists.
template <class E>
constexpr auto all_values() {
    std::array<E, Words<E>::names.size()> out{};
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<E>(i);
    return out;
}

// "a, b, c" or, quoted, "\"a\", \"b\" or \"c\"".
template <class E>
std::string joined(bool quoted = false) {
    std::string out;
    const auto& names = Words<E>::names;
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (i) out += quoted && i + 1 == names.size() ? " or " : ", ";
        out += quoted ? "\"" + std::string(names[i]) + "\"" : std::string(names[i]);
    }
    return out;
}

constexpr bool terminal(JobState s) {
    return s == JobState::succeeded || s == JobState::failed || s == JobState::cancelled;
}

// A job is changing the snapshot right now: no edit, revert or delete may start on it.
constexpr bool in_flight(SnapshotState s) {
    return s == SnapshotState::creating || s == SnapshotState::reverting || s == SnapshotState::deleting;
}

// A job's end reported as its phase.
constexpr JobPhase phase_of(JobState s) {
    switch (s) {
        case JobState::queued: return JobPhase::queued;
        case JobState::running: return JobPhase::starting;
        case JobState::succeeded: return JobPhase::succeeded;
        case JobState::failed: return JobPhase::failed;
        case JobState::cancelled: return JobPhase::cancelled;
    }
    return JobPhase::failed;
}

}  // namespace snapvirt
