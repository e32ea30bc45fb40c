#pragma once
// Fans the backend's changes out to Server-Sent Events streams and to job long-polls.
//
// Thread-safety: publish() may be called from any thread and never blocks on a consumer:
// each subscriber has a bounded queue, and one that falls behind is marked overflowed and
// dropped by its session. A bounded backlog lets a reconnecting client resume after its
// Last-Event-ID.

#include "api/backend.hpp"

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace snapvirt::api {

struct EventRecord {
    std::uint64_t id = 0;
    std::string type;   // job.updated, snapshot.created, schedule.run, ...
    std::string data;   // a JSON object
    std::string key;    // the job id for job.updated, else empty
};

class EventHub final : public EventSink {
public:
    explicit EventHub(std::size_t backlog = 2048, std::size_t queue_limit = 4096);

    // A consumer. `notify` is called (from the publishing thread) after events were queued;
    // it must only schedule work. Filtered by key when `key` is non-empty.
    class Subscriber {
    public:
        std::vector<std::shared_ptr<const EventRecord>> take();
        bool overflowed() const;

    private:
        friend class EventHub;
        mutable std::mutex mu_;
        std::deque<std::shared_ptr<const EventRecord>> queue_;
        bool overflowed_ = false;
        std::string key_;
        std::function<void()> notify_;
    };

    // Subscribes; when `after` is set, the backlog's events after that id are queued first.
    // `missed` is set when events after `after` have already left the backlog.
    std::shared_ptr<Subscriber> subscribe(std::function<void()> notify, std::string key = {},
                                          std::optional<std::uint64_t> after = std::nullopt, bool* missed = nullptr);
    void unsubscribe(const std::shared_ptr<Subscriber>& s);
    std::size_t subscriber_count() const;
    std::uint64_t last_id() const;

    void publish(std::string type, std::string data, std::string key = {});

    // EventSink
    void job_updated(const Job& job) override;
    void snapshot_created(const Snapshot& snapshot) override;
    void snapshot_updated(const Snapshot& snapshot) override;
    void snapshot_deleted(const Snapshot& snapshot) override;
    void instance_updated(const Instance& instance) override;
    void schedule_created(const Schedule& schedule) override;
    void schedule_updated(const Schedule& schedule) override;
    void schedule_deleted(const Schedule& schedule) override;
    void schedule_run(const Schedule& schedule, const ScheduleRun& run) override;

private:
    const std::size_t backlog_limit_;
    const std::size_t queue_limit_;
    mutable std::mutex mu_;
    std::uint64_t next_id_;
    std::deque<std::shared_ptr<const EventRecord>> backlog_;
    std::vector<std::shared_ptr<Subscriber>> subscribers_;
};

}  // namespace snapvirt::api
