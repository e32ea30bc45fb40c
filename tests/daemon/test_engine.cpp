// The engine against libvirt's test driver (a node file with qcow2 and raw domains): job rules,
// validation, edits, deletes and reconciliation, hermetic and fast. The real-QEMU behaviour is
// in tests/e2e.

#include "daemon/api_errors.hpp"
#include "daemon/engine.hpp"
#include "daemon/reconciler.hpp"
#include "hypervisor/hypervisor.hpp"
#include "hypervisor/xml.hpp"
#include "tests/support/daemon.hpp"

#include "tests/support/catch.hpp"

#include <unistd.h>
#include <libvirt/libvirt.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>

using namespace snapvirt;
using namespace snapvirt::daemon;
using namespace std::chrono_literals;

namespace {

const char* const node_xml = R"(<node>
  <domain type='test'>
    <name>web1</name><uuid>11111111-0000-0000-0000-000000000001</uuid>
    <memory unit='MiB'>128</memory><vcpu>2</vcpu><os><type>hvm</type></os>
    <devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/w.qcow2'/><target dev='vda'/></disk></devices>
  </domain>
  <domain type='test'>
    <name>db1</name><uuid>11111111-0000-0000-0000-000000000002</uuid>
    <memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type>hvm</type></os>
    <devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/d.qcow2'/><target dev='vda'/></disk></devices>
  </domain>
  <domain type='test'>
    <name>rawvm</name><uuid>11111111-0000-0000-0000-000000000003</uuid>
    <memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type>hvm</type></os>
    <devices><disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/r.img'/><target dev='vdb'/></disk></devices>
  </domain>
</node>)";

class RecordingSink final : public api::EventSink {
public:
    void job_updated(const api::Job& j) override { add("job.updated", j.id + ":" + to_string(j.state)); }
    void snapshot_created(const api::Snapshot& s) override { add("snapshot.created", s.name); }
    void snapshot_updated(const api::Snapshot& s) override { add("snapshot.updated", s.name + ":" + to_string(s.state)); }
    void snapshot_deleted(const api::Snapshot& s) override { add("snapshot.deleted", s.name); }
    void instance_updated(const api::Instance& i) override { add("instance.updated", i.name); }
    void schedule_created(const api::Schedule& s) override { add("schedule.created", s.name); }
    void schedule_updated(const api::Schedule& s) override { add("schedule.updated", s.name); }
    void schedule_deleted(const api::Schedule& s) override { add("schedule.deleted", s.name); }
    void schedule_run(const api::Schedule& s, const api::ScheduleRun& r) override {
        add("schedule.run", s.name + ":" + to_string(r.outcome));
    }
    std::vector<std::pair<std::string, std::string>> events() {
        std::lock_guard lock(mu_);
        return events_;
    }
    bool saw(const std::string& type, const std::string& what) {
        for (const auto& e : events())
            if (e.first == type && e.second == what) return true;
        return false;
    }

private:
    void add(std::string type, std::string what) {
        std::lock_guard lock(mu_);
        events_.emplace_back(std::move(type), std::move(what));
    }
    std::mutex mu_;
    std::vector<std::pair<std::string, std::string>> events_;
};

struct Harness {
    explicit Harness(EngineOptions opts = {}) : dir(test::make_temp_dir("snapvirt-engine")) {
        std::ofstream(dir / "node.xml") << node_xml;
        hv::LibvirtOptions ho;
        ho.uri = "test://" + (dir / "node.xml").string();
        hypervisor = hv::make_libvirt_hypervisor(ho);
        REQUIRE(test::eventually([&] { return hypervisor->connected(); }, 5s, 10ms));
        catalog = std::make_unique<Catalog>(dir / "state");
        opts.poll_interval = 10ms;
        engine = std::make_unique<Engine>(opts, *catalog, *hypervisor, sink);
        engine->start();
        REQUIRE(test::eventually([&] { return engine->reconciled_once(); }, 5s, 10ms));
    }
    ~Harness() {
        engine->stop(5s);
        engine.reset();
        hypervisor.reset();
        catalog.reset();
        std::filesystem::remove_all(dir);
    }
    api::Job wait(const std::string& id) {
        api::Job j;
        REQUIRE(test::eventually(
            [&] {
                j = engine->get_job(id);
                return j.terminal();
            },
            10s, 5ms));
        return j;
    }
    api::Snapshot take(const std::string& instance, const std::string& name, SnapshotMode mode = SnapshotMode::memory) {
        api::CreateSnapshotRequest r;
        r.mode = mode;
        r.name = name;
        auto res = engine->create_snapshot(instance, r);
        auto job = wait(res.job.id);
        REQUIRE(job.state == JobState::succeeded);
        return engine->get_snapshot(res.snapshot.id);
    }

