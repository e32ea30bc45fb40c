// The `snapvirt` CLI end to end: the built binary runs as a child process against the built
// snapvirtd and real QEMU guests, over TCP with a token and over the Unix socket. Its JSON output
// is parsed, its effects are checked through the API and libvirt, and its exit codes are the
// documented ones (docs/cli.md).

#include "tests/e2e/helpers.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <map>
#include <thread>

#ifndef SNAPVIRT_CLI_PATH
#error "SNAPVIRT_CLI_PATH must name the built snapvirt binary"
#endif

extern char** environ;

using namespace snapvirt;
using namespace snapvirt::test;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

using Env = std::map<std::string, std::string>;

struct Run {
    int exit = -1;
    std::string out, err;

    json doc() const {
        INFO("stdout: " << out << "\nstderr: " << err);
        json j;
        REQUIRE_NOTHROW(j = json::parse(out));  // exactly one JSON document on stdout
        return j;
    }
    // The first "snapvirt: ..." line on stderr (progress lines may come before it).
    std::string first_error_line() const {
        const auto at = err.rfind("snapvirt: ", 0) == 0 ? 0 : err.find("\nsnapvirt: ");
        if (at == std::string::npos) return "";
        const auto begin = at == 0 ? 0 : at + 1;
        return err.substr(begin, err.find('\n', begin) - begin);
    }
};

// The child's environment: ours without SNAPVIRT_* (so the host's settings cannot leak in), plus `env`.
std::vector<std::string> child_env(const Env& env) {
    std::vector<std::string> out;
    for (char** e = environ; *e; ++e)
        if (std::strncmp(*e, "SNAPVIRT_", 9) != 0) out.emplace_back(*e);
    for (const auto& [k, v] : env) out.push_back(k + "=" + v);
    return out;
}

[[noreturn]] void exec_child(const std::vector<std::string>& args, const Env& env) {
    std::vector<std::string> envs = child_env(env);
    std::vector<char*> argv, envp;
    for (auto& a : const_cast<std::vector<std::string>&>(args)) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : envs) envp.push_back(e.data());
    envp.push_back(nullptr);
    ::execve(argv[0], argv.data(), envp.data());
    _exit(127);
}

// Runs a program with stdin from /dev/null (not a terminal) and collects stdout and stderr.
Run run_process(const std::vector<std::string>& args, const Env& env, std::chrono::seconds timeout = 300s) {
    int out[2], err[2];
    REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
    REQUIRE(::pipe2(err, O_CLOEXEC) == 0);
    const pid_t pid = ::fork();
    if (pid == 0) {
        const int null = ::open("/dev/null", O_RDONLY);
        ::dup2(null, STDIN_FILENO);
        ::dup2(out[1], STDOUT_FILENO);
        ::dup2(err[1], STDERR_FILENO);
        exec_child(args, env);
    }
    REQUIRE(pid > 0);
    ::close(out[1]);
    ::close(err[1]);
    Run r;
    pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    int open_fds = 2;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (open_fds > 0 && std::chrono::steady_clock::now() < deadline) {
        if (::poll(fds, 2, 200) <= 0) continue;
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
            char buf[8192];
            const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
            if (n > 0) {
                (i == 0 ? r.out : r.err).append(buf, static_cast<std::size_t>(n));
            } else {
                ::close(fds[i].fd);
                fds[i].fd = -1;
                --open_fds;
            }
        }
    }
    if (open_fds > 0) ::kill(pid, SIGKILL);
    for (auto& f : fds)
        if (f.fd >= 0) ::close(f.fd);
    int status = 0;
    ::waitpid(pid, &status, 0);
    r.exit = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return r;
}

// Runs a program on a pseudo-terminal (stdin, stdout and stderr); when `prompt` shows up, types
// `answer` and Enter. Returns the exit code and everything the terminal showed.
Run run_on_terminal(const std::vector<std::string>& args, const Env& env, const std::string& prompt,
                    const std::string& answer) {
    int master = -1;
    winsize ws{};
    ws.ws_col = 160;
    ws.ws_row = 40;
    const pid_t pid = ::forkpty(&master, nullptr, nullptr, &ws);
    if (pid == 0) exec_child(args, env);
    REQUIRE(pid > 0);
    Run r;
    bool answered = false;
    const auto deadline = std::chrono::steady_clock::now() + 300s;
    while (std::chrono::steady_clock::now() < deadline) {
        pollfd p{master, POLLIN, 0};
        if (::poll(&p, 1, 200) <= 0) continue;
        char buf[4096];
        const ssize_t n = ::read(master, buf, sizeof buf);
        if (n <= 0) break;  // EIO: the child closed the terminal
        r.out.append(buf, static_cast<std::size_t>(n));
        if (!answered && r.out.find(prompt) != std::string::npos) {
            const std::string line = answer + "\n";
            REQUIRE(::write(master, line.data(), line.size()) == static_cast<ssize_t>(line.size()));
            answered = true;
        }
    }
    ::close(master);
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == 0) {
        std::this_thread::sleep_for(2s);
        if (::waitpid(pid, &status, WNOHANG) == 0) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
        }
    }
    r.exit = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return r;
}

// The CLI pointed at one daemon: `base` are the endpoint flags, `env` its environment.
struct Cli {
    std::vector<std::string> base;
    Env env;

    Run operator()(const std::vector<std::string>& args, const Env& extra = {}) const {
        std::vector<std::string> argv = {SNAPVIRT_CLI_PATH};
        argv.insert(argv.end(), base.begin(), base.end());
        argv.insert(argv.end(), args.begin(), args.end());
        Env e = env;
        for (const auto& [k, v] : extra) e[k] = v;
        Run r = run_process(argv, e);
        UNSCOPED_INFO("snapvirt " << [&] {
            std::string s;
            for (const auto& a : args) s += a + " ";
            return s;
        }() << "-> exit " << r.exit << "\nstdout: " << r.out << "\nstderr: " << r.err);
        return r;
    }
    Run on_terminal(const std::vector<std::string>& args, const std::string& answer,
                    const std::string& prompt = "[y/N]") const {
        std::vector<std::string> argv = {SNAPVIRT_CLI_PATH};
        argv.insert(argv.end(), base.begin(), base.end());
        argv.insert(argv.end(), args.begin(), args.end());
        Env e = env;
        e["TERM"] = "xterm";
        return run_on_terminal(argv, e, prompt, answer);
    }
};

