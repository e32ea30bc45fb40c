// The life of one job, whatever its kind: started, its kind's run(), and one of four endings
// (succeeded, failed, cancelled, or left to recovery when libvirt went away in the middle).

#include "daemon/jobs/job.hpp"

#include "config/text.hpp"

#include <spdlog/spdlog.h>

#include <sys/statvfs.h>

#include <filesystem>
#include <thread>

namespace snapvirt::daemon {

namespace {

using json = nlohmann::json;

bool no_space(const std::string& message) {
    return message.find("No space left") != std::string::npos || message.find("ENOSPC") != std::string::npos ||
           message.find("Disk quota exceeded") != std::string::npos;
}

// QEMU reports a full disk during savevm as a plain I/O error ("Error while writing VM state:
// Input/output error"), so a failed write is checked against the free space where it went.
bool write_error(const std::string& message) {
    return message.find("Error while writing VM state") != std::string::npos ||
           message.find("Input/output error") != std::string::npos;
}

double seconds_since(TimeMs start) { return static_cast<double>(now_ms() - start) / 1000.0; }

// The storage of the instance's file-backed disks that has less free space than a memory
// snapshot needs (its RAM), described for people; empty when all have room.
std::string short_storage(hv::Hypervisor& hv, const std::string& uuid) {
    std::string out;
    try {
        const auto dom = hv.find_domain(uuid);
        const std::uint64_t needed = dom ? dom->memory_mib * 1024 * 1024 : 0;
        for (const auto& d : hv.domain_config(uuid).disks) {
            if (d.device != "disk" || d.type != "file" || d.source.empty()) continue;
            const std::string dir = std::filesystem::path(d.source).parent_path().string();
            struct statvfs fs {};
            if (::statvfs(dir.c_str(), &fs) != 0) continue;
            const std::uint64_t free_bytes = static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
            if (free_bytes >= needed) continue;
            out += (out.empty() ? "" : ", ") + std::string("disk ") + in_quotes(d.target) + " on " + dir + " (" +
                   std::to_string(free_bytes / (1024 * 1024)) + " MiB free, " +
                   std::to_string(needed / (1024 * 1024)) + " MiB of RAM to save)";
        }
    } catch (const hv::Error&) {
    }
    return out;
}

// Runs one job and ends it. Never throws.
class Runner {
public:
    Runner(JobServices& s, std::shared_ptr<ActiveJob> active, JobRecord rec)
        : s_(s), ctx_(s, std::move(active), std::move(rec)), job_(ctx_.job()) {}

    void run() {
        job_.state = JobState::running;
        job_.started_at = now_ms();
        job_.progress = {to_string(JobPhase::starting), std::nullopt};
        ctx_.save_job();
        spdlog::info("job={} {} on instance {} started.", job_.id, to_string(job_.kind), in_quotes(job_.instance.name));
        s_.report_status();
        try {
            kind_ = job_kind(job_.kind).start(ctx_);
            kind_->run();
            finish(JobState::succeeded, std::nullopt);
        } catch (const JobCancelled&) {
            if (kind_) kind_->undo(std::nullopt);
            finish(JobState::cancelled, std::nullopt);
        } catch (const JobFailure& f) {
            failed(f.code, f.what());
        } catch (const hv::Error& err) {
            if (err.kind() == hv::Error::Kind::unavailable) {
                orphan();
            } else {
                const auto [code, message] = classify(err);
                failed(code, message);
            }
        } catch (const std::exception& err) {
            failed(api::code_name(api::ErrorCode::internal), std::string("snapvirtd failed: ") + err.what());
        }
    }

private:
    // Classifies a libvirt failure: code and a message that says what to do about it.
    std::pair<std::string, std::string> classify(const hv::Error& err) {
        const std::string what = err.what();
        if (no_space(what) || (kind_ && kind_->writes_guest_state() && write_error(what))) {
            const std::string storage = short_storage(s_.hv, ctx_.uuid());
            if (no_space(what) || !storage.empty())
                return {"no_space", "There is not enough free space for the snapshot of instance " +
                                        in_quotes(job_.instance.name) + (storage.empty() ? "" : ": " + storage) +
                                        ". The guest keeps running and nothing was kept. libvirt said: " + what};
        }
        if (err.kind() == hv::Error::Kind::timeout) return {"hypervisor_timeout", what};
        return {std::string(to_string(job_.kind)) + "_failed", what};
    }

