// Catalog truth: reconciliation with libvirt, crash recovery after a real SIGKILL at several
// points of every kind of job, a full disk, and renamed domains. Real libvirtd and QEMU.

#include "tests/e2e/helpers.hpp"
#include "tests/support/libvirtd.hpp"

#include <sys/mount.h>

#include <fstream>
#include <set>
#include <thread>

using namespace snapvirt;
using namespace snapvirt::test;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

int virsh(const std::string& args) {
    const std::string cmd = "virsh -q -c '" + libvirt_uri() + "' " + args + " >/dev/null 2>&1";
    return std::system(cmd.c_str());
}

}  // namespace

TEST_CASE("A snapshot made with virsh appears as discovered, turns missing when virsh deletes it", "[e2e][reconcile]") {
    TestGuest g({.tag = "virsh", .running = false});
    DaemonOptions o;
    o.config = "[reconcile]\ninterval_s = 2\n";
    Daemon d(o);
    auto c = d.client();
    REQUIRE(virsh("snapshot-create-as " + g.name() + " outside --description 'made by hand'") == 0);
    json found;
    REQUIRE(eventually(
        [&] {
            auto items = snapshots_of(c, g.name());
            if (items.empty()) return false;
            found = items[0];
            return true;
        },
        6s));
    CHECK(found["name"] == "outside");
    CHECK(found["origin"] == "discovered");
    CHECK(found["mode"] == "stopped");
    CHECK(found["description"] == "made by hand");
    CHECK(found["is_current"] == true);
    CHECK(found["state"] == "ready");

    // Made while the daemon is down: there at once after the restart.
    d.stop();
    REQUIRE(virsh("snapshot-create-as " + g.name() + " while-down") == 0);
    d.start();
    c = d.client();
    auto items = snapshots_of(c, g.name());
    REQUIRE(items.size() == 2);
    CHECK(items[1]["name"] == "while-down");
    CHECK(items[1]["parent_id"] == found["id"]);

    // A description edited outside (virsh snapshot-edit, here with sed as the editor) flows back.
    const auto editor = make_temp_dir("snapvirt-editor") / "edit.sh";
    std::ofstream(editor) << "#!/bin/sh\nsed -i 's|<description>made by hand</description>|"
                             "<description>edited outside</description>|' \"$1\"\n";
    std::filesystem::permissions(editor, std::filesystem::perms::owner_all);
    REQUIRE(std::system(("EDITOR=" + editor.string() + " virsh -q -c '" + libvirt_uri() + "' snapshot-edit " + g.name() +
                         " --snapshotname outside >/dev/null 2>&1")
                            .c_str()) == 0);
    REQUIRE(eventually(
        [&] { return c.get("/v1/snapshots/" + found["id"].get<std::string>()).json()["description"] == "edited outside"; },
        6s));
    std::filesystem::remove_all(editor.parent_path());
    REQUIRE(virsh("snapshot-delete " + g.name() + " outside") == 0);
    REQUIRE(eventually([&] { return c.get("/v1/snapshots/" + found["id"].get<std::string>()).json()["state"] == "missing"; },
                       6s));
    // A missing snapshot is deletable: only the catalog changes.
    auto job = run_job(c, c.del("/v1/snapshots/" + found["id"].get<std::string>()));
    CHECK(job["state"] == "succeeded");
    CHECK(c.get("/v1/snapshots/" + found["id"].get<std::string>()).status == 404);
    CHECK(g.has_snapshot("while-down"));
    CHECK(catalog_names(c, g.name(), false) == std::set<std::string>{"while-down"});
}

TEST_CASE("Recovery after SIGKILL before a memory save: the job fails, nothing is left", "[e2e][recovery]") {
    TestGuest g({.tag = "kmem1"});
    g.wait_booted();
    Daemon d(delayed("saving"));
    auto job = kill_at(d, "saving", [&] {
        return start_job(d.client(), "POST", "/v1/instances/" + g.name() + "/snapshots", {{"mode", "memory"}, {"name", "m1"}});
    });
    CHECK(job["state"] == "failed");
    CHECK(job["error"]["code"] == "interrupted");
    CHECK(job["recovered"] == true);
    check_consistent(d.client(), g, {"m1"});
    CHECK_FALSE(g.has_snapshot("m1"));
    CHECK(g.state() == "running");
}

