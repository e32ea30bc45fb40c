#include "daemon/job_queue.hpp"

#include "config/text.hpp"

#include <algorithm>

namespace snapvirt::daemon {

using api::ApiError;
using api::ErrorCode;

JobQueue::~JobQueue() {
    stop(std::chrono::seconds(0));
    join();
}

void JobQueue::adopt(const Job& job) {
    auto a = std::make_shared<ActiveJob>();
    a->id = job.id;
    a->kind = job.kind;
    a->instance_uuid = job.instance.uuid;
    a->started = true;
    a->orphaned = true;
    std::lock_guard lock(mu_);
    busy_[a->instance_uuid] = a;
    active_[a->id] = a;
}

void JobQueue::start(unsigned workers, Runner run) {
    run_ = std::move(run);
    for (unsigned i = 0; i < std::max(1u, workers); ++i) workers_.emplace_back([this] { worker_loop(); });
}

void JobQueue::stop(std::chrono::seconds grace) {
    {
        std::unique_lock lock(mu_);
        if (stopping_) return;
        accepting_ = false;
        // Queued jobs that never started stay queued in the catalog; recovery ends them.
        queue_.clear();
        idle_cv_.wait_for(lock, grace, [&] {
            return std::none_of(active_.begin(), active_.end(),
                                [](const auto& kv) { return kv.second->started && !kv.second->orphaned; });
        });
        stopping_ = true;
    }
    queue_cv_.notify_all();
}

void JobQueue::join() {
    for (auto& t : workers_)
        if (t.joinable()) t.join();
}

void JobQueue::worker_loop() {
    for (;;) {
        std::shared_ptr<ActiveJob> a;
        {
            std::unique_lock lock(mu_);
            queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
            if (stopping_) return;
            a = queue_.front();
            queue_.pop_front();
            a->started = true;
        }
        run_(a);
    }
}

// ---- admission ---------------------------------------------------------------------------------

void JobQueue::wait_for_edit(std::unique_lock<std::mutex>& lock, const std::string& uuid) {
    // An edit is one metadata redefine (milliseconds): wait for it rather than refuse.
    edit_cv_.wait_for(lock, std::chrono::seconds(5), [&] { return !editing_.count(uuid); });
}

void JobQueue::throw_busy(const std::string& uuid, const std::string& instance_name) const {
    auto it = busy_.find(uuid);
    if (it != busy_.end()) {
        const std::string kind = to_string(it->second->kind);
        throw ApiError(ErrorCode::instance_busy,
                       "Instance " + in_quotes(instance_name) + " is busy with job " + in_quotes(it->second->id) +
                           " (" + kind + ").",
                       {{"job_id", it->second->id}, {"kind", kind}});
    }
    throw ApiError(ErrorCode::instance_busy,
                   "Instance " + in_quotes(instance_name) + " is busy with an edit of one of its snapshots; try again.",
                   {{"job_id", nullptr}});
}

void JobQueue::refuse_if_busy(const std::string& uuid, const std::string& instance_name) {
    std::lock_guard lock(mu_);
    if (busy_.count(uuid)) throw_busy(uuid, instance_name);
}

Job JobQueue::admit(const std::string& uuid, const std::string& instance_name,
                    const std::function<JobRecord()>& prepare, const std::function<void(const Job&)>& announce) {
    std::unique_lock lock(mu_);
    if (!accepting_) throw ApiError(ErrorCode::hypervisor_unavailable, "snapvirtd is shutting down.");
    wait_for_edit(lock, uuid);
    if (busy_.count(uuid) || editing_.count(uuid)) throw_busy(uuid, instance_name);
    const JobRecord rec = prepare();
    auto a = std::make_shared<ActiveJob>();
    a->id = rec.job.id;
    a->kind = rec.job.kind;
    a->instance_uuid = uuid;
    busy_[uuid] = a;
    active_[a->id] = a;
    changes_.fetch_add(1, std::memory_order_acq_rel);
    queue_.push_back(a);
    queue_cv_.notify_one();
    announce(rec.job);
    return rec.job;
}

JobQueue::Edit::~Edit() {
    {
        std::lock_guard lock(queue_.mu_);
        queue_.editing_.erase(uuid_);
    }
    queue_.edit_cv_.notify_all();
}

std::unique_ptr<JobQueue::Edit> JobQueue::begin_edit(const std::string& uuid, const std::string& instance_name,
                                                     const std::function<void()>& check) {
    std::unique_lock lock(mu_);
    wait_for_edit(lock, uuid);
    if (busy_.count(uuid) || editing_.count(uuid)) throw_busy(uuid, instance_name);
    check();
    editing_.insert(uuid);
    return std::make_unique<Edit>(*this, uuid);
}

std::unique_ptr<JobQueue::Edit> JobQueue::hold_if_free(const std::string& uuid) {
    std::lock_guard lock(mu_);
    if (busy_.count(uuid) || editing_.count(uuid)) return nullptr;
    editing_.insert(uuid);
    return std::make_unique<Edit>(*this, uuid);
}

// ---- cancellation ------------------------------------------------------------------------------

JobQueue::Cancel JobQueue::cancel(const Job& job) {
    std::unique_lock lock(mu_);
    auto it = active_.find(job.id);
    if (it == active_.end() || job.terminal())
        throw ApiError(ErrorCode::job_not_cancellable,
                       "Job " + in_quotes(job.id) + " has already ended (" + to_string(job.state) + ").",
                       {{"state", to_string(job.state)}});
    auto a = it->second;
    if (!a->started) {
        // Still queued: it never touched libvirt.
        queue_.erase(std::remove(queue_.begin(), queue_.end(), a), queue_.end());
        drop_locked(a);
        lock.unlock();
        idle_cv_.notify_all();
        return Cancel::withdrawn;
    }
    if (a->cancellable) {
        a->cancel_requested = true;
        return Cancel::requested;  // the worker ends the job as cancelled
    }
    const std::string phase = job.progress.phase.empty() ? std::string(to_string(job.state)) : job.progress.phase;
    throw ApiError(ErrorCode::job_not_cancellable,
                   "Job " + in_quotes(job.id) + " is " + phase + ", a step that libvirt cannot abort; wait for it to end.",
                   {{"phase", job.progress.phase}});
}

void JobQueue::enter_cancellable(ActiveJob& job) {
    std::lock_guard lock(mu_);
    job.cancellable = true;
}

bool JobQueue::leave_cancellable(ActiveJob& job) {
    std::lock_guard lock(mu_);
    job.cancellable = false;
    return job.cancel_requested;
}

// ---- the end of a job --------------------------------------------------------------------------

void JobQueue::drop_locked(const std::shared_ptr<ActiveJob>& job) {
    auto it = busy_.find(job->instance_uuid);
    if (it != busy_.end() && it->second == job) busy_.erase(it);
    active_.erase(job->id);
    changes_.fetch_add(1, std::memory_order_acq_rel);
}

void JobQueue::release(const std::shared_ptr<ActiveJob>& job, const std::function<void()>& then) {
    {
        std::lock_guard lock(mu_);
        drop_locked(job);
    }
    idle_cv_.notify_all();
    if (then) then();
}

void JobQueue::orphan(ActiveJob& job) {
    std::lock_guard lock(mu_);
    job.orphaned = true;
}

std::vector<std::shared_ptr<ActiveJob>> JobQueue::orphans() const {
    std::vector<std::shared_ptr<ActiveJob>> out;
    std::lock_guard lock(mu_);
    for (const auto& [id, a] : active_)
        if (a->orphaned) out.push_back(a);
    return out;
}

// ---- views -------------------------------------------------------------------------------------

std::optional<std::string> JobQueue::busy_job(const std::string& uuid) const {
    std::lock_guard lock(mu_);
    auto it = busy_.find(uuid);
    if (it == busy_.end()) return std::nullopt;
    return it->second->id;
}

bool JobQueue::busy(const std::string& uuid) const {
    std::lock_guard lock(mu_);
    return busy_.count(uuid) || editing_.count(uuid);
}

JobQueue::Counts JobQueue::counts() const {
    Counts c;
    std::lock_guard lock(mu_);
    for (const auto& [id, a] : active_) (a->started ? c.running : c.queued) += 1;
    return c;
}

}  // namespace snapvirt::daemon
