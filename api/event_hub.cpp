#include "api/event_hub.hpp"

#include "api/json.hpp"

#include <algorithm>
#include <chrono>

namespace snapvirt::api {

EventHub::EventHub(std::size_t backlog, std::size_t queue_limit)
    : backlog_limit_(backlog),
      queue_limit_(queue_limit),
      // Ids grow across restarts: a client's Last-Event-ID from before a restart is older than
      // everything this process publishes.
      next_id_(static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                              std::chrono::system_clock::now().time_since_epoch())
                                              .count()) *
               1000) {}

std::vector<std::shared_ptr<const EventRecord>> EventHub::Subscriber::take() {
    std::lock_guard lock(mu_);
    std::vector<std::shared_ptr<const EventRecord>> out(queue_.begin(), queue_.end());
    queue_.clear();
    return out;
}

bool EventHub::Subscriber::overflowed() const {
    std::lock_guard lock(mu_);
    return overflowed_;
}

std::shared_ptr<EventHub::Subscriber> EventHub::subscribe(std::function<void()> notify, std::string key,
                                                          std::optional<std::uint64_t> after, bool* missed) {
    auto s = std::make_shared<Subscriber>();
    s->notify_ = std::move(notify);
    s->key_ = std::move(key);
    std::lock_guard lock(mu_);
    if (after) {
        if (missed) *missed = !backlog_.empty() && backlog_.front()->id > *after + 1;
        for (const auto& e : backlog_)
            if (e->id > *after && (s->key_.empty() || e->key == s->key_)) s->queue_.push_back(e);
    }
    subscribers_.push_back(s);
    return s;
}

void EventHub::unsubscribe(const std::shared_ptr<Subscriber>& s) {
    std::lock_guard lock(mu_);
    subscribers_.erase(std::remove(subscribers_.begin(), subscribers_.end(), s), subscribers_.end());
}

std::size_t EventHub::subscriber_count() const {
    std::lock_guard lock(mu_);
    return subscribers_.size();
}

std::uint64_t EventHub::last_id() const {
    std::lock_guard lock(mu_);
    return next_id_ - 1;
}

void EventHub::publish(std::string type, std::string data, std::string key) {
    std::vector<std::function<void()>> to_notify;
    {
        std::lock_guard lock(mu_);
        auto rec = std::make_shared<EventRecord>();
        rec->id = next_id_++;
        rec->type = std::move(type);
        rec->data = std::move(data);
        rec->key = std::move(key);
        backlog_.push_back(rec);
        while (backlog_.size() > backlog_limit_) backlog_.pop_front();
        for (const auto& s : subscribers_) {
            if (!s->key_.empty() && s->key_ != rec->key) continue;
            std::lock_guard slock(s->mu_);
            if (s->overflowed_) continue;
            if (s->queue_.size() >= queue_limit_) {
                s->overflowed_ = true;
                s->queue_.clear();
            } else {
                s->queue_.push_back(rec);
            }
            to_notify.push_back(s->notify_);
        }
    }
    for (auto& n : to_notify) n();
}

void EventHub::job_updated(const Job& job) { publish("job.updated", json_string(job), job.id); }
void EventHub::snapshot_created(const Snapshot& s) { publish("snapshot.created", json_string(s)); }
void EventHub::snapshot_updated(const Snapshot& s) { publish("snapshot.updated", json_string(s)); }
void EventHub::snapshot_deleted(const Snapshot& s) { publish("snapshot.deleted", json_string(s)); }
void EventHub::instance_updated(const Instance& i) { publish("instance.updated", json_string(i)); }
void EventHub::schedule_created(const Schedule& s) { publish("schedule.created", json_string(s)); }
void EventHub::schedule_updated(const Schedule& s) { publish("schedule.updated", json_string(s)); }
void EventHub::schedule_deleted(const Schedule& s) { publish("schedule.deleted", json_string(s)); }
void EventHub::schedule_run(const Schedule& s, const ScheduleRun& r) {
    std::string data;
    data.reserve(320);
    write_schedule_run_event(data, s, r);
    publish("schedule.run", std::move(data));
}

}  // namespace snapvirt::api