TEST_CASE("Recovery after SIGKILL after a memory save: the snapshot is kept and ready", "[e2e][recovery]") {
    TestGuest g({.tag = "kmem2"});
    g.wait_booted();
    Daemon d(delayed("saving.after"));
    auto job = kill_at(d, "saving.after", [&] {
        return start_job(d.client(), "POST", "/v1/instances/" + g.name() + "/snapshots",
                         {{"mode", "memory"}, {"name", "m2"}, {"display_name", "Kept <2>"}});
    });
    CHECK(job["state"] == "succeeded");
    CHECK(job["recovered"] == true);
    check_consistent(d.client(), g, {"m2"});
    auto s = snapshots_of(d.client(), g.name()).at(0);
    CHECK(s["display_name"] == "Kept <2>");
    CHECK(s["is_current"] == true);
    CHECK(g.state() == "running");
}

TEST_CASE("Recovery after SIGKILL in the middle of a memory save leaves the guest running", "[e2e][recovery]") {
    TestGuest g({.tag = "kmem3", .memory_mib = 256, .fill_mib = 200});
    g.wait_booted();
    Daemon d;
    auto c = d.client();
    const std::string id =
        start_job(c, "POST", "/v1/instances/" + g.name() + "/snapshots", {{"mode", "memory"}, {"name", "m3"}});
    REQUIRE(eventually([&] { return c.get("/v1/jobs/" + id).json()["progress"]["phase"] == "saving"; }, 20s, 5ms));
    d.kill();
    d.start();
    c = d.client();
    json job;
    REQUIRE(eventually(
        [&] {
            job = c.get("/v1/jobs/" + id).json();
            return job["state"] == "succeeded" || job["state"] == "failed";
        },
        60s));
    INFO(job.dump());
    CHECK(job["recovered"] == true);
    // libvirtd finishes a save its client stopped waiting for; either way nothing is half-made.
    REQUIRE(eventually([&] { return g.state() == "running"; }, 30s));
    check_consistent(c, g, {"m3"});
}

TEST_CASE("Recovery after SIGKILL while a stopped snapshot has the guest down starts it again", "[e2e][recovery]") {
    TestGuest g({.tag = "kstop1"});
    g.wait_booted();
    Daemon d(delayed("snapshotting"));
    auto job = kill_at(d, "snapshotting", [&] {
        return start_job(d.client(), "POST", "/v1/instances/" + g.name() + "/snapshots",
                         {{"mode", "stopped"}, {"name", "s1"}, {"force_stop", true}, {"shutdown_timeout_s", 1}});
    });
    CHECK(job["state"] == "failed");
    CHECK(job["error"]["code"] == "interrupted");
    CHECK(g.state() == "running");  // the job stopped it and meant to start it again
    check_consistent(d.client(), g, {"s1"});
}

TEST_CASE("Recovery after SIGKILL after a stopped snapshot was taken finishes the job", "[e2e][recovery]") {
    TestGuest g({.tag = "kstop2"});
    g.wait_booted();
    Daemon d(delayed("snapshotting.after"));
    auto job = kill_at(d, "snapshotting.after", [&] {
        return start_job(d.client(), "POST", "/v1/instances/" + g.name() + "/snapshots",
                         {{"mode", "stopped"}, {"name", "s2"}, {"force_stop", true}, {"shutdown_timeout_s", 1}});
    });
    CHECK(job["state"] == "succeeded");
    CHECK(job["recovered"] == true);
    CHECK(g.state() == "running");
    check_consistent(d.client(), g, {"s2"});
}

TEST_CASE("Recovery after SIGKILL with keep_stopped leaves the guest off", "[e2e][recovery]") {
    TestGuest g({.tag = "kstop3"});
    g.wait_booted();
    Daemon d(delayed("snapshotting.after"));
    auto job = kill_at(d, "snapshotting.after", [&] {
        return start_job(d.client(), "POST", "/v1/instances/" + g.name() + "/snapshots",
                         {{"mode", "stopped"}, {"name", "s3"}, {"force_stop", true}, {"shutdown_timeout_s", 1},
                          {"keep_stopped", true}});
    });
    CHECK(job["state"] == "succeeded");
    CHECK(g.state() == "shutoff");
    check_consistent(d.client(), g, {"s3"});
}

TEST_CASE("Recovery after SIGKILL around a revert", "[e2e][recovery]") {
    TestGuest g({.tag = "krev"});
    g.wait_booted();
    for (const std::string point : {"reverting", "reverting.after"}) {
        DYNAMIC_SECTION("killed at " << point) {
            Daemon d(delayed(point));
            auto c = d.client();
            auto one = take_snapshot(c, g.name(), {{"mode", "memory"}, {"name", "r1"}});
            auto two = take_snapshot(c, g.name(), {{"mode", "memory"}, {"name", "r2"}});
            REQUIRE(two.job["state"] == "succeeded");
            auto job = kill_at(d, point, [&] {
                return start_job(c, "POST", "/v1/snapshots/" + one.snapshot["id"].get<std::string>() + "/revert");
            });
            c = d.client();
            INFO(job.dump());
            CHECK(job["recovered"] == true);
            if (point == "reverting") {
                CHECK(job["state"] == "failed");
                CHECK(g.current_snapshot() == "r2");
            } else {
                CHECK(job["state"] == "succeeded");
                CHECK(g.current_snapshot() == "r1");
                CHECK(c.get("/v1/snapshots/" + one.snapshot["id"].get<std::string>()).json()["is_current"] == true);
            }
            CHECK(g.state() == "running");
            check_consistent(c, g, {"r1", "r2"});
        }
    }
}

