#include "daemon/logging.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>

namespace snapvirt::daemon {

namespace {

// Whether stderr is the stream systemd-journald gave us (see systemd.exec(5), $JOURNAL_STREAM).
bool stderr_is_journal() {
    const char* js = std::getenv("JOURNAL_STREAM");
    if (!js) return false;
    unsigned long dev = 0, ino = 0;
    if (std::sscanf(js, "%lu:%lu", &dev, &ino) != 2) return false;
    struct stat st {};
    if (fstat(STDERR_FILENO, &st) != 0) return false;
    return st.st_dev == dev && st.st_ino == ino;
}

int syslog_priority(spdlog::level::level_enum l) {
    switch (l) {
        case spdlog::level::trace:
        case spdlog::level::debug: return 7;
        case spdlog::level::info: return 6;
        case spdlog::level::warn: return 4;
        case spdlog::level::err: return 3;
        case spdlog::level::critical: return 2;
        default: return 6;
    }
}

class StderrSink final : public spdlog::sinks::base_sink<std::mutex> {
public:
    StderrSink(LogFormat format, bool journal) : format_(format), journal_(journal) {}

protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
        const std::string text(msg.payload.data(), msg.payload.size());
        const auto level = spdlog::level::to_string_view(msg.level);
        std::string line;
        if (format_ == LogFormat::json) {
            nlohmann::json j = {{"ts", timestamp(msg)}, {"level", std::string(level.data(), level.size())}, {"msg", text}};
            line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
            // journald strips the prefix and keeps the priority; the message stays pure JSON.
            if (journal_) line = "<" + std::to_string(syslog_priority(msg.level)) + ">" + line;
        } else if (journal_) {
            // The journal stamps time itself.
            line = "<" + std::to_string(syslog_priority(msg.level)) + ">" + text;
        } else {
            line = timestamp(msg) + " " + std::string(level.data(), level.size()) + " " + text;
        }
        line += '\n';
        std::fwrite(line.data(), 1, line.size(), stderr);
    }
    void flush_() override { std::fflush(stderr); }

private:
    static std::string timestamp(const spdlog::details::log_msg& msg) {
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()).count();
        const std::time_t secs = static_cast<std::time_t>(ms / 1000);
        std::tm tm{};
        gmtime_r(&secs, &tm);
        char buf[64];
        std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                      tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
        return buf;
    }

    LogFormat format_;
    bool journal_;
};

}  // namespace

void setup_logging(const std::string& level, LogFormat format) {
    auto sink = std::make_shared<StderrSink>(format, stderr_is_journal());
    auto logger = std::make_shared<spdlog::logger>("snapvirtd", sink);
    spdlog::set_default_logger(logger);
    set_log_level(level);
    spdlog::flush_on(spdlog::level::info);
}

void set_log_level(const std::string& level) { spdlog::set_level(spdlog::level::from_str(level)); }

}  // namespace snapvirt::daemon
