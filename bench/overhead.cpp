// Benchmarks 1, 4 and 6 of docs/BENCHMARKS.md, on real QEMU guests:
//   overhead  — create (memory, stopped), revert and delete through snapvirt's API (POST, then
//               long-poll until the job ends) against the same libvirt calls made directly,
//               alternating on the same guest, several rounds; prints medians and ratios.
//   parallel  — 4 stopped-mode snapshots on 4 running guests at once vs one after another.
//   pause     — guest_paused_ms of memory snapshots for guests with 64..512 MiB of dirty RAM.
//   methods   — internal vs external memory snapshots of a guest with 1 GiB of dirty RAM (needs
//               libvirt 9.7+: bench/run-external runs it on the Debian 13 stack): guest pause, job
//               time, revert and delete; external with and without the memory file's writeback.
// Output: one JSON object per line on stdout (bench/run turns them into the table).
//   bench_overhead overhead|parallel|pause|methods [rounds]

#include "tests/support/daemon.hpp"
#include "tests/support/guest.hpp"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <functional>
#include <iostream>
#include <map>
#include <stdexcept>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

using namespace snapvirt;
using namespace snapvirt::test;
using namespace std::chrono_literals;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double seconds(const std::function<void()>& fn) {
    const auto t0 = Clock::now();
    fn();
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

void quiet(void*, virErrorPtr) {}

// The baseline: libvirt's C API, on a connection of the benchmark's own.
class Direct {
public:
    explicit Direct(const std::string& uuid) {
        virSetErrorFunc(nullptr, quiet);
        conn_ = virConnectOpen("qemu:///system");
        dom_ = conn_ ? virDomainLookupByUUIDString(conn_, uuid.c_str()) : nullptr;
        if (!dom_) throw std::runtime_error("direct: cannot open the domain");
    }
    ~Direct() {
        virDomainFree(dom_);
        virConnectClose(conn_);
    }
    void create(const std::string& name, bool memory) {
        const std::string xml = "<domainsnapshot><name>" + name + "</name>" +
                                (memory ? "<memory snapshot='internal'/>" : "") + "</domainsnapshot>";
        virDomainSnapshotPtr s = virDomainSnapshotCreateXML(dom_, xml.c_str(), VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC);
        if (!s) throw std::runtime_error(std::string("direct create: ") + virGetLastErrorMessage());
        virDomainSnapshotFree(s);
    }
    // What a stopped-mode snapshot of a running guest does: ask it to shut down, wait up to
    // `timeout` for it, power it off, take the disk-only snapshot, start it again.
    void stopped_cycle(const std::string& name, std::chrono::milliseconds timeout) {
        if (virDomainShutdown(dom_) < 0) throw std::runtime_error(std::string("direct shutdown: ") + virGetLastErrorMessage());
        const auto deadline = Clock::now() + timeout;
        int state = 0, reason = 0;
        while (virDomainGetState(dom_, &state, &reason, 0) == 0 && state != VIR_DOMAIN_SHUTOFF && Clock::now() < deadline)
            std::this_thread::sleep_for(std::min<Clock::duration>(std::chrono::milliseconds(200), deadline - Clock::now()));
        if (state != VIR_DOMAIN_SHUTOFF && virDomainDestroy(dom_) < 0)
            throw std::runtime_error(std::string("direct destroy: ") + virGetLastErrorMessage());
        create(name, false);
        if (virDomainCreate(dom_) < 0) throw std::runtime_error(std::string("direct start: ") + virGetLastErrorMessage());
    }
    void revert(const std::string& name) {
        virDomainSnapshotPtr s = virDomainSnapshotLookupByName(dom_, name.c_str(), 0);
        if (!s || virDomainRevertToSnapshot(s, 0) < 0)
            throw std::runtime_error(std::string("direct revert: ") + virGetLastErrorMessage());
        virDomainSnapshotFree(s);
    }
    void remove(const std::string& name) {
        virDomainSnapshotPtr s = virDomainSnapshotLookupByName(dom_, name.c_str(), 0);
        if (!s || virDomainSnapshotDelete(s, 0) < 0)
            throw std::runtime_error(std::string("direct delete: ") + virGetLastErrorMessage());
        virDomainSnapshotFree(s);
    }

private:
    virConnectPtr conn_ = nullptr;
    virDomainPtr dom_ = nullptr;
};

// The same through snapvirt: the request, then a long-poll until the job ends.
class Api {
public:
    explicit Api(client::Client c) : c_(std::move(c)) {}
    std::string create(const std::string& instance, const std::string& name, const std::string& mode) {
        return create_with(instance, {{"mode", mode}, {"name", name}});
    }
    std::string create_with(const std::string& instance, const json& body) {
        auto r = c_.post("/v1/instances/" + instance + "/snapshots", body);
        if (r.status != 202) throw std::runtime_error("api create: " + r.body);
        finish(r);
        return r.json()["snapshot"]["id"];
    }
    void revert(const std::string& id) { finish(c_.post("/v1/snapshots/" + id + "/revert", json::object())); }
    void remove(const std::string& id) { finish(c_.del("/v1/snapshots/" + id)); }
    json snapshot(const std::string& id) { return c_.get("/v1/snapshots/" + id).json(); }

private:
    void finish(const client::Response& accepted) {
        if (accepted.status != 202) throw std::runtime_error("api: " + accepted.body);
        auto job = wait_job(c_, accepted.json()["job"]["id"]);
        if (job["state"] != "succeeded") throw std::runtime_error("api job: " + job.dump());
    }
    client::Client c_;
};

// `snapshots`: more [snapshots] settings, one per line.
DaemonOptions quiet_daemon(const std::string& snapshots = "") {
    DaemonOptions o;
    o.config = "[reconcile]\ninterval_s = 3600\n[snapshots]\nmax_snapshots_per_instance = 0\n" + snapshots;
    // SNAPVIRT_BENCH_LOG=1: the daemon logs at debug level (job phases with timestamps) and its
    // log goes to stderr when the benchmark ends, to see where an API call spends its time.
    if (std::getenv("SNAPVIRT_BENCH_LOG")) o.config += "[log]\nlevel = \"debug\"\n";
    return o;
}

void dump_log(const Daemon& d) {
    if (std::getenv("SNAPVIRT_BENCH_LOG")) std::cerr << d.log();
}

// One side of the comparison: the same three operations, by libvirt directly or through the API.
struct Side {
    std::string name;
    std::function<std::string(const std::string&)> create;  // snapshot name -> handle
    std::function<void(const std::string&)> revert, remove;
};

void overhead(int rounds) {
    std::map<std::string, std::vector<double>> t;
    // Each round runs create -> revert -> delete on one side, then on the other, so both start
    // from the same disk image (no snapshots of the other side in the qcow2 file, freed clusters
    // alike); which side goes first alternates between rounds.
    auto run_round = [&](int i, std::vector<Side*> sides, bool with_revert, const std::string& create_key) {
        if (i % 2) std::reverse(sides.begin(), sides.end());
        for (Side* s : sides) {
            std::string h;
            t[create_key + "." + s->name].push_back(seconds([&] { h = s->create(s->name + "-" + std::to_string(i)); }));
            if (with_revert) t["revert." + s->name].push_back(seconds([&] { s->revert(h); }));
            t[(with_revert ? "delete." : "delete_stopped.") + s->name].push_back(seconds([&] { s->remove(h); }));
        }
    };
    {
        // Memory snapshots, revert and delete on a running guest with 96 MiB of dirty RAM.
        TestGuest g({.tag = "bench", .memory_mib = 128, .fill_mib = 96});
        g.wait_booted();
        Daemon d(quiet_daemon());
        Direct direct(g.uuid());
        Api api(d.client());
        Side ds{"direct", [&](const std::string& n) { direct.create(n, true); return n; },
                [&](const std::string& n) { direct.revert(n); }, [&](const std::string& n) { direct.remove(n); }};
        Side as{"api", [&](const std::string& n) { return api.create(g.name(), n, "memory"); },
                [&](const std::string& id) { api.revert(id); }, [&](const std::string& id) { api.remove(id); }};
        for (int i = 0; i < rounds; ++i) run_round(i, {&ds, &as}, true, "create_memory");
        dump_log(d);
    }
    {
        // Stopped snapshots of a shut-off guest: the disk-only internal snapshot itself.
        TestGuest g({.tag = "benchoff", .running = false});
        Daemon d(quiet_daemon());
        Direct direct(g.uuid());
        Api api(d.client());
        Side ds{"direct", [&](const std::string& n) { direct.create(n, false); return n; }, nullptr,
                [&](const std::string& n) { direct.remove(n); }};
        Side as{"api", [&](const std::string& n) { return api.create(g.name(), n, "stopped"); }, nullptr,
                [&](const std::string& id) { api.remove(id); }};
        for (int i = 0; i < rounds; ++i) run_round(i, {&ds, &as}, false, "create_stopped");
        dump_log(d);
    }
    {
        // The whole stopped-mode cycle on a running guest that ignores the ACPI request (so both
        // sides wait the full second, then power it off), snapshot, start again.
        TestGuest g({.tag = "benchcycle"});
        g.wait_booted();
        Daemon d(quiet_daemon());
        Direct direct(g.uuid());
        Api api(d.client());
        const json body = {{"mode", "stopped"}, {"force_stop", true}, {"shutdown_timeout_s", 1}};
        Side ds{"direct", [&](const std::string& n) { direct.stopped_cycle(n, std::chrono::seconds(1)); return n; },
                nullptr, [&](const std::string& n) { direct.remove(n); }};
        Side as{"api",
                [&](const std::string& n) {
                    json b = body;
                    b["name"] = n;
                    return api.create_with(g.name(), b);
                },
                nullptr, [&](const std::string& id) { api.remove(id); }};
        for (int i = 0; i < rounds; ++i) run_round(i, {&ds, &as}, false, "stopped_cycle");
        dump_log(d);
    }
    for (const std::string op : {"create_memory", "create_stopped", "stopped_cycle", "revert", "delete"}) {
        if (std::getenv("SNAPVIRT_BENCH_LOG"))
            for (const std::string side : {"direct", "api"}) {
                std::cerr << op << "." << side << ":";
                for (double v : t[op + "." + side]) std::cerr << " " << v;
                std::cerr << "\n";
            }
        const double a = median(t[op + ".api"]), b = median(t[op + ".direct"]);
        // The two sides of a round ran back to back on the same guest: their ratio is free of
        // the drift between rounds (a revert takes 1.8 s in one round and 3 s in the next).
        std::vector<double> paired;
        for (std::size_t i = 0; i < t[op + ".api"].size() && i < t[op + ".direct"].size(); ++i)
            paired.push_back(t[op + ".api"][i] / t[op + ".direct"][i]);
        std::cout << json{{"bench", "overhead"}, {"op", op}, {"rounds", rounds}, {"api_s", a}, {"direct_s", b},
                          {"ratio", median(paired)}}
                         .dump()
                  << std::endl;
    }
}

void parallel(int rounds) {
    std::vector<std::unique_ptr<TestGuest>> guests;
    for (int i = 0; i < 4; ++i) guests.push_back(std::make_unique<TestGuest>(GuestOptions{.tag = "par" + std::to_string(i)}));
    for (auto& g : guests) g->wait_booted();
    Daemon d(quiet_daemon());
    auto c = d.client();
    const json body = {{"mode", "stopped"}, {"force_stop", true}, {"shutdown_timeout_s", 2}};
    std::vector<double> seq, par;
    for (int r = 0; r < rounds; ++r) {
        seq.push_back(seconds([&] {
            for (auto& g : guests) {
                auto a = c.post("/v1/instances/" + g->name() + "/snapshots", body);
                if (wait_job(c, a.json()["job"]["id"])["state"] != "succeeded") throw std::runtime_error("seq job failed");
            }
        }));
        par.push_back(seconds([&] {
            std::vector<std::string> jobs;
            for (auto& g : guests) jobs.push_back(c.post("/v1/instances/" + g->name() + "/snapshots", body).json()["job"]["id"]);
            for (const auto& j : jobs)
                if (wait_job(c, j)["state"] != "succeeded") throw std::runtime_error("parallel job failed");
        }));
    }
    std::cout << json{{"bench", "parallel"}, {"rounds", rounds}, {"sequential_s", median(seq)},
                      {"parallel_s", median(par)}, {"ratio", median(par) / median(seq)}}
                     .dump()
              << std::endl;
}

void pause(int rounds) {
    for (unsigned mib : {64u, 128u, 256u, 512u}) {
        TestGuest g({.tag = "pause" + std::to_string(mib), .memory_mib = mib + 16, .fill_mib = mib});
        g.wait_booted();
        Daemon d(quiet_daemon());
        Api api(d.client());
        std::vector<double> paused;
        for (int i = 0; i < rounds; ++i) {
            const std::string id = api.create(g.name(), "p" + std::to_string(i), "memory");
            paused.push_back(api.snapshot(id)["guest_paused_ms"].get<double>());
            api.remove(id);
        }
        std::cout << json{{"bench", "pause"}, {"dirty_mib", mib}, {"rounds", rounds}, {"guest_paused_ms", median(paused)}}
                         .dump()
                  << std::endl;
    }
}

// One method's numbers: a fresh guest per method (the same RAM, dirtied the same way), a
// daemon of its own, `rounds` create → revert → delete cycles through the API.
json method_round(const std::string& label, const std::string& disk_format, unsigned writeback_ms, int rounds) {
    constexpr unsigned dirty_mib = 1024;
    TestGuest g({.tag = "meth-" + label, .memory_mib = dirty_mib + 64, .fill_mib = dirty_mib, .disk_format = disk_format});
    g.wait_booted();
    Daemon d(quiet_daemon("external_writeback_ms = " + std::to_string(writeback_ms) + "\n"));
    Api api(d.client());
    std::vector<double> paused, create_s, revert_s, delete_s;
    std::string method;
    for (int i = 0; i < rounds; ++i) {
        std::string id;
        create_s.push_back(seconds([&] { id = api.create(g.name(), "m" + std::to_string(i), "memory"); }));
        const json snap = api.snapshot(id);
        method = snap["method"];
        paused.push_back(snap["guest_paused_ms"].get<double>());
        revert_s.push_back(seconds([&] { api.revert(id); }));
        delete_s.push_back(seconds([&] { api.remove(id); }));
        dump_log(d);
    }
    return json{{"bench", "methods"},  {"label", label},           {"method", method},
                {"dirty_mib", dirty_mib}, {"rounds", rounds},        {"writeback_ms", writeback_ms},
                {"guest_paused_ms", median(paused)}, {"create_s", median(create_s)},
                {"revert_s", median(revert_s)},      {"delete_s", median(delete_s)}};
}

void methods(int rounds) {
    std::vector<std::tuple<std::string, std::string, unsigned>> variants{
        {"internal", "qcow2", 0}, {"external", "raw", 100}, {"external-no-writeback", "raw", 0}};
    // Other variants, e.g. writeback intervals: SNAPVIRT_BENCH_VARIANTS=internal:qcow2:0,external-25:raw:25
    if (const char* only = std::getenv("SNAPVIRT_BENCH_VARIANTS")) {  // label:format:writeback_ms,...
        variants.clear();
        std::stringstream in(only);
        for (std::string item; std::getline(in, item, ',');) {
            const auto a = item.find(':'), b = item.rfind(':');
            variants.emplace_back(item.substr(0, a), item.substr(a + 1, b - a - 1), std::stoul(item.substr(b + 1)));
        }
    }
    for (const auto& [label, format, writeback] : variants)
        std::cout << method_round(label, format, writeback, rounds).dump() << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << "usage: bench_overhead overhead|parallel|pause|methods [rounds]\n";
        return 2;
    }
    const std::string what = argv[1];
    const int rounds = argc > 2 ? std::atoi(argv[2]) : 5;
    try {
        if (what == "overhead") overhead(rounds);
        else if (what == "parallel") parallel(rounds);
        else if (what == "pause") pause(rounds);
        else if (what == "methods") methods(rounds);
        else throw std::runtime_error("unknown benchmark '" + what + "'");
    } catch (const std::exception& e) {
        std::cerr << "bench_overhead: " << e.what() << std::endl;
        return 1;
    }
    return 0;
}