    std::filesystem::path dir;
    RecordingSink sink;
    std::unique_ptr<hv::Hypervisor> hypervisor;
    std::unique_ptr<Catalog> catalog;
    std::unique_ptr<Engine> engine;
};

api::ErrorCode code_of(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const api::ApiError& e) {
        return e.code();
    }
    FAIL("no ApiError");
    return api::ErrorCode::internal;
}

}  // namespace

TEST_CASE("Start-up reconciliation fills the catalog with the hypervisor's domains", "[engine]") {
    Harness h;
    const auto items = h.engine->list_instances();
    REQUIRE(items.size() == 3);
    const auto web = h.engine->get_instance("web1");
    CHECK(web.uuid == "11111111-0000-0000-0000-000000000001");
    CHECK(web.memory_mib == 128);
    CHECK(web.vcpus == 2);
    CHECK(web.state == "running");
    CHECK(h.engine->get_instance(web.uuid).name == "web1");
    CHECK(code_of([&] { h.engine->get_instance("nope"); }) == api::ErrorCode::instance_not_found);
}

TEST_CASE("A memory snapshot runs as a job and becomes ready and current", "[engine]") {
    Harness h;
    api::CreateSnapshotRequest r;
    r.mode = SnapshotMode::memory;
    r.name = "first";
    r.display_name = "First <one>";
    r.description = "before the upgrade";
    auto res = h.engine->create_snapshot("web1", r);
    CHECK(res.job.state == JobState::queued);
    CHECK(res.snapshot.state == SnapshotState::creating);
    auto job = h.wait(res.job.id);
    CHECK(job.state == JobState::succeeded);
    CHECK(job.started_at);
    CHECK(job.finished_at);
    auto s = h.engine->get_snapshot(res.snapshot.id);
    CHECK(s.state == SnapshotState::ready);
    CHECK(s.is_current);
    CHECK(s.mode == SnapshotMode::memory);
    CHECK(s.display_name == "First <one>");
    CHECK(s.guest_paused_ms.has_value());
    CHECK(h.engine->get_instance("web1").current_snapshot_id == s.id);
    CHECK(h.sink.saw("snapshot.created", "first"));
    CHECK(h.sink.saw("job.updated", job.id + ":succeeded"));

    auto second = h.take("web1", "second");
    CHECK(second.parent_id == s.id);
    CHECK_FALSE(h.engine->get_snapshot(s.id).is_current);
}

TEST_CASE("Requests that cannot work are refused at once and change nothing", "[engine]") {
    Harness h;
    api::CreateSnapshotRequest r;
    r.mode = SnapshotMode::memory;
    r.method = MethodChoice::internal;
    CHECK(code_of([&] { h.engine->create_snapshot("rawvm", r); }) == api::ErrorCode::unsupported_disk);
    // auto needs the external method for a raw disk: refused where libvirt cannot revert it.
    r.method = MethodChoice::automatic;
    unsigned long libvirt = 0;  // the test driver is the library itself
    virGetVersion(&libvirt, nullptr, nullptr);
    if (libvirt < hv::libvirt_external_revert.number)
        CHECK(code_of([&] { h.engine->create_snapshot("rawvm", r); }) == api::ErrorCode::unsupported_libvirt);
    CHECK(code_of([&] { h.engine->create_snapshot("ghost", r); }) == api::ErrorCode::instance_not_found);
    h.take("web1", "dup");
    r.name = "dup";
    CHECK(code_of([&] { h.engine->create_snapshot("web1", r); }) == api::ErrorCode::snapshot_exists);
    r.name = "other";
    r.display_name = "dup";
    CHECK(code_of([&] { h.engine->create_snapshot("web1", r); }) == api::ErrorCode::snapshot_exists);
    CHECK(h.engine->list_instance_snapshots("web1").size() == 1);
    CHECK(h.engine->list_instance_snapshots("rawvm").empty());
}

