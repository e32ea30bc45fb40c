// Benchmarks 1, 4 and 6 of docs/BENCHMARKS.md, on real QEMU guests:
//   overhead  — create (memory, stopped), revert and delete through snapvirt's API (POST, then
//               long-poll until the job ends) against the same libvirt calls made directly,
//               alternating on the same guest, several rounds; prints medians and ratios.
//   parallel  — 4 stopped-mode snapshots on 4 running guests at once vs one after another.
//   pause     — guest_paused_ms of memory snapshots for guests with 64..512 MiB of dirty RAM.
// Output: one JSON object per line on stdout (bench/run turns them into the table).
//   bench_overhead overhead|parallel|pause [rounds]

#include "tests/support/daemon.hpp"
#include "tests/support/guest.hpp"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
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
        auto r = c_.post("/v1/instances/" + instance + "/snapshots", {{"mode", mode}, {"name", name}});
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

DaemonOptions quiet_daemon() {
    DaemonOptions o;
    o.config = "[reconcile]\ninterval_s = 3600\n[snapshots]\nmax_snapshots_per_instance = 0\n";
    return o;
}

void overhead(int rounds) {
    std::map<std::string, std::vector<double>> t;
    {
        // Memory snapshots, revert and delete on a running guest with 96 MiB of dirty RAM.
        TestGuest g({.tag = "bench", .memory_mib = 128, .fill_mib = 96});
        g.wait_booted();
        Daemon d(quiet_daemon());
        Direct direct(g.uuid());
        Api api(d.client());
        for (int i = 0; i < rounds; ++i) {
            const std::string dn = "direct-" + std::to_string(i), an = "api-" + std::to_string(i);
            t["create_memory.direct"].push_back(seconds([&] { direct.create(dn, true); }));
            std::string id;
            t["create_memory.api"].push_back(seconds([&] { id = api.create(g.name(), an, "memory"); }));
            t["revert.direct"].push_back(seconds([&] { direct.revert(dn); }));
            t["revert.api"].push_back(seconds([&] { api.revert(id); }));
            t["delete.direct"].push_back(seconds([&] { direct.remove(dn); }));
            t["delete.api"].push_back(seconds([&] { api.remove(id); }));
        }
    }
    {
        // Stopped snapshots of a shut-off guest: the disk-only internal snapshot itself.
        TestGuest g({.tag = "benchoff", .running = false});
        Daemon d(quiet_daemon());
        Direct direct(g.uuid());
        Api api(d.client());
        for (int i = 0; i < rounds; ++i) {
            t["create_stopped.direct"].push_back(seconds([&] { direct.create("direct-" + std::to_string(i), false); }));
            t["create_stopped.api"].push_back(
                seconds([&] { api.create(g.name(), "api-" + std::to_string(i), "stopped"); }));
        }
    }
    for (const std::string op : {"create_memory", "create_stopped", "revert", "delete"}) {
        const double a = median(t[op + ".api"]), b = median(t[op + ".direct"]);
        std::cout << json{{"bench", "overhead"}, {"op", op}, {"rounds", rounds}, {"api_s", a}, {"direct_s", b},
                          {"ratio", a / b}}
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

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << "usage: bench_overhead overhead|parallel|pause [rounds]\n";
        return 2;
    }
    const std::string what = argv[1];
    const int rounds = argc > 2 ? std::atoi(argv[2]) : 5;
    try {
        if (what == "overhead") overhead(rounds);
        else if (what == "parallel") parallel(rounds);
        else if (what == "pause") pause(rounds);
        else throw std::runtime_error("unknown benchmark '" + what + "'");
    } catch (const std::exception& e) {
        std::cerr << "bench_overhead: " << e.what() << std::endl;
        return 1;
    }
    return 0;
}