Cli tcp_cli(const Daemon& d) { return {{"--url", d.url().to_string()}, {{"SNAPVIRT_TOKEN", d.token()}}}; }
Cli unix_cli(const Daemon& d) { return {{"--socket", d.socket_path().string()}, {}}; }

// The documented exit codes.
constexpr int ok = 0, job_failed = 1, usage = 2, not_found = 3, conflict = 4, rejected = 5, auth = 6, unavailable = 7,
              not_confirmed = 8, timed_out = 9;

bool contains(const std::string& haystack, const std::string& needle) { return haystack.find(needle) != std::string::npos; }

// create with RAM (waits), list, show, revert --yes, edit, delete --yes: all through the CLI,
// each checked through the CLI's JSON, the API and the guest itself.
void lifecycle(const Cli& cli, const client::Client& c, TestGuest& g) {

    // Create a memory snapshot; the CLI waits for the job.
    Run r = cli({"snapshots", "create", g.name(), "--mode", "memory", "--name", "ram", "--description", "taken by the CLI",
                 "-o", "json"});
    REQUIRE(r.exit == ok);
    const json created = r.doc();
    REQUIRE(created["job"]["state"] == "succeeded");
    CHECK(created["job"]["kind"] == "create");
    const json& s = created["snapshot"];
    const std::string id = s["id"];
    CHECK(s["state"] == "ready");
    CHECK(s["mode"] == "memory");
    CHECK(s["name"] == "ram");
    CHECK(s["description"] == "taken by the CLI");
    CHECK(s["is_current"] == true);
    CHECK(s["guest_paused_ms"].get<std::int64_t>() > 0);
    // Not a terminal: plain progress lines on stderr, never a redrawn line.
    CHECK(contains(r.err, "Creating snapshot 'ram' of '" + g.name() + "': succeeded after"));
    CHECK_FALSE(contains(r.err, "\r"));
    CHECK(c.get("/v1/snapshots/" + id).json()["state"] == "ready");
    CHECK(g.current_snapshot() == "ram");
    CHECK(g.state() == "running");
    const std::uint64_t at_snapshot = g.counter();

    // The instance's list and the host-wide list, parsed.
    r = cli({"snapshots", "list", g.name(), "-o", "json"});
    REQUIRE(r.exit == ok);
    json items = r.doc()["items"];
    REQUIRE(items.size() == 1);
    CHECK(items[0]["id"] == id);
    r = cli({"snapshots", "list", "--mode", "memory", "-q", "taken by the CLI", "--all", "-o", "json"});
    REQUIRE(r.exit == ok);
    const json page = r.doc();
    CHECK(page["next_cursor"].is_null());
    bool listed = false;
    for (const auto& it : page["items"]) listed = listed || it["id"] == id;
    CHECK(listed);
    r = cli({"snapshots", "list", g.name()});  // the table
    REQUIRE(r.exit == ok);
    CHECK(contains(r.out, "ID"));
    CHECK(contains(r.out, id.substr(0, 8)));
    CHECK(contains(r.out, "ram"));

    // Revert by INSTANCE/NAME: the guest's RAM counter comes back.
    std::this_thread::sleep_for(2500ms);
    const std::uint64_t before_revert = g.counter();
    REQUIRE(before_revert > at_snapshot + 1500);
    r = cli({"snapshots", "revert", g.name() + "/ram", "--yes", "-o", "json"});
    REQUIRE(r.exit == ok);
    const json revert_job = r.doc()["job"];
    CHECK(revert_job["kind"] == "revert");
    CHECK(revert_job["state"] == "succeeded");
    CHECK(revert_job["snapshot_id"] == id);
    const std::uint64_t after_revert = g.counter();
    INFO("at_snapshot=" << at_snapshot << " before_revert=" << before_revert << " after_revert=" << after_revert);
    CHECK(after_revert < before_revert);
    CHECK(after_revert < at_snapshot + 1500);
    CHECK(g.state() == "running");
    CHECK(c.get("/v1/jobs/" + revert_job["id"].get<std::string>()).json()["state"] == "succeeded");

    // Edit; then find the snapshot by its new display name and by an ID prefix.
    const std::string display = "Before upgrade of " + g.name();
    const std::string description = "edited <by> \"the CLI\" & more";
    r = cli({"snapshots", "edit", id, "--display-name", display, "--description", description, "-o", "json"});
    REQUIRE(r.exit == ok);
    CHECK(r.doc()["display_name"] == display);
    CHECK(r.doc()["description"] == description);
    const json edited = c.get("/v1/snapshots/" + id).json();
    CHECK(edited["display_name"] == display);
    CHECK(edited["description"] == description);
    CHECK(edited["name"] == "ram");
    r = cli({"snapshots", "show", display, "-o", "json"});
    REQUIRE(r.exit == ok);
    CHECK(r.doc()["id"] == id);
    r = cli({"snapshots", "show", id.substr(0, 13), "-o", "json"});
    REQUIRE(r.exit == ok);
    CHECK(r.doc()["id"] == id);

    // The people-facing views name what a user looks for.
    r = cli({"snapshots", "show", id});
    REQUIRE(r.exit == ok);
    CHECK(contains(r.out, "Display name:"));
    CHECK(contains(r.out, display));
    r = cli({"snapshots", "list", g.name(), "-o", "wide"});
    REQUIRE(r.exit == ok);
    CHECK(contains(r.out, id));  // full IDs
    r = cli({"instances", "show", g.name()});
    REQUIRE(r.exit == ok);
    CHECK(contains(r.out, g.uuid()));
    CHECK(contains(r.out, display));  // its snapshot tree
    r = cli({"jobs", "list", "--instance", g.name(), "--kind", "revert", "-o", "json"});
    REQUIRE(r.exit == ok);
    REQUIRE(r.doc()["items"].size() == 1);
    CHECK(r.doc()["items"][0]["id"] == revert_job["id"]);
    r = cli({"jobs", "show", revert_job["id"].get<std::string>().substr(0, 8), "-o", "json"});
    REQUIRE(r.exit == ok);
    CHECK(r.doc()["state"] == "succeeded");

    // Delete: the snapshot leaves the catalog and libvirt.
    r = cli({"snapshots", "delete", g.name() + "/" + display, "--yes", "-o", "json"});
    REQUIRE(r.exit == ok);
    const json delete_job = r.doc()["job"];
    CHECK(delete_job["kind"] == "delete");
    CHECK(delete_job["state"] == "succeeded");
    CHECK(c.get("/v1/snapshots/" + id).status == 404);
    CHECK_FALSE(g.has_snapshot("ram"));
    CHECK(g.state() == "running");

    r = cli({"snapshots", "show", id});
    CHECK(r.exit == not_found);
    CHECK(r.first_error_line() == "snapvirt: " + c.get("/v1/snapshots/" + id).json()["error"]["message"].get<std::string>());
    r = cli({"snapshots", "list", g.name(), "-o", "json"});
    REQUIRE(r.exit == ok);
    CHECK(r.doc()["items"].empty());
}