TEST_CASE("One mutating job per instance, other instances go on in parallel", "[engine]") {
    EngineOptions o;
    o.test_delays = {{"saving", 600}};
    Harness h(o);
    api::CreateSnapshotRequest r;
    r.mode = SnapshotMode::memory;
    auto first = h.engine->create_snapshot("web1", r);
    try {
        h.engine->create_snapshot("web1", r);
        FAIL("second job accepted");
    } catch (const api::ApiError& e) {
        CHECK(e.code() == api::ErrorCode::instance_busy);
        CHECK(e.details()["job_id"] == first.job.id);
        CHECK_THAT(std::string(e.what()), Catch::Contains(first.job.id));
    }
    CHECK(h.engine->get_instance("web1").busy_job_id == first.job.id);
    auto other = h.engine->create_snapshot("db1", r);
    CHECK(h.wait(other.job.id).state == JobState::succeeded);
    CHECK(h.wait(first.job.id).state == JobState::succeeded);
    CHECK_FALSE(h.engine->get_instance("web1").busy_job_id);
}

TEST_CASE("The snapshot limit is enforced", "[engine]") {
    EngineOptions o;
    o.max_snapshots_per_instance = 2;
    Harness h(o);
    h.take("web1", "a");
    h.take("web1", "b");
    api::CreateSnapshotRequest r;
    r.mode = SnapshotMode::memory;
    CHECK(code_of([&] { h.engine->create_snapshot("web1", r); }) == api::ErrorCode::snapshot_limit_reached);
}

TEST_CASE("Edits reach the catalog and libvirt, display names stay unique", "[engine]") {
    Harness h;
    auto a = h.take("web1", "a");
    auto b = h.take("web1", "b");
    api::EditSnapshotRequest e;
    e.display_name = "b";
    CHECK(code_of([&] { h.engine->edit_snapshot(a.id, e); }) == api::ErrorCode::snapshot_exists);
    e.display_name = "Alpha & <Omega>";
    e.description = "changed ]]>";
    auto edited = h.engine->edit_snapshot(a.id, e);
    CHECK(edited.display_name == "Alpha & <Omega>");
    bool found = false;
    for (const auto& s : h.hypervisor->list_snapshots(a.instance.uuid)) {
        if (s.name != "a") continue;
        found = true;
        CHECK(s.description == "changed ]]>");
        CHECK(s.display_name == std::optional<std::string>("Alpha & <Omega>"));
        CHECK_FALSE(s.is_current);
    }
    CHECK(found);
    CHECK(h.engine->get_snapshot(b.id).is_current);
}

TEST_CASE("Delete re-parents children, delete with children removes the subtree", "[engine]") {
    Harness h;
    auto a = h.take("web1", "a");
    auto b = h.take("web1", "b");
    auto c = h.take("web1", "c");
    REQUIRE(c.parent_id == b.id);
    auto job = h.engine->delete_snapshot(b.id, false);
    CHECK(h.wait(job.id).state == JobState::succeeded);
    CHECK(h.engine->get_snapshot(c.id).parent_id == a.id);
    CHECK(code_of([&] { h.engine->get_snapshot(b.id); }) == api::ErrorCode::snapshot_not_found);

    job = h.engine->delete_snapshot(a.id, true);
    CHECK(h.wait(job.id).state == JobState::succeeded);
    CHECK(h.engine->list_instance_snapshots("web1").empty());
    CHECK(h.hypervisor->list_snapshots(a.instance.uuid).empty());
}

TEST_CASE("Revert runs as a job and makes the snapshot current", "[engine]") {
    EngineOptions o;
    o.test_delays = {{"reverting", 300}};  // long enough to see the snapshot reverting
    Harness h(o);
    auto a = h.take("web1", "a");
    h.take("web1", "b");
    api::RevertRequest r;
    r.start = RevertTarget::paused;
    auto job = h.engine->revert_snapshot(a.id, r);
    CHECK(h.engine->get_snapshot(a.id).state == SnapshotState::reverting);
    CHECK(h.wait(job.id).state == JobState::succeeded);
    CHECK(h.engine->get_snapshot(a.id).state == SnapshotState::ready);
    CHECK(h.engine->get_snapshot(a.id).is_current);
    CHECK(h.hypervisor->find_domain("web1")->state == hv::DomainState::paused);
}

TEST_CASE("A queued job can be cancelled, a running save cannot", "[engine]") {
    EngineOptions o;
    o.workers = 1;
    o.test_delays = {{"saving", 800}};
    Harness h(o);
    api::CreateSnapshotRequest r;
    r.mode = SnapshotMode::memory;
    auto running = h.engine->create_snapshot("web1", r);
    auto queued = h.engine->create_snapshot("db1", r);
    REQUIRE(test::eventually([&] { return h.engine->get_job(running.job.id).progress.phase == "saving"; }, 5s, 5ms));
    CHECK(code_of([&] { h.engine->cancel_job(running.job.id); }) == api::ErrorCode::job_not_cancellable);
    auto cancelled = h.engine->cancel_job(queued.job.id);
    CHECK(cancelled.state == JobState::cancelled);
    CHECK(code_of([&] { h.engine->get_snapshot(queued.snapshot.id); }) == api::ErrorCode::snapshot_not_found);
    CHECK(h.wait(running.job.id).state == JobState::succeeded);
    CHECK(code_of([&] { h.engine->cancel_job(running.job.id); }) == api::ErrorCode::job_not_cancellable);
}

