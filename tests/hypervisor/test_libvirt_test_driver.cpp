// The hypervisor layer against libvirt's test driver (in memory, fast, hermetic).

#include "hypervisor/hypervisor.hpp"
#include "hypervisor/xml.hpp"
#include "tests/support/daemon.hpp"

#include "tests/support/catch.hpp"

#include <thread>

using namespace snapvirt;
using namespace std::chrono_literals;

namespace {
std::unique_ptr<hv::Hypervisor> connect_test_driver() {
    hv::LibvirtOptions o;
    o.uri = "test:///default";
    auto h = hv::make_libvirt_hypervisor(o);
    REQUIRE(test::eventually([&] { return h->connected(); }, 5s, 10ms));
    return h;
}
}  // namespace

TEST_CASE("Domains are listed and found by name and UUID", "[hypervisor]") {
    auto h = connect_test_driver();
    const auto doms = h->list_domains();
    REQUIRE(doms.size() == 1);
    CHECK(doms[0].name == "test");
    CHECK(doms[0].state == hv::DomainState::running);
    CHECK(doms[0].vcpus == 2);
    CHECK(doms[0].memory_mib == 8192);
    auto by_uuid = h->find_domain(doms[0].uuid);
    REQUIRE(by_uuid);
    CHECK(by_uuid->name == "test");
    CHECK(h->find_domain("test")->uuid == doms[0].uuid);
    CHECK_FALSE(h->find_domain("no-such-domain"));
}

TEST_CASE("Snapshots are created, listed, edited, reverted and deleted", "[hypervisor]") {
    auto h = connect_test_driver();
    const std::string uuid = h->list_domains().at(0).uuid;
    auto lane = h->open_lane();
    lane->create_snapshot(uuid, {"s1", "first", "s1", SnapshotMode::memory});
    lane->create_snapshot(uuid, {"s2", "second", "s2", SnapshotMode::memory});
    auto snaps = h->list_snapshots(uuid);
    REQUIRE(snaps.size() == 2);
    const auto& s2 = snaps[0].name == "s2" ? snaps[0] : snaps[1];
    CHECK(s2.parent == std::optional<std::string>("s1"));
    CHECK(s2.is_current);

    // Editing s1 (not current) keeps s2 current; text comes back byte-exact.
    const std::string nasty = "<x> & \"y\" 'z' ]]>";
    h->set_snapshot_metadata(uuid, "s1", nasty + "\nline", nasty);
    snaps = h->list_snapshots(uuid);
    for (const auto& s : snaps) {
        if (s.name == "s1") {
            CHECK(s.description == nasty + "\nline");
            REQUIRE(s.display_name);
            CHECK(*s.display_name == nasty);
            CHECK_FALSE(s.is_current);
        } else {
            CHECK(s.is_current);
        }
    }
    // Editing the current snapshot keeps it current.
    h->set_snapshot_metadata(uuid, "s2", "d", "S two");
    CHECK(h->find_domain(uuid)->current_snapshot == std::optional<std::string>("s2"));

    CHECK_FALSE(h->has_domain_metadata(uuid));
    lane->revert_snapshot(uuid, "s1", {hv::RevertStart::paused, false});
    CHECK(h->find_domain(uuid)->state == hv::DomainState::paused);
    CHECK(h->find_domain(uuid)->current_snapshot == std::optional<std::string>("s1"));
    // The revert copied s1's definition, snapvirt's metadata included, onto the domain.
    CHECK(h->has_domain_metadata(uuid));
    h->clear_domain_metadata(uuid);
    CHECK_FALSE(h->has_domain_metadata(uuid));

    lane->delete_snapshot(uuid, "s1", false, false);
    snaps = h->list_snapshots(uuid);
    REQUIRE(snaps.size() == 1);
    CHECK_FALSE(snaps[0].parent);  // re-parented to s1's parent: none

    try {
        lane->delete_snapshot(uuid, "s1", false, false);
        FAIL("deleted twice");
    } catch (const hv::Error& e) {
        CHECK(e.kind() == hv::Error::Kind::snapshot_not_found);
    }
}

TEST_CASE("An unreachable libvirt fails calls at once instead of hanging", "[hypervisor]") {
    hv::LibvirtOptions o;
    o.uri = "qemu+unix:///system?socket=/nonexistent/libvirt-sock";
    auto h = hv::make_libvirt_hypervisor(o);
    std::this_thread::sleep_for(100ms);
    CHECK_FALSE(h->connected());
    const auto t0 = std::chrono::steady_clock::now();
    try {
        h->list_domains();
        FAIL("a call succeeded without libvirt");
    } catch (const hv::Error& e) {
        CHECK(e.kind() == hv::Error::Kind::unavailable);
    }
    CHECK(std::chrono::steady_clock::now() - t0 < 100ms);
    CHECK_THAT(h->status(), Catch::Contains("nonexistent"));
}