std::string create_token(const Daemon& d, const std::string& scope, const std::string& name) {
    Run r = run_process({Daemon::binary().string(), "--state-dir", d.state_dir().string(), "token", "create", "--scope",
                         scope, "--name", name},
                        {});
    INFO(r.out << r.err);
    REQUIRE(r.exit == 0);
    std::string out = r.out;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out.substr(out.rfind('\n') + 1);
}

}  // namespace

TEST_CASE("Over TCP with a token the CLI takes, lists, reverts, edits and deletes a memory snapshot", "[cli]") {
    TestGuest g({.tag = "clitcp", .memory_mib = 64, .fill_mib = 16});
    g.wait_booted();
    Daemon d;
    lifecycle(tcp_cli(d), d.client(), g);
}

TEST_CASE("Over the Unix socket the CLI does the same without a token", "[cli]") {
    TestGuest g({.tag = "cliunix", .memory_mib = 64, .fill_mib = 16});
    g.wait_booted();
    DaemonOptions o;
    o.tcp = false;  // the socket alone: no token exists
    Daemon d(o);
    // A token in the environment is never sent on the socket (the daemon would refuse this one).
    Cli cli = unix_cli(d);
    cli.env["SNAPVIRT_TOKEN"] = "not-a-valid-token";
    // The daemon's instance list catches up with libvirt shortly after start-up.
    json listed;
    REQUIRE(eventually(
        [&] {
            Run r = cli({"instances", "-o", "json"});
            if (r.exit != ok) return false;
            const json doc = r.doc();
            for (const auto& i : doc["items"])
                if (i["name"] == g.name()) listed = i;
            return listed.is_object();
        },
        10s, 200ms));
    CHECK(listed["state"] == "running");
    Run r = cli({"instances", "show", g.name(), "-o", "json"});
    REQUIRE(r.exit == ok);
    CHECK(r.doc()["uuid"] == g.uuid());
    // `host`: the API's Host as it is, and as Key: value lines.
    const json host = d.unix_client().get("/v1/host").json();
    r = cli({"host", "-o", "json"});
    REQUIRE(r.exit == ok);
    CHECK(r.doc() == host);
    r = cli({"host"});
    REQUIRE(r.exit == ok);
    CHECK(contains(r.out, host["hostname"].get<std::string>()));
    CHECK(contains(r.out, host["libvirt_version"].get<std::string>()));
    CHECK(contains(r.out, host["qemu_version"].get<std::string>()));
    CHECK(contains(r.out, host["snapvirt_version"].get<std::string>()));
    lifecycle(cli, d.unix_client(), g);
}

TEST_CASE("Usage errors exit 2 and unknown objects exit 3 with the API's message", "[cli]") {
    Daemon d;
    Cli cli = tcp_cli(d);
    auto c = d.client();

    CHECK(cli({"snapshots", "create", "web1"}).exit == usage);  // --mode is required
    CHECK(cli({"snapshots", "frobnicate"}).exit == usage);
    CHECK(cli({"snapshots"}).exit == usage);
    CHECK(cli({"instances", "--bogus"}).exit == usage);
    CHECK(cli({"snapshots", "create", "web1", "--mode", "hot"}).exit == usage);
    Run r = cli({"snapshots", "create", "web1", "--mode", "memory", "--force-stop"});
    CHECK(r.exit == usage);
    CHECK(contains(r.err, "--mode stopped only"));
    CHECK(cli({"snapshots", "edit", "00000000-0000-0000-0000-000000000000"}).exit == usage);
    CHECK(cli({"--socket", "/tmp/x.sock", "instances"}).exit == usage);  // and --url
    CHECK(cli({"instances", "-o", "yaml"}).exit == usage);
    CHECK(cli({"jobs", "show", "not-a-job"}).exit == usage);

    const std::string nobody = "svt-nobody-" + std::to_string(::getpid());
    r = cli({"instances", "show", nobody});
    CHECK(r.exit == not_found);
    CHECK(r.first_error_line() ==
          "snapvirt: " + c.get("/v1/instances/" + nobody).json()["error"]["message"].get<std::string>());
    r = cli({"snapshots", "create", nobody, "--mode", "stopped"});
    CHECK(r.exit == not_found);
    CHECK(cli({"snapshots", "show", "00000000-0000-0000-0000-000000000000"}).exit == not_found);
    CHECK(cli({"snapshots", "show", nobody + "/nothing"}).exit == not_found);
    CHECK(cli({"snapshots", "delete", "00000000-0000-0000-0000-000000000000", "--yes"}).exit == not_found);
    r = cli({"jobs", "show", "00000000-0000-0000-0000-000000000000"});
    CHECK(r.exit == not_found);
    CHECK(r.first_error_line() == "snapvirt: " + c.get("/v1/jobs/00000000-0000-0000-0000-000000000000")
                                                     .json()["error"]["message"]
                                                     .get<std::string>());
    CHECK(cli({"jobs", "wait", "ffffffff"}).exit == not_found);
}

