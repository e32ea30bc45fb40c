#include "cli/session.hpp"

#include "cli/errors.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>
#include <thread>

namespace snapvirt::cli {

namespace {

using namespace std::chrono;
using client::TransportError;

bool terminal_state(const json& job) {
    const std::string s = str(job["state"]);
    return s == "succeeded" || s == "failed" || s == "cancelled";
}

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

bool looks_like_id_prefix(const std::string& s) {
    return s.size() >= 4 && s.size() <= 36 &&
           std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) || c == '-'; });
}

// "3f2a9c1e (web1/nightly)": a snapshot by its display name, a schedule by its name.
std::string describe(const json& s) {
    const json& name = s.contains("display_name") ? s["display_name"] : s["name"];
    return short_id(s["id"]) + " (" + clean(str(s["instance"]["name"])) + "/" + clean(str(name)) + ")";
}

json unique(const std::vector<json>& matches, const std::string& what, const std::string& ref) {
    const bool named = what != "job";  // snapshots and schedules have INSTANCE/NAME references
    if (matches.size() == 1) return matches.front();
    if (matches.empty())
        throw Failure(Exit::not_found, "There is no " + what + " '" + clean(ref) + "'.",
                      named ? "Name a " + what + " by its ID, a unique ID prefix, INSTANCE/NAME or a unique name."
                            : "Name a job by its ID or a unique ID prefix.");
    std::string list;
    for (std::size_t i = 0; i < matches.size() && i < 5; ++i)
        list += (i ? ", " : "") + (named ? describe(matches[i]) : short_id(matches[i]["id"]));
    if (matches.size() > 5) list += ", ...";
    throw Failure(Exit::usage,
                  "'" + clean(ref) + "' matches " + std::to_string(matches.size()) + " " + what + "s: " + list + ".",
                  named ? "Name one by its ID or as INSTANCE/NAME." : "Give more of the job's ID.");
}

// The command-line option that sets a request field the daemon refused (details.field).
std::string option_for(const std::string& field) {
    if (field == "jitter_s") return "--jitter";
    if (field == "shutdown_timeout_s") return "--shutdown-timeout";
    std::string o = "--" + field;
    std::replace(o.begin(), o.end(), '_', '-');
    return o;
}

// Which value of the request was refused, in the command line's terms: "--cron: its minute
// field (minute hour day-of-month month day-of-week)".
std::string field_hint(const json& details) {
    if (!details.is_object() || !details.contains("field") || !details["field"].is_string()) return "";
    const std::string field = str(details["field"]);
    std::string hint = "The refused value is " + option_for(field) + " ('" + clean(field) + "' in the API)";
    const std::string part = str(details.value("cron_field", json()));
    if (!part.empty()) {
        std::string words = part;
        std::replace(words.begin(), words.end(), '_', '-');
        hint += part == "expression" ? ": the expression as a whole"
                                     : ": its " + clean(words) + " field (the fields are [second] minute hour "
                                       "day-of-month month day-of-week)";
    }
    return hint + ".";
}

// Ctrl-C while waiting: say how to follow the job, then leave. Only async-signal-safe calls.
char interrupt_text[512];
std::size_t interrupt_len = 0;

extern "C" void on_interrupt(int) {
    ssize_t rc = ::write(STDERR_FILENO, interrupt_text, interrupt_len);
    (void)rc;
    ::_exit(static_cast<int>(Exit::interrupted));
}

class InterruptGuard {
public:
    InterruptGuard(const std::string& text) {
        const std::size_t n = std::min(text.size(), sizeof interrupt_text);
        std::memcpy(interrupt_text, text.data(), n);
        interrupt_len = n;
        struct sigaction sa {};
        sa.sa_handler = on_interrupt;
        sigemptyset(&sa.sa_mask);
        ::sigaction(SIGINT, &sa, &old_);
    }
    ~InterruptGuard() { ::sigaction(SIGINT, &old_, nullptr); }
    InterruptGuard(const InterruptGuard&) = delete;
    InterruptGuard& operator=(const InterruptGuard&) = delete;

private:
    struct sigaction old_ {};
};

}  // namespace

std::string with_query(const std::string& path, const Query& query) {
    std::string out = path;
    char sep = path.find('?') == std::string::npos ? '?' : '&';
    for (const auto& [k, v] : query) {
        out += sep + k + "=" + client::escape(v);
        sep = '&';
    }
    return out;
}

std::string new_idempotency_key() {
    std::random_device rd;
    std::uint8_t b[16];
    for (auto& x : b) x = static_cast<std::uint8_t>(rd());
    b[6] = static_cast<std::uint8_t>((b[6] & 0x0f) | 0x40);
    b[8] = static_cast<std::uint8_t>((b[8] & 0x3f) | 0x80);
    static const char* hex = "0123456789abcdef";
    std::string out;
    for (int i = 0; i < 16; ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
        out += hex[b[i] >> 4];
        out += hex[b[i] & 15];
    }
    return out;
}