    void failed(const std::string& code, const std::string& message) {
        const ErrorInfo error{code, message};
        if (kind_) kind_->undo(error);
        finish(JobState::failed, error);
    }

    void finish(JobState state, std::optional<ErrorInfo> error) {
        job_.state = state;
        job_.error = std::move(error);
        job_.finished_at = now_ms();
        job_.progress.phase = to_string(phase_of(state));
        job_.progress.percent = state == JobState::succeeded ? std::optional<int>(100) : std::nullopt;
        s_.metrics.job_ended(job_.kind, state);
        if (state == JobState::succeeded && kind_) kind_->succeeded(seconds_since(job_.started_at.value_or(job_.created_at)));
        if (job_.error)
            spdlog::warn("job={} {} on instance {} {}: {}", job_.id, to_string(job_.kind), in_quotes(job_.instance.name),
                         to_string(state), job_.error->message);
        else
            spdlog::info("job={} {} on instance {} {}.", job_.id, to_string(job_.kind), in_quotes(job_.instance.name),
                         to_string(state));
        // The instance is free before anyone can see the job ended: a client that reacts to
        // the end at once must not be refused as busy with this very job.
        s_.queue.release(ctx_.active_ptr(), [this] { ctx_.save_job(); });
        s_.publish_instance(ctx_.uuid());
        s_.report_status();
    }

    // libvirt is gone: the outcome is unknown until it is back. The job stays running (and
    // the instance busy) and recovery decides once libvirt answers again.
    void orphan() {
        job_.progress = {to_string(JobPhase::waiting_for_libvirt), std::nullopt};
        ctx_.save_job();
        spdlog::warn("job={} lost libvirt in the middle; it is finished by recovery once libvirt is back.", job_.id);
        s_.queue.orphan(ctx_.active());
    }

    JobServices& s_;
    JobContext ctx_;
    Job& job_;
    std::unique_ptr<JobRun> kind_;
};

}  // namespace

void JobServices::test_delay(const std::string& point) const {
    auto it = options.test_delays.find(point);
    if (it == options.test_delays.end() || it->second <= 0) return;
    spdlog::warn("test delay: {} ms at '{}'", it->second, point);
    std::this_thread::sleep_for(std::chrono::milliseconds(it->second));
}

JobContext::JobContext(JobServices& services, std::shared_ptr<ActiveJob> active, JobRecord rec)
    : s_(services),
      active_(std::move(active)),
      rec_(std::move(rec)),
      params_(json::parse(rec_.params, nullptr, false)),
      uuid_(rec_.job.instance.uuid) {
    if (!params_.is_object()) params_ = json::object();
}

void JobContext::save_job() {
    s_.catalog.update_job(rec_.job);
    s_.sink.job_updated(rec_.job);
}

void JobContext::phase(JobPhase p) {
    rec_.job.progress = {to_string(p), std::nullopt};
    spdlog::debug("job={} phase {}", rec_.job.id, to_string(p));
    save_job();
    s_.test_delay(to_string(p));
}

void JobContext::intent(json step) {
    intent_ = std::move(step);
    spdlog::debug("job={} intent {}", rec_.job.id, intent_.dump());
    s_.catalog.set_job_intent(rec_.job.id, intent_.dump());
}

void JobContext::save_snapshot(const Snapshot& s) {
    s_.catalog.update_snapshot(s);
    s_.sink.snapshot_updated(s);
}

Snapshot JobContext::snapshot() {
    auto s = s_.catalog.snapshot(rec_.job.snapshot_id.value_or(""));
    if (!s) throw JobFailure("snapshot_not_found", "The job's snapshot is no longer in the catalog.");
    return *s;
}

hv::DomainInfo JobContext::domain() {
    auto d = s_.hv.find_domain(uuid_);
    if (!d)
        throw JobFailure("instance_not_found",
                         "Instance " + in_quotes(rec_.job.instance.name) + " was undefined while the job waited.");
    return *d;
}

hv::Lane& JobContext::lane() {
    if (!lane_) lane_ = s_.hv.open_lane();
    return *lane_;
}

void run_job(JobServices& services, const std::shared_ptr<ActiveJob>& active) {
    auto rec = services.catalog.job(active->id);
    if (!rec || rec->job.state != JobState::queued) {
        services.queue.release(active);
        services.publish_instance(active->instance_uuid);
        return;
    }
    Runner(services, active, std::move(*rec)).run();
}

}  // namespace snapvirt::daemon