TEST_CASE("Refused requests exit 5 and conflicts exit 4, nothing changes", "[cli]") {
    TestGuest off({.tag = "clioff", .running = false});
    TestGuest other({.tag = "clioff2", .running = false});
    Daemon d;
    Cli cli = tcp_cli(d);
    auto c = d.client();

    // 422: a memory snapshot needs a running guest. The CLI prints the API's message.
    Run r = cli({"snapshots", "create", off.name(), "--mode", "memory"});
    CHECK(r.exit == rejected);
    const auto api = c.post("/v1/instances/" + off.name() + "/snapshots", {{"mode", "memory"}});
    REQUIRE(api.status == 422);
    CHECK(r.first_error_line() == "snapvirt: " + api.json()["error"]["message"].get<std::string>());
    // 400: a name libvirt would not take.
    CHECK(cli({"snapshots", "create", off.name(), "--mode", "stopped", "--name", "has space"}).exit == rejected);
    CHECK(snapshots_of(c, off.name()).empty());

    // 409: the name exists; the display name is taken.
    r = cli({"snapshots", "create", off.name(), "--mode", "stopped", "--name", "one", "-o", "id"});
    REQUIRE(r.exit == ok);
    const std::string one_id = r.out.substr(0, r.out.find('\n'));
    CHECK(r.out == one_id + "\n");  // -o id: the snapshot's ID alone, for shell scripts
    CHECK(c.get("/v1/snapshots/" + one_id).json()["name"] == "one");
    REQUIRE(cli({"snapshots", "create", off.name(), "--mode", "stopped", "--name", "two"}).exit == ok);
    r = cli({"snapshots", "create", off.name(), "--mode", "stopped", "--name", "one"});
    CHECK(r.exit == conflict);
    CHECK(contains(r.err, "snapvirt: "));
    // --method: the instance's snapshots are internal, one method per instance (409); a word
    // that is no method is a usage error before any request.
    r = cli({"snapshots", "create", off.name(), "--mode", "stopped", "--method", "external"});
    CHECK(r.exit == conflict);
    CHECK(contains(r.err, "share one method"));
    CHECK(cli({"snapshots", "create", off.name(), "--mode", "stopped", "--method", "sideways"}).exit == usage);
    r = cli({"snapshots", "show", off.name() + "/one"});
    CHECK(contains(r.out, "internal"));
    r = cli({"snapshots", "edit", off.name() + "/two", "--display-name", "one"});
    CHECK(r.exit == conflict);
    CHECK(snapshots_of(c, off.name()).size() == 2);
    CHECK(off.snapshot_count() == 2);

    // A name on two instances is ambiguous (exit 2); INSTANCE/NAME picks one.
    REQUIRE(cli({"snapshots", "create", other.name(), "--mode", "stopped", "--name", "one"}).exit == ok);
    r = cli({"snapshots", "show", "one"});
    CHECK(r.exit == usage);
    CHECK(contains(r.err, one_id.substr(0, 8)));
    CHECK(contains(r.err, "INSTANCE/NAME"));
    r = cli({"snapshots", "show", off.name() + "/one", "-o", "json"});
    REQUIRE(r.exit == ok);
    CHECK(r.doc()["id"] == one_id);

    // An Idempotency-Key repeated with the same request answers with the first job; with another
    // request it is a conflict.
    const std::string key = "cli-test-" + off.name();
    r = cli({"snapshots", "create", off.name(), "--mode", "stopped", "--name", "three", "--idempotency-key", key, "-o", "json"});
    REQUIRE(r.exit == ok);
    const json first = r.doc();
    r = cli({"snapshots", "create", off.name(), "--mode", "stopped", "--name", "three", "--idempotency-key", key, "-o", "json"});
    REQUIRE(r.exit == ok);
    CHECK(r.doc()["job"]["id"] == first["job"]["id"]);
    CHECK(r.doc()["snapshot"]["id"] == first["snapshot"]["id"]);
    r = cli({"snapshots", "create", off.name(), "--mode", "stopped", "--name", "four", "--idempotency-key", key});
    CHECK(r.exit == conflict);
    CHECK(snapshots_of(c, off.name()).size() == 3);
}

TEST_CASE("A busy instance exits 4, an expired wait 9, a failed or cancelled job 1", "[cli]") {
    TestGuest g({.tag = "clibusy"});  // ignores ACPI: a graceful shutdown never completes
    g.wait_booted();
    Daemon d;
    Cli cli = tcp_cli(d);
    auto c = d.client();

    // A stopped snapshot without --force-stop fails once the shutdown timeout passes.
    Run r = cli({"snapshots", "create", g.name(), "--mode", "stopped", "--shutdown-timeout", "2", "-o", "json"});
    CHECK(r.exit == job_failed);
    const json failed = r.doc();
    CHECK(failed["job"]["state"] == "failed");
    CHECK(failed["job"]["error"]["code"] == "shutdown_timeout");
    CHECK(failed["snapshot"].is_null());
    CHECK(r.first_error_line() == "snapvirt: " + failed["job"]["error"]["message"].get<std::string>());
    CHECK(g.state() == "running");

    // Start a long one without waiting; the instance is busy meanwhile.
    r = cli({"snapshots", "create", g.name(), "--mode", "stopped", "--shutdown-timeout", "60", "--no-wait", "-o", "json"});
    REQUIRE(r.exit == ok);
    const std::string job_id = r.doc()["job"]["id"];
    CHECK(r.doc()["snapshot"]["state"] == "creating");
    REQUIRE(eventually([&] { return c.get("/v1/jobs/" + job_id).json()["progress"]["phase"] == "shutting_down"; }, 20s));
    r = cli({"snapshots", "create", g.name(), "--mode", "memory"});
    CHECK(r.exit == conflict);
    CHECK(contains(r.err, job_id));
    CHECK(contains(r.err, "snapvirt jobs wait " + job_id));

    // jobs list shows it running; jobs wait gives up after its timeout and the job goes on.
    r = cli({"jobs", "list", "--instance", g.name(), "--state", "running", "-o", "json"});
    REQUIRE(r.exit == ok);
    REQUIRE(r.doc()["items"].size() == 1);
    CHECK(r.doc()["items"][0]["id"] == job_id);
    r = cli({"jobs", "wait", job_id.substr(0, 8), "--timeout", "1", "-o", "json"});
    CHECK(r.exit == timed_out);
    CHECK(r.doc()["state"] == "running");
    CHECK(c.get("/v1/jobs/" + job_id).json()["state"] == "running");

    // Ctrl-C while waiting on a terminal stops the waiting, not the job.
    r = cli.on_terminal({"jobs", "wait", job_id}, "\x03", "shutting_down");
    INFO(r.out);
    CHECK(r.exit == 130);
    CHECK(contains(r.out, "goes on in the daemon"));
    CHECK(contains(r.out, "snapvirt jobs wait " + job_id));
    CHECK(c.get("/v1/jobs/" + job_id).json()["state"] == "running");

    // Cancel it while it waits for the shutdown; waiting for it then exits 1 (cancelled).
    r = cli({"jobs", "cancel", job_id, "-o", "json"});
    CHECK(r.exit == ok);
    CHECK(r.doc()["id"] == job_id);
    r = cli({"jobs", "wait", job_id, "-o", "json"});
    CHECK(r.exit == job_failed);
    CHECK(r.doc()["state"] == "cancelled");
    CHECK(g.state() == "running");
    r = cli({"jobs", "cancel", job_id});
    CHECK(r.exit == conflict);
    CHECK(snapshots_of(c, g.name()).empty());
}