bool is_uuid(const std::string& s) {
    if (s.size() != 36) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
    }
    return true;
}

Session::Session(client::Url url, std::string token, client::TlsOptions tls)
    : client_(std::move(url), std::move(token), std::move(tls)) {}

client::Response Session::send(const std::string& method, const std::string& target, const std::string& body,
                               const client::Headers& headers) const {
    try {
        return client_.send(method, target, body, headers);
    } catch (const TransportError& e) {
        fail_transport(e);
    }
}

void Session::fail(const client::Response& r) const {
    std::string message, code, hint;
    json details;
    try {
        const json j = json::parse(r.body);
        message = str(j["error"]["message"]);
        code = str(j["error"]["code"]);
        details = j["error"].value("details", json::object());
    } catch (const json::exception&) {
    }
    if (message.empty()) message = "The daemon answered HTTP " + std::to_string(r.status) + ".";
    if (code == "instance_busy" && details.is_object() && details.contains("job_id"))
        hint = "Follow the running job with: snapvirt jobs wait " + str(details["job_id"]);
    else if (r.status == 401)
        hint = client_.token().empty() ? "No token was sent: set SNAPVIRT_TOKEN or pass --token-file."
                                       : "The token in SNAPVIRT_TOKEN or --token-file was not accepted.";
    else if (r.status == 403)
        hint = "Changes need a token with the write scope.";
    else if (code == "invalid_request" || code == "unknown_field")
        hint = field_hint(details);
    else if (code == "schedule_exists")
        hint = "Give the schedule another name with --name.";
    throw Failure(exit_for_status(r.status), clean(message), hint);
}

void Session::fail_transport(const TransportError& e, const std::string& hint) const {
    const client::Url& u = client_.url();
    if (u.kind == client::Url::Kind::unix_socket) {
        struct stat st {};
        if (::stat(u.path.c_str(), &st) == 0 && ::access(u.path.c_str(), R_OK | W_OK) != 0 && errno == EACCES)
            throw Failure(Exit::auth, e.what(),
                          "The socket's permissions decide who may use it: join its group (usually 'snapvirt') or use sudo.");
        if (hint.empty())
            throw Failure(Exit::unavailable, e.what(), "Is snapvirtd running? Choose another daemon with --socket or --url.");
    }
    throw Failure(Exit::unavailable, e.what(), hint);
}

json Session::expect(const client::Response& r, int low, int high) const {
    if (r.status < low || r.status > high) fail(r);
    if (r.status == 204) return nullptr;
    try {
        return json::parse(r.body);
    } catch (const json::exception&) {
        throw Failure(Exit::internal, "The daemon answered " + std::to_string(r.status) + " with a body that is not JSON.");
    }
}

json Session::get(const std::string& target) const { return expect(send("GET", target, {}, {})); }

std::optional<json> Session::find(const std::string& target) const {
    auto r = send("GET", target, {}, {});
    if (r.status == 404) return std::nullopt;
    return expect(r);
}

json Session::post(const std::string& target, const json& body, const std::string& key) const {
    const client::Headers headers = {{"Idempotency-Key", key}};
    const std::string text = body.dump();
    const milliseconds backoff[] = {milliseconds(500), milliseconds(1500)};
    for (int attempt = 0;; ++attempt) {
        try {
            return expect(client_.send("POST", target, text, headers));
        } catch (const TransportError& e) {
            // The same key and body make a repeat harmless: the daemon answers with the first result.
            if (attempt < 2) {
                std::this_thread::sleep_for(backoff[attempt]);
                continue;
            }
            fail_transport(e, "The request may have reached the daemon; 'snapvirt jobs list' shows whether a job "
                              "started. Repeating it with Idempotency-Key " + key + " is safe.");
        }
    }
}

json Session::patch(const std::string& target, const json& body) const {
    return expect(send("PATCH", target, body.dump(), {}));
}

json Session::del(const std::string& target) const { return expect(send("DELETE", target, {}, {})); }

json Session::all_pages(const std::string& path, Query query) const {
    json items = json::array();
    std::string cursor;
    for (;;) {
        Query q = query;
        q.emplace_back("limit", "1000");
        if (!cursor.empty()) q.emplace_back("cursor", cursor);
        json page = get(with_query(path, q));
        for (auto& it : page["items"]) items.push_back(std::move(it));
        cursor = str(page["next_cursor"]);
        if (cursor.empty()) return items;
    }
}

