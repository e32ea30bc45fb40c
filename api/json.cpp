#include "api/json.hpp"

#include "config/config.hpp"

#include <cstdio>
#include <ctime>

namespace snapvirt::api {

namespace {

// Length of the valid UTF-8 sequence at s[i], or 0 if it is not one.
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) n = 2, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0) n = 3, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0) n = 4, cp = c & 0x07;
    else return 0;
    if (i + n > s.size()) return 0;
    for (std::size_t k = 1; k < n; ++k) {
        const auto cc = static_cast<unsigned char>(s[i + k]);
        if ((cc & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

struct Fields {
    std::string& out;
    bool first = true;

    Fields& key(std::string_view k) {
        out += first ? "{\"" : ",\"";
        first = false;
        out += k;
        out += "\":";
        return *this;
    }
    Fields& str(std::string_view k, std::string_view v) {
        key(k);
        write_string(out, v);
        return *this;
    }
    Fields& opt_str(std::string_view k, const std::optional<std::string>& v) {
        key(k);
        if (v)
            write_string(out, *v);
        else
            out += "null";
        return *this;
    }
    Fields& num(std::string_view k, std::uint64_t v) {
        key(k);
        out += std::to_string(v);
        return *this;
    }
    template <class N>
    Fields& opt_num(std::string_view k, const std::optional<N>& v) {
        key(k);
        out += v ? std::to_string(*v) : std::string("null");
        return *this;
    }
    template <class N>
    Fields& num_or_null(std::string_view k, bool present, N v) {
        key(k);
        out += present ? std::to_string(v) : std::string("null");
        return *this;
    }
    Fields& boolean(std::string_view k, bool v) {
        key(k);
        out += v ? "true" : "false";
        return *this;
    }
    Fields& bool_or_null(std::string_view k, bool present, bool v) {
        key(k);
        out += !present ? "null" : v ? "true" : "false";
        return *this;
    }
    Fields& time(std::string_view k, TimeMs t) { return str(k, format_time(t)); }
    Fields& opt_time(std::string_view k, const std::optional<TimeMs>& t) {
        return opt_str(k, t ? std::optional<std::string>(format_time(*t)) : std::nullopt);
    }
    Fields& ref(std::string_view k, const InstanceRef& r) {
        key(k);
        Fields{out}.str("uuid", r.uuid).str("name", r.name).end();
        return *this;
    }
    Fields& error(std::string_view k, const std::optional<ErrorInfo>& e) {
        key(k);
        if (e)
            Fields{out}.str("code", e->code).str("message", e->message).end();
        else
            out += "null";
        return *this;
    }
    template <class E>
    Fields& words(std::string_view k, const std::vector<E>& values) {
        key(k);
        out += '[';
        for (std::size_t i = 0; i < values.size(); ++i) {
            if (i) out += ',';
            write_string(out, to_string(values[i]));
        }
        out += ']';
        return *this;
    }
    void end() { out += first ? "{}" : "}"; }
};

}  // namespace

std::string format_time(TimeMs t) {
    const std::time_t secs = static_cast<std::time_t>(t / 1000);
    const int ms = static_cast<int>(((t % 1000) + 1000) % 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
    return buf;
}

void write_string(std::string& out, std::string_view s) {
    static const char* hex = "0123456789abcdef";
    out += '"';
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            out += static_cast<char>(c);
            ++i;
            continue;
        }
        switch (c) {
            case '"': out += "\\\""; ++i; continue;
            case '\\': out += "\\\\"; ++i; continue;
            case '\n': out += "\\n"; ++i; continue;
            case '\t': out += "\\t"; ++i; continue;
            case '\r': out += "\\r"; ++i; continue;
            default: break;
        }
        if (c < 0x20) {
            out += "\\u00";
            out += hex[c >> 4];
            out += hex[c & 15];
            ++i;
            continue;
        }
        const std::size_t n = utf8_sequence(s, i);
        if (n == 0) {
            out += "\xEF\xBF\xBD";  // U+FFFD
            ++i;
        } else {
            out.append(s.data() + i, n);
            i += n;
        }
    }
    out += '"';
}

void write_json(std::string& out, const Instance& i) {
    Fields f{out};
    f.str("uuid", i.uuid)
        .str("name", i.name)
        .str("state", i.state)
        .num("memory_mib", i.memory_mib)
        .num("vcpus", i.vcpus)
        .num("snapshot_count", i.snapshot_count)
        .opt_str("current_snapshot_id", i.current_snapshot_id)
        .opt_str("busy_job_id", i.busy_job_id);
    if (i.stale) f.boolean("stale", true);
    if (!i.present) f.boolean("defined", false);
    f.end();
}

void write_json(std::string& out, const Snapshot& s) {
    Fields{out}
        .str("id", s.id)
        .ref("instance", s.instance)
        .str("name", s.name)
        .str("display_name", s.display_name)
        .str("description", s.description)
        .str("mode", to_string(s.mode))
        .str("method", to_string(s.method))
        .str("state", to_string(s.state))
        .opt_str("parent_id", s.parent_id)
        .boolean("is_current", s.is_current)
        .time("created_at", s.created_at)
        .opt_num("size_bytes", s.size_bytes)
        .opt_num("guest_paused_ms", s.guest_paused_ms)
        .str("origin", s.origin)
        .opt_str("schedule_id", s.schedule_id)
        .error("error", s.error)
        .end();
}

void write_json(std::string& out, const Job& j) {
    Fields f{out};
    f.str("id", j.id)
        .str("kind", to_string(j.kind))
        .ref("instance", j.instance)
        .opt_str("snapshot_id", j.snapshot_id)
        .str("state", to_string(j.state));
    f.key("progress");
    Fields{out}.str("phase", j.progress.phase).opt_num("percent", j.progress.percent).end();
    f.time("created_at", j.created_at)
        .opt_time("started_at", j.started_at)
        .opt_time("finished_at", j.finished_at)
        .error("error", j.error);
    if (j.recovered) f.boolean("recovered", true);
    f.end();
}

void write_json(std::string& out, const Host& h) {
    Fields f{out};
    f.str("hostname", h.hostname)
        .opt_str("libvirt_version", h.libvirt_version)
        .opt_str("qemu_version", h.qemu_version)
        .str("snapvirt_version", h.snapvirt_version)
        .boolean("stale", h.stale);
    f.key("capabilities");
    Fields{out}
        .words("modes", h.capabilities.modes)
        .words("methods", h.capabilities.methods)
        .boolean("external_revert", h.capabilities.external_revert)
        .end();
    f.end();
}

void write_json(std::string& out, const Schedule& s) {
    // The stopped options mean nothing for a memory schedule: null there. A stopped schedule
    // without its own timeout waits for snapshots.shutdown_timeout_s: null too.
    const bool stopped = s.mode == SnapshotMode::stopped;
    Fields f{out};
    f.str("id", s.id)
        .ref("instance", s.instance)
        .str("name", s.name)
        .str("cron", s.cron)
        .str("timezone", s.timezone)
        .str("mode", to_string(s.mode))
        .num_or_null("shutdown_timeout_s", stopped && s.stopped.shutdown_timeout_s.has_value(),
                     s.stopped.shutdown_timeout_s.value_or(0))
        .bool_or_null("force_stop", stopped, s.stopped.force_stop)
        .bool_or_null("keep_stopped", stopped, s.stopped.keep_stopped)
        .str("display_name_template",
             s.display_name_template.value_or(config::ScheduleConfig::default_display_name_template))
        .opt_num("keep_last", s.keep_last)
        .opt_str("max_age", s.max_age)
        .num("jitter_s", s.jitter_s)
        .boolean("enabled", s.enabled)
        .opt_time("next_run_at", s.next_run_at);
    f.key("last_run");
    if (s.last_run)
        write_json(out, *s.last_run);
    else
        out += "null";
    f.time("created_at", s.created_at).time("updated_at", s.updated_at).end();
}

void write_json(std::string& out, const ScheduleRun& r) {
    Fields{out}
        .time("at", r.at)
        .time("slot", r.slot)
        .opt_str("job_id", r.job_id)
        .str("outcome", to_string(r.outcome))
        .error("error", r.error)
        .end();
}

void write_schedule_run_event(std::string& out, const Schedule& s, const ScheduleRun& r) {
    Fields{out}
        .str("schedule_id", s.id)
        .ref("instance", s.instance)
        .time("slot", r.slot)
        .time("at", r.at)
        .opt_str("job_id", r.job_id)
        .str("outcome", to_string(r.outcome))
        .error("error", r.error)
        .end();
}

}  // namespace snapvirt::api