TEST_CASE("Revert and delete refuse without a terminal unless --yes", "[cli]") {
    TestGuest off({.tag = "cliconfirm", .running = false});
    Daemon d;
    Cli cli = tcp_cli(d);
    auto c = d.client();
    const auto taken = take_snapshot(c, off.name(), {{"mode", "stopped"}, {"name", "keep"}});
    REQUIRE(taken.job["state"] == "succeeded");
    const std::string id = taken.snapshot["id"];
    const auto jobs_before = c.get("/v1/jobs?instance=" + off.name()).json()["items"].size();

    Run r = cli({"snapshots", "revert", id});
    CHECK(r.exit == not_confirmed);
    CHECK(contains(r.err, "--yes"));
    r = cli({"snapshots", "delete", off.name() + "/keep"});
    CHECK(r.exit == not_confirmed);
    CHECK(contains(r.err, "not a terminal"));
    CHECK(c.get("/v1/snapshots/" + id).json()["state"] == "ready");
    CHECK(off.has_snapshot("keep"));
    CHECK(c.get("/v1/jobs?instance=" + off.name()).json()["items"].size() == jobs_before);
}

TEST_CASE("On a terminal revert and delete ask first, no changes nothing and yes goes ahead", "[cli]") {
    TestGuest off({.tag = "clitty", .running = false});
    Daemon d;
    Cli cli = tcp_cli(d);
    auto c = d.client();
    const auto taken = take_snapshot(c, off.name(), {{"mode", "stopped"}, {"name", "asked"}});
    REQUIRE(taken.job["state"] == "succeeded");
    const std::string id = taken.snapshot["id"];

    Run r = cli.on_terminal({"snapshots", "delete", id}, "n");
    INFO(r.out);
    CHECK(r.exit == not_confirmed);
    CHECK(contains(r.out, "Delete snapshot 'asked' of '" + off.name() + "'"));
    CHECK(c.get("/v1/snapshots/" + id).status == 200);

    r = cli.on_terminal({"snapshots", "revert", id}, "yes");
    INFO(r.out);
    CHECK(r.exit == ok);
    CHECK(contains(r.out, "Revert '" + off.name() + "' to snapshot 'asked'"));
    CHECK(contains(r.out, "Reverting '" + off.name() + "' to 'asked': succeeded after"));

    r = cli.on_terminal({"snapshots", "delete", id}, "y");
    INFO(r.out);
    CHECK(r.exit == ok);
    CHECK(contains(r.out, "\r\033[K"));  // the progress line is redrawn in place
    CHECK(contains(r.out, "Deleting snapshot 'asked' of '" + off.name() + "': succeeded after"));
    CHECK(c.get("/v1/snapshots/" + id).status == 404);
    CHECK_FALSE(off.has_snapshot("asked"));
}

TEST_CASE("Authentication failures exit 6 and an unreachable daemon exits 7", "[cli]") {
    TestGuest off({.tag = "cliauth", .running = false});
    Daemon d;
    Cli cli = tcp_cli(d);
    auto c = d.client();

    Run r = cli({"instances"}, {{"SNAPVIRT_TOKEN", "wrong-token"}});
    CHECK(r.exit == auth);
    r = cli({"instances"}, {{"SNAPVIRT_TOKEN", ""}});
    CHECK(r.exit == auth);
    CHECK(contains(r.err, "SNAPVIRT_TOKEN"));

    // A read token from a file may list but not change anything.
    const std::string read_token = create_token(d, "read", "cli-reader");
    const auto file = d.state_dir() / "reader.token";
    std::ofstream(file) << read_token << "\n";
    Cli reader{{"--url", d.url().to_string(), "--token-file", file.string()}, {{"SNAPVIRT_TOKEN", "ignored"}}};
    // The daemon looks at new tokens within half a second.
    REQUIRE(eventually([&] { return reader({"snapshots", "list", off.name(), "-o", "json"}).exit == ok; }, 5s, 200ms));
    r = reader({"snapshots", "create", off.name(), "--mode", "stopped"});
    CHECK(r.exit == auth);
    CHECK(snapshots_of(c, off.name()).empty());
    CHECK(reader({"snapshots", "list", off.name()}, {}).exit == ok);
    Cli missing_file{{"--url", d.url().to_string(), "--token-file", (d.state_dir() / "nope").string()}, {}};
    CHECK(missing_file({"instances"}).exit == usage);

    // Nobody listens.
    const std::string nowhere = (d.state_dir() / "nobody.sock").string();
    r = run_process({SNAPVIRT_CLI_PATH, "--socket", nowhere, "instances"}, {});
    CHECK(r.exit == unavailable);
    CHECK(contains(r.err, nowhere));
    r = run_process({SNAPVIRT_CLI_PATH, "instances"}, {{"SNAPVIRT_URL", "http://127.0.0.1:1"}, {"SNAPVIRT_TOKEN", "x"}});
    CHECK(r.exit == unavailable);
}