json Session::snapshot(const std::string& ref) const {
    if (ref.empty()) throw Failure(Exit::usage, "The snapshot reference is empty.");
    if (is_uuid(ref)) return get("/v1/snapshots/" + lower(ref));

    const auto slash = ref.find('/');
    if (slash != std::string::npos && slash > 0) {
        const std::string instance = ref.substr(0, slash), name = ref.substr(slash + 1);
        if (auto list = find("/v1/instances/" + client::escape(instance) + "/snapshots")) {
            const json& items = (*list)["items"];
            for (const char* field : {"display_name", "name"}) {
                std::vector<json> m;
                for (const auto& s : items)
                    if (str(s[field]) == name) m.push_back(s);
                if (!m.empty()) return unique(m, "snapshot", ref);
            }
            std::vector<json> m;
            if (looks_like_id_prefix(name))
                for (const auto& s : items)
                    if (str(s["id"]).rfind(lower(name), 0) == 0) m.push_back(s);
            return unique(m, "snapshot", ref);
        }
        // No such instance: the slash may be part of a display name.
    }

    std::vector<json> m;
    const bool prefix = looks_like_id_prefix(ref);
    for (const auto& s : all_pages("/v1/snapshots", {}))
        if (str(s["display_name"]) == ref || str(s["name"]) == ref || (prefix && str(s["id"]).rfind(lower(ref), 0) == 0))
            m.push_back(s);
    return unique(m, "snapshot", ref);
}

json Session::job(const std::string& ref) const {
    if (is_uuid(ref)) return get("/v1/jobs/" + lower(ref));
    if (!looks_like_id_prefix(ref))
        throw Failure(Exit::usage, "'" + clean(ref) + "' is not a job ID.", "Give a job's ID or at least its first 4 characters.");
    std::vector<json> m;
    for (const auto& j : all_pages("/v1/jobs", {}))
        if (str(j["id"]).rfind(lower(ref), 0) == 0) m.push_back(j);
    return unique(m, "job", ref);
}

json Session::schedule(const std::string& ref) const {
    if (ref.empty()) throw Failure(Exit::usage, "The schedule reference is empty.");
    if (is_uuid(ref)) return get("/v1/schedules/" + lower(ref));

    const auto slash = ref.find('/');
    if (slash != std::string::npos && slash > 0) {
        const std::string instance = ref.substr(0, slash), name = ref.substr(slash + 1);
        const json list = get("/v1/instances/" + client::escape(instance) + "/schedules");
        std::vector<json> m;
        for (const auto& s : list["items"])
            if (str(s["name"]) == name) m.push_back(s);
        if (m.empty() && looks_like_id_prefix(name))
            for (const auto& s : list["items"])
                if (str(s["id"]).rfind(lower(name), 0) == 0) m.push_back(s);
        return unique(m, "schedule", ref);
    }

    std::vector<json> m;
    const bool prefix = looks_like_id_prefix(ref);
    for (const auto& s : all_pages("/v1/schedules", {}))
        if (str(s["name"]) == ref || (prefix && str(s["id"]).rfind(lower(ref), 0) == 0)) m.push_back(s);
    return unique(m, "schedule", ref);
}

WaitResult Session::wait(json job, const WaitOptions& o) const {
    const std::string id = str(job["id"]);
    const bool tty = o.progress == ProgressMode::tty;
    InterruptGuard guard(std::string(tty ? "\r\033[K" : "\n") + "snapvirt: Stopped waiting; job " + id +
                         " goes on in the daemon.\nFollow it with: snapvirt jobs wait " + id + "\n");
    Progress progress(o.progress, o.label);

    // Elapsed time counts from the job's creation (a `jobs wait` may join late).
    const auto started = steady_clock::now() - std::max(milliseconds(0), between(job["created_at"], json()));
    const auto deadline = o.timeout ? steady_clock::now() + *o.timeout : steady_clock::time_point::max();
    steady_clock::time_point unreachable_since{};  // epoch: reachable
    std::string note;
    for (;;) {
        const auto now = steady_clock::now();
        if (terminal_state(job)) {
            progress.finish(job);
            return {job, false};
        }
        progress.update(job, duration_cast<milliseconds>(now - started), note);
        if (now >= deadline) {
            progress.clear();
            return {job, true};
        }
        // On a terminal the line is redrawn every second; plain lines only need phase changes.
        long long wait_s = tty ? 1 : 2;
        if (o.timeout) wait_s = std::clamp<long long>(duration_cast<seconds>(deadline - now + milliseconds(999)).count(), 1, wait_s);
        try {
            auto r = client_.send("GET", "/v1/jobs/" + id + "?wait=" + std::to_string(wait_s), {}, {});
            job = expect(r);
            unreachable_since = {};
            note.clear();
        } catch (const TransportError& e) {
            // The daemon may be restarting; its jobs survive that.
            if (unreachable_since == steady_clock::time_point{}) unreachable_since = now;
            if (now - unreachable_since > seconds(60)) {
                progress.clear();
                fail_transport(e, "The job may still be running; check with: snapvirt jobs show " + id);
            }
            note = "daemon unreachable, retrying";
            std::this_thread::sleep_for(seconds(1));
        }
    }
}

}  // namespace snapvirt::cli