TEST_CASE("Reconciliation imports snapshots made behind snapvirt's back", "[engine]") {
    Harness h;
    const std::string uuid = h.engine->get_instance("db1").uuid;
    h.hypervisor->open_lane()->create_snapshot(uuid, {"outside", "made by virsh", "outside", SnapshotMode::memory});
    h.engine->request_reconcile();
    REQUIRE(test::eventually([&] { return h.engine->list_instance_snapshots("db1").size() == 1; }, 5s, 10ms));
    const auto s = h.engine->list_instance_snapshots("db1").at(0);
    CHECK(s.origin == "discovered");
    CHECK(s.name == "outside");
    CHECK(s.description == "made by virsh");
    CHECK(s.mode == SnapshotMode::memory);
    CHECK(s.is_current);

    h.hypervisor->open_lane()->delete_snapshot(uuid, "outside", false, false);
    h.engine->request_reconcile();
    REQUIRE(test::eventually([&] { return h.engine->get_snapshot(s.id).state == SnapshotState::missing; }, 5s, 10ms));
    // A missing snapshot is always deletable; deleting it only cleans the catalog.
    auto job = h.engine->delete_snapshot(s.id, false);
    CHECK(h.wait(job.id).state == JobState::succeeded);
    CHECK(h.engine->list_instance_snapshots("db1").empty());
}

namespace {

// A snapshot's XML as libvirt 11.3 writes it (shortened) after the moves seen on the test stack:
// the memory state, the overlay it made (libvirt deletes it when the guest reverts away from the
// snapshot, or renames it to <image>.<Unix seconds> when the guest reverts to it), and its own
// domain definition naming the images that hold its disks' state, with their backing chain.
std::string external_snapshot_xml(const std::filesystem::path& d, const std::string& state, const std::string& memory) {
    return "<domainsnapshot><name>b</name><state>" + state + "</state><parent><name>a</name></parent>" + memory +
           "<disks><disk name='vda' snapshot='external' type='file'><source file='" + (d / "b-vda.qcow2").string() +
           "'/></disk></disks><domain type='qemu'><name>v</name><os><nvram>" + (d / "v_VARS.fd").string() +
           "</nvram></os><devices><disk type='file' device='disk'><source file='" + (d / "a-vda.qcow2").string() +
           "'/><backingStore type='file'><source file='" + (d / "disk.raw").string() +
           "'/></backingStore><target dev='vda'/></disk><disk type='file' device='cdrom'><source file='" +
           (d / "install.iso").string() + "'/><target dev='hdc'/></disk></devices></domain></domainsnapshot>";
}

void touch(const std::filesystem::path& p) { std::ofstream(p) << "x"; }

}  // namespace

TEST_CASE("An external snapshot is missing when a file its revert needs is gone, not when its overlay is",
          "[engine][reconcile]") {
    const auto d = test::make_temp_dir("snapvirt-vanished");
    for (const char* f : {"a-vda.qcow2", "disk.raw", "b.mem"}) touch(d / f);
    const auto live = hv::xml::parse_snapshot(external_snapshot_xml(
        d, "running", "<memory snapshot='external' file='" + (d / "b.mem").string() + "'/>"));
    Snapshot row;
    row.name = "b";
    row.mode = SnapshotMode::memory;
    row.method = SnapshotMethod::external;
    row.files = {(d / "b-vda.qcow2").string(), (d / "b.mem").string(), (d / "snapvirt-b.nvram").string()};
    // What the revert reads: the memory state and the images of its own domain definition. Not
    // its overlay, the CD-ROM medium, the domain's NVRAM or (memory mode) the NVRAM copy.
    CHECK(files_to_revert(row, live) ==
          std::vector<std::string>{(d / "b.mem").string(), (d / "a-vda.qcow2").string(), (d / "disk.raw").string()});
    CHECK(vanished_file(row, live) == std::nullopt);  // the overlay, the ISO and both NVRAMs are absent

    std::filesystem::remove(d / "b.mem");
    CHECK(vanished_file(row, live) == (d / "b.mem").string());
    touch(d / "b.mem");
    std::filesystem::remove(d / "disk.raw");  // an image deeper in the chain
    CHECK(vanished_file(row, live) == (d / "disk.raw").string());
    touch(d / "disk.raw");
    CHECK(vanished_file(row, live) == std::nullopt);  // back

    // A stopped snapshot of a UEFI guest also needs its NVRAM copy (the revert puts it back).
    const auto stopped = hv::xml::parse_snapshot(external_snapshot_xml(d, "shutoff", "<memory snapshot='no'/>"));
    row.mode = SnapshotMode::stopped;
    CHECK(vanished_file(row, stopped) == (d / "snapvirt-b.nvram").string());
    touch(d / "snapvirt-b.nvram");
    CHECK(vanished_file(row, stopped) == std::nullopt);

    // An internal snapshot lives inside the domain's own images: never missing for a file.
    const auto internal = hv::xml::parse_snapshot(
        "<domainsnapshot><name>i</name><state>running</state><memory snapshot='internal'/><domain type='qemu'>"
        "<devices><disk type='file' device='disk'><source file='/no/such/image.qcow2'/></disk></devices></domain>"
        "</domainsnapshot>");
    row.method = SnapshotMethod::internal;
    CHECK(files_to_revert(row, internal).empty());
    CHECK(vanished_file(row, internal) == std::nullopt);
    std::filesystem::remove_all(d);
}