TEST_CASE("Every command has --help, the main help documents the exit codes, --version prints the version", "[cli]") {
    const std::vector<std::vector<std::string>> commands = {
        {},
        {"host"},
        {"instances"},
        {"instances", "list"},
        {"instances", "show"},
        {"snapshots"},
        {"snapshots", "list"},
        {"snapshots", "show"},
        {"snapshots", "create"},
        {"snapshots", "revert"},
        {"snapshots", "edit"},
        {"snapshots", "delete"},
        {"schedules"},
        {"schedules", "list"},
        {"schedules", "show"},
        {"schedules", "create"},
        {"schedules", "edit"},
        {"schedules", "delete"},
        {"jobs"},
        {"jobs", "list"},
        {"jobs", "show"},
        {"jobs", "wait"},
        {"jobs", "cancel"},
    };
    for (const auto& cmd : commands) {
        std::vector<std::string> argv = {SNAPVIRT_CLI_PATH};
        argv.insert(argv.end(), cmd.begin(), cmd.end());
        argv.push_back("--help");
        Run r = run_process(argv, {});
        INFO(r.out << r.err);
        CHECK(r.exit == 0);
        CHECK(contains(r.out, "Usage:"));
        if (!cmd.empty()) CHECK(contains(r.out, cmd.back()));
    }
    Run r = run_process({SNAPVIRT_CLI_PATH, "--help"}, {});
    CHECK(contains(r.out, "Exit codes:"));
    CHECK(contains(r.out, "8    not confirmed"));
    CHECK(contains(r.out, "SNAPVIRT_TOKEN"));
    r = run_process({SNAPVIRT_CLI_PATH, "snapshots", "create", "--help"}, {});
    CHECK(contains(r.out, "--mode"));
    CHECK(contains(r.out, "--idempotency-key"));
    r = run_process({SNAPVIRT_CLI_PATH, "--version"}, {});
    CHECK(r.exit == 0);
    CHECK(contains(r.out, "snapvirt "));
    CHECK(run_process({SNAPVIRT_CLI_PATH}, {}).exit == usage);
}

// ---- schedules -------------------------------------------------------------------------------

namespace {

json schedule_by_api(const client::Client& c, const std::string& id) {
    auto r = c.get("/v1/schedules/" + id);
    INFO(r.body);
    REQUIRE(r.status == 200);
    return r.json();
}

}  // namespace

TEST_CASE("Schedules: the CLI creates, lists, shows, edits and deletes a schedule", "[cli][schedules]") {
    TestGuest g({.tag = "clisched", .running = false});
    Daemon d;
    Cli cli = tcp_cli(d);
    auto c = d.client();

    // The example, as written: no --name, so the name comes from the cron expression.
    Run r = cli({"schedules", "create", g.name(), "--cron", "0 2 * * *", "--mode", "memory", "--keep-last", "7", "-o", "json"});
    REQUIRE(r.exit == ok);
    const json created = r.doc();
    const std::string id = created["id"];
    CHECK(created["name"] == "daily-0200");
    CHECK(created["instance"]["name"] == g.name());
    CHECK(created["cron"] == "0 2 * * *");
    CHECK(created["timezone"] == "UTC");
    CHECK(created["mode"] == "memory");
    CHECK(created["keep_last"] == 7);
    CHECK(created["max_age"].is_null());
    CHECK(created["enabled"] == true);
    CHECK(created["next_run_at"].is_string());
    CHECK(created["last_run"].is_null());
    CHECK(schedule_by_api(c, id) == created);
    // The next run is the next 02:00 UTC.
    CHECK(created["next_run_at"].get<std::string>().substr(10) == "T02:00:00.000Z");

    // The same command again: the name is taken (exit 4), with a hint to choose another.
    r = cli({"schedules", "create", g.name(), "--cron", "0 2 * * *", "--mode", "memory", "--keep-last", "7"});
    CHECK(r.exit == conflict);
    CHECK(contains(r.err, "--name"));

    // A second one with every option.
    r = cli({"schedules", "create", g.name(), "--name", "office", "--cron", "*/15 8-18 * * mon-fri", "--timezone", "Europe/Berlin",
             "--mode", "stopped", "--max-age", "12h", "--display-name-template", "{schedule} {time}", "--jitter", "30",
             "--shutdown-timeout", "60", "--force-stop", "--keep-stopped", "--disabled", "-o", "json"});
    REQUIRE(r.exit == ok);
    const json office = r.doc();
    CHECK(office["name"] == "office");
    CHECK(office["timezone"] == "Europe/Berlin");
    CHECK(office["mode"] == "stopped");
    CHECK(office["keep_last"].is_null());
    CHECK(office["max_age"] == "12h");
    CHECK(office["display_name_template"] == "{schedule} {time}");
    CHECK(office["jitter_s"] == 30);
    CHECK(office["shutdown_timeout_s"] == 60);
    CHECK(office["force_stop"] == true);
    CHECK(office["keep_stopped"] == true);
    CHECK(office["enabled"] == false);
    CHECK(office["next_run_at"].is_null());

    // The instance's list, the host-wide list, the table.
    r = cli({"schedules", "list", g.name(), "-o", "json"});
    REQUIRE(r.exit == ok);
    json items = r.doc()["items"];
    REQUIRE(items.size() == 2);
    CHECK(items[0]["name"] == "daily-0200");  // by name
    CHECK(items[1]["name"] == "office");
    r = cli({"schedules", "list", "--all", "-o", "json"});
    REQUIRE(r.exit == ok);
    CHECK(r.doc()["next_cursor"].is_null());
    CHECK(r.doc()["items"].size() == 2);
    r = cli({"schedules", "list", g.name()});
    REQUIRE(r.exit == ok);
    for (const char* column : {"NAME", "INSTANCE", "CRON", "TZ", "MODE", "KEEP LAST", "MAX AGE", "ENABLED", "NEXT RUN", "LAST RUN"})
        CHECK(contains(r.out, column));
    CHECK(contains(r.out, id.substr(0, 8)));
    CHECK(contains(r.out, "0 2 * * *"));
    CHECK(contains(r.out, "Europe/Berlin"));
    CHECK(contains(r.out, "(disabled)"));
    CHECK(contains(r.out, "in "));  // the next run, from now
    r = cli({"schedules", "list", g.name(), "-o", "id"});
    REQUIRE(r.exit == ok);
    CHECK(r.out == id + "\n" + office["id"].get<std::string>() + "\n");

    // show: by INSTANCE/NAME, by ID prefix, by a name unique on the host.
    for (const std::string& ref : {g.name() + "/daily-0200", id.substr(0, 8), std::string("daily-0200")}) {
        r = cli({"schedules", "show", ref, "-o", "json"});
        REQUIRE(r.exit == ok);
        CHECK(r.doc()["id"] == id);
    }
    r = cli({"schedules", "show", g.name() + "/daily-0200"});
    REQUIRE(r.exit == ok);
    CHECK(contains(r.out, "Cron:"));
    CHECK(contains(r.out, "Next run:"));
    CHECK(contains(r.out, "Keep last:"));
    CHECK(contains(r.out, "(none yet)"));

    // edit: only what is given changes.
    r = cli({"schedules", "edit", g.name() + "/daily-0200", "--cron", "30 3 * * *", "--timezone", "Europe/Berlin", "--keep-last", "9",
             "-o", "json"});
    REQUIRE(r.exit == ok);
    json s = schedule_by_api(c, id);
    CHECK(r.doc() == s);
    CHECK(s["cron"] == "30 3 * * *");
    CHECK(s["timezone"] == "Europe/Berlin");
    CHECK(s["keep_last"] == 9);
    CHECK(s["mode"] == "memory");
    CHECK(s["name"] == "daily-0200");
    CHECK(s["enabled"] == true);
    r = cli({"schedules", "edit", id, "--disable", "-o", "json"});
    REQUIRE(r.exit == ok);
    s = schedule_by_api(c, id);
    CHECK(s["enabled"] == false);
    CHECK(s["next_run_at"].is_null());
    r = cli({"schedules", "edit", id, "--enable", "--max-age", "7d", "--no-keep-last", "--name", "nightly", "-o", "json"});
    REQUIRE(r.exit == ok);
    s = schedule_by_api(c, id);
    CHECK(s["enabled"] == true);
    CHECK(s["next_run_at"].is_string());
    CHECK(s["keep_last"].is_null());
    CHECK(s["max_age"] == "7d");
    CHECK(s["name"] == "nightly");
    CHECK(cli({"schedules", "edit", id}).exit == usage);  // nothing to change
    r = cli({"schedules", "edit", id, "--name", "office"});
    CHECK(r.exit == conflict);
    CHECK(schedule_by_api(c, id)["name"] == "nightly");

    // delete: refused without a terminal unless --yes; then gone (exit 3 afterwards).
    r = cli({"schedules", "delete", g.name() + "/nightly"});
    CHECK(r.exit == not_confirmed);
    CHECK(contains(r.err, "--yes"));
    CHECK(c.get("/v1/schedules/" + id).status == 200);
    r = cli({"schedules", "delete", g.name() + "/nightly", "--yes"});
    REQUIRE(r.exit == ok);
    CHECK(contains(r.out, "Deleted schedule 'nightly' of '" + g.name() + "'"));
    CHECK(c.get("/v1/schedules/" + id).status == 404);
    r = cli({"schedules", "show", id});
    CHECK(r.exit == not_found);
    CHECK(r.first_error_line() == "snapvirt: " + c.get("/v1/schedules/" + id).json()["error"]["message"].get<std::string>());
    r = cli({"schedules", "delete", office["id"].get<std::string>(), "--yes", "-o", "json"});
    REQUIRE(r.exit == ok);
    CHECK(r.doc()["id"] == office["id"]);
    r = cli({"schedules", "list", g.name(), "-o", "json"});
    REQUIRE(r.exit == ok);
    CHECK(r.doc()["items"].empty());
}