TEST_CASE("Recovery after SIGKILL around a delete", "[e2e][recovery]") {
    TestGuest g({.tag = "kdel", .running = false});
    for (const std::string point : {"deleting", "deleting.after"}) {
        DYNAMIC_SECTION("killed at " << point) {
            Daemon d(delayed(point));
            auto c = d.client();
            auto gone = take_snapshot(c, g.name(), {{"mode", "stopped"}, {"name", "d1"}});
            REQUIRE(gone.job["state"] == "succeeded");
            auto job = kill_at(d, point, [&] {
                return start_job(c, "DELETE", "/v1/snapshots/" + gone.snapshot["id"].get<std::string>());
            });
            c = d.client();
            INFO(job.dump());
            CHECK(job["recovered"] == true);
            CHECK(job["state"] == (point == "deleting" ? "failed" : "succeeded"));
            CHECK(g.has_snapshot("d1") == (point == "deleting"));
            check_consistent(c, g, {"d1"});
            if (g.has_snapshot("d1")) run_job(c, c.del("/v1/snapshots/" + gone.snapshot["id"].get<std::string>()));
        }
    }
}

TEST_CASE("A memory snapshot that does not fit on the disk fails clearly and leaves nothing", "[e2e][diskfull]") {
    const auto mnt = make_temp_dir("snapvirt-small");
    REQUIRE(::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=24m") == 0);
    struct Unmount {
        std::filesystem::path p;
        ~Unmount() { ::umount2(p.c_str(), MNT_DETACH); std::filesystem::remove_all(p); }
    } unmount{mnt};
    {
        TestGuest g({.tag = "full", .memory_mib = 128, .fill_mib = 64, .disk_dir = mnt});
        g.wait_booted();
        Daemon d;
        auto c = d.client();
        auto taken = take_snapshot(c, g.name(), {{"mode", "memory"}, {"name", "too-big"}});
        INFO(taken.job.dump());
        CHECK(taken.job["state"] == "failed");
        CHECK(taken.job["error"]["code"] == "no_space");
        CHECK_THAT(taken.job["error"]["message"].get<std::string>(), Catch::Contains(mnt.string()));
        CHECK(g.state() == "running");
        CHECK(g.snapshot_count() == 0);
        CHECK(snapshots_of(c, g.name()).empty());
        CHECK(c.get("/v1/instances/" + g.name()).json()["busy_job_id"].is_null());
    }
}

TEST_CASE("A renamed domain keeps its snapshots under one instance", "[e2e][reconcile]") {
    TestGuest g({.tag = "ren", .running = false});
    Daemon d;
    auto c = d.client();
    auto first = take_snapshot(c, g.name(), {{"mode", "stopped"}, {"name", "before-rename"}});
    REQUIRE(first.job["state"] == "succeeded");
    const std::string old_name = g.name();
    g.rename(old_name + "-renamed");
    REQUIRE(eventually([&] { return c.get("/v1/instances/" + g.name()).status == 200; }, 10s));
    auto second = take_snapshot(c, g.name(), {{"mode", "stopped"}, {"name", "after-rename"}});
    REQUIRE(second.job["state"] == "succeeded");

    const auto inst = c.get("/v1/instances/" + g.uuid()).json();
    CHECK(inst["name"] == g.name());
    CHECK(inst["snapshot_count"] == 2);
    auto items = snapshots_of(c, g.uuid());
    REQUIRE(items.size() == 2);
    CHECK(items[0]["id"] == first.snapshot["id"]);
    CHECK(items[0]["instance"]["name"] == g.name());
    CHECK(items[0]["state"] == "ready");
    CHECK(items[1]["parent_id"] == first.snapshot["id"]);
    int with_uuid = 0;
    const auto all = c.get("/v1/instances").json();
    for (const auto& i : all["items"])
        if (i["uuid"] == g.uuid()) ++with_uuid;
    CHECK(with_uuid == 1);
    CHECK(c.get("/v1/instances/" + old_name).status == 404);
}