TEST_CASE("libvirt's XML context never reaches a client", "[engine]") {
    // VIR_ERR_XML_DETAIL (libvirt's code 35): the message quotes the document.
    const hv::Error xml(hv::Error::Kind::failed,
                        "XML error: Char 0xFFFE out of allowed range\n<description>x\xef\xbf\xbe</description>\n^", 35);
    try {
        raise(xml);
        FAIL("raise returned");
    } catch (const api::ApiError& e) {
        CHECK(e.code() == api::ErrorCode::hypervisor_error);
        CHECK(std::string(e.what()).find("description") == std::string::npos);
        CHECK(std::string(e.what()).find('\n') == std::string::npos);
        CHECK(e.details()["libvirt_code"] == 35);
    }
    // Any other multi-line message: its first line only.
    const hv::Error multi(hv::Error::Kind::failed, "internal error: something\nsecond line", 1);
    try {
        raise(multi);
        FAIL("raise returned");
    } catch (const api::ApiError& e) {
        CHECK(std::string(e.what()) == "libvirt refused: internal error: something");
    }
}

namespace {

// libvirt's encoding (major * 1,000,000 + minor * 1,000 + micro), as the API spells it.
std::string dotted(unsigned long v) {
    return std::to_string(v / 1000000) + "." + std::to_string(v / 1000 % 1000) + "." + std::to_string(v % 1000);
}

}  // namespace

TEST_CASE("The host's versions and name are what libvirt says, answered from the engine's cache", "[engine]") {
    // What libvirt says on a connection of the test's own to the same driver.
    virConnectPtr direct = virConnectOpen("test:///default");
    REQUIRE(direct);
    unsigned long lib = 0;
    unsigned long hyp = 0;
    CHECK(virConnectGetLibVersion(direct, &lib) == 0);
    CHECK(virConnectGetVersion(direct, &hyp) == 0);
    char name[256] = {};  // snapvirtd runs on libvirt's host: the host's name as its kernel knows it
    REQUIRE(::gethostname(name, sizeof name - 1) == 0);
    const std::string hostname = name;
    virConnectClose(direct);
    REQUIRE(lib > 0);
    REQUIRE(!hostname.empty());

    Harness h;
    api::Host host;
    REQUIRE(test::eventually(
        [&] {
            host = h.engine->host();
            return host.libvirt_version.has_value();
        },
        5s, 10ms));
    CHECK(host.libvirt_version == dotted(lib));
    CHECK(host.qemu_version == dotted(hyp));
    CHECK(host.hostname == hostname);
    CHECK(host.snapvirt_version == SNAPVIRT_VERSION);
    CHECK_FALSE(host.stale);
    CHECK(host.capabilities.external_revert == (lib >= 9007000));
    CHECK(host.capabilities.modes == std::vector<SnapshotMode>{SnapshotMode::memory, SnapshotMode::stopped});
    // External snapshots where libvirt can also revert them.
    CHECK(host.capabilities.methods ==
          (lib >= 9007000 ? std::vector<SnapshotMethod>{SnapshotMethod::internal, SnapshotMethod::external}
                          : std::vector<SnapshotMethod>{SnapshotMethod::internal}));
}