TEST_CASE("Schedules: refused values exit 5 and name the field, a bad cron which part of it", "[cli][schedules]") {
    TestGuest g({.tag = "cliscval", .running = false});
    Daemon d;
    Cli cli = tcp_cli(d);
    auto c = d.client();
    const std::vector<std::string> base = {"schedules", "create", g.name(), "--mode", "memory"};
    const auto create = [&](std::vector<std::string> more) {
        std::vector<std::string> args = base;
        args.insert(args.end(), more.begin(), more.end());
        return cli(args);
    };

    // A minute of 61: the message is the API's, the hint names --cron and its minute field.
    Run r = create({"--cron", "61 2 * * *", "--keep-last", "3"});
    CHECK(r.exit == rejected);
    const auto api = c.post("/v1/instances/" + g.name() + "/schedules",
                            {{"name", "x"}, {"cron", "61 2 * * *"}, {"mode", "memory"}, {"keep_last", 3}});
    REQUIRE(api.status == 400);
    CHECK(api.json()["error"]["details"]["cron_field"] == "minute");
    CHECK(r.first_error_line() == "snapvirt: " + api.json()["error"]["message"].get<std::string>());
    CHECK(contains(r.err, "hint: The refused value is --cron"));
    CHECK(contains(r.err, "its minute field"));

    r = create({"--cron", "0 2 * 13 *", "--keep-last", "3"});
    CHECK(r.exit == rejected);
    CHECK(contains(r.err, "its month field"));
    r = create({"--cron", "0 2 * * * * *", "--keep-last", "3"});  // seven fields
    CHECK(r.exit == rejected);
    CHECK(contains(r.err, "--cron"));

    // Neither keep-last nor max-age: the daemon names keep_last.
    r = create({"--cron", "0 2 * * *"});
    CHECK(r.exit == rejected);
    CHECK(contains(r.err, "--keep-last"));
    r = create({"--cron", "0 2 * * *", "--keep-last", "3", "--timezone", "Mars/Olympus_Mons"});
    CHECK(r.exit == rejected);
    CHECK(contains(r.err, "--timezone"));
    r = create({"--cron", "0 2 * * *", "--max-age", "7 days"});
    CHECK(r.exit == rejected);
    CHECK(contains(r.err, "--max-age"));
    r = create({"--cron", "0 2 * * *", "--keep-last", "3", "--display-name-template", "{schedule} {hostname}"});
    CHECK(r.exit == rejected);
    CHECK(contains(r.err, "--display-name-template"));
    r = create({"--cron", "0 2 * * *", "--keep-last", "3", "--name", "has space"});
    CHECK(r.exit == rejected);
    CHECK(contains(r.err, "--name"));

    // Checked before anything is sent: stopped options with memory, a missing --cron or --mode.
    r = create({"--cron", "0 2 * * *", "--keep-last", "3", "--force-stop"});
    CHECK(r.exit == usage);
    CHECK(contains(r.err, "--mode stopped only"));
    CHECK(create({"--keep-last", "3"}).exit == usage);
    CHECK(cli({"schedules", "create", g.name(), "--cron", "@daily", "--keep-last", "3"}).exit == usage);
    CHECK(create({"--cron", "@daily", "--keep-last", "0"}).exit == usage);
    CHECK(create({"--cron", "@daily", "--jitter", "4000", "--keep-last", "1"}).exit == usage);

    // Unknown instance and schedule: exit 3.
    const std::string nobody = "svt-nobody-" + std::to_string(::getpid());
    CHECK(cli({"schedules", "create", nobody, "--cron", "@daily", "--mode", "stopped", "--keep-last", "1"}).exit == not_found);
    CHECK(cli({"schedules", "list", nobody}).exit == not_found);
    CHECK(cli({"schedules", "show", "00000000-0000-0000-0000-000000000000"}).exit == not_found);
    CHECK(cli({"schedules", "edit", "00000000-0000-0000-0000-000000000000", "--disable"}).exit == not_found);
    CHECK(cli({"schedules", "delete", g.name() + "/nothing", "--yes"}).exit == not_found);

    // An edit refused the same way leaves the schedule as it was.
    r = create({"--cron", "@daily", "--keep-last", "3", "-o", "id"});
    REQUIRE(r.exit == ok);
    const std::string id = r.out.substr(0, r.out.find('\n'));
    CHECK(schedule_by_api(c, id)["name"] == "daily");
    r = cli({"schedules", "edit", id, "--cron", "0 25 * * *"});
    CHECK(r.exit == rejected);
    CHECK(contains(r.err, "its hour field"));
    r = cli({"schedules", "edit", id, "--no-keep-last"});  // would leave neither keep_last nor max_age
    CHECK(r.exit == rejected);
    CHECK(contains(r.err, "--keep-last"));
    const json s = schedule_by_api(c, id);
    CHECK(s["cron"] == "@daily");
    CHECK(s["keep_last"] == 3);
    r = cli({"schedules", "list", g.name(), "-o", "json"});
    REQUIRE(r.exit == ok);
    CHECK(r.doc()["items"].size() == 1);
}

TEST_CASE("Schedules: on a terminal delete asks first, no keeps the schedule and yes deletes it", "[cli][schedules]") {
    TestGuest off({.tag = "cliscdel", .running = false});
    Daemon d;
    Cli cli = tcp_cli(d);
    auto c = d.client();
    auto created = c.post("/v1/instances/" + off.name() + "/schedules",
                          {{"name", "weekly"}, {"cron", "0 3 * * sun"}, {"mode", "stopped"}, {"keep_last", 4}});
    INFO(created.body);
    REQUIRE(created.status == 201);
    const std::string id = created.json()["id"];

    Run r = cli.on_terminal({"schedules", "delete", off.name() + "/weekly"}, "n");
    INFO(r.out);
    CHECK(r.exit == not_confirmed);
    CHECK(contains(r.out, "Delete schedule 'weekly' of '" + off.name() + "' (0 3 * * sun)?"));
    CHECK(c.get("/v1/schedules/" + id).status == 200);

    r = cli.on_terminal({"schedules", "delete", id.substr(0, 8)}, "y");
    INFO(r.out);
    CHECK(r.exit == ok);
    CHECK(c.get("/v1/schedules/" + id).status == 404);
}

TEST_CASE("Schedules: snapshots a schedule took show its name, and delete --snapshots takes them too", "[cli][schedules]") {
    TestGuest off({.tag = "cliscrun", .running = false});
    Daemon d;
    Cli cli = tcp_cli(d);
    auto c = d.client();

    // A hand-made snapshot, which the schedule never touches.
    REQUIRE(cli({"snapshots", "create", off.name(), "--mode", "stopped", "--name", "by-hand"}).exit == ok);
    // Every 5 seconds (a leading seconds field); a shut-off guest's stopped snapshot is quick.
    Run r = cli({"schedules", "create", off.name(), "--name", "often", "--cron", "*/5 * * * * *", "--mode", "stopped",
                 "--keep-last", "2", "-o", "json"});
    REQUIRE(r.exit == ok);
    const std::string id = r.doc()["id"];

    json taken;
    REQUIRE(eventually(
        [&] {
            for (const auto& s : snapshots_of(c, off.name()))
                if (s["schedule_id"] == id && s["state"] == "ready") taken = s;
            return taken.is_object();
        },
        60s, 500ms));
    // Stop it running, so the list below holds still.
    REQUIRE(cli({"schedules", "edit", id, "--disable"}).exit == ok);
    REQUIRE(eventually([&] { return c.get("/v1/instances/" + off.name()).json()["busy_job_id"].is_null(); }, 60s, 200ms));

    r = cli({"snapshots", "list", off.name()});
    REQUIRE(r.exit == ok);
    CHECK(contains(r.out, "SCHEDULE"));
    CHECK(contains(r.out, "often"));
    r = cli({"snapshots", "list"});
    REQUIRE(r.exit == ok);
    CHECK(contains(r.out, "often"));
    r = cli({"snapshots", "show", taken["id"].get<std::string>()});
    REQUIRE(r.exit == ok);
    CHECK(contains(r.out, "Schedule:"));
    CHECK(contains(r.out, "often (" + id + ")"));
    r = cli({"snapshots", "show", taken["id"].get<std::string>(), "-o", "json"});
    REQUIRE(r.exit == ok);
    CHECK(r.doc()["schedule_id"] == id);
    r = cli({"schedules", "show", id});
    REQUIRE(r.exit == ok);
    CHECK(contains(r.out, "Last run:"));
    CHECK_FALSE(contains(r.out, "(none yet)"));

    // delete --snapshots: the schedule's snapshots go (as delete jobs), the hand-made one stays.
    std::size_t own = 0;
    for (const auto& s : snapshots_of(c, off.name())) own += s["schedule_id"] == id;
    REQUIRE(own >= 1);
    r = cli({"schedules", "delete", id, "--snapshots", "--yes"});
    REQUIRE(r.exit == ok);
    CHECK(contains(r.out, "being deleted"));
    CHECK(c.get("/v1/schedules/" + id).status == 404);
    REQUIRE(eventually(
        [&] {
            const json items = snapshots_of(c, off.name());
            return items.size() == 1 && items[0]["name"] == "by-hand";
        },
        120s, 500ms));
    CHECK(off.has_snapshot("by-hand"));
}
