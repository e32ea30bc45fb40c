// The snapshot lifecycle through the HTTP API of the built snapvirtd, on real QEMU guests
// (TCG): memory and stopped snapshots, revert, edit, delete, jobs, limits and validation.

#include "tests/e2e/helpers.hpp"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include <set>
#include <thread>

using namespace snapvirt;
using namespace snapvirt::test;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

// The text of an XPath in libvirt's snapshot XML, parsed by libxml2 (not by snapvirt's code).
std::string xml_text(const std::string& doc, const char* xpath) {
    xmlDocPtr d = xmlReadMemory(doc.data(), static_cast<int>(doc.size()), "s.xml", "UTF-8", XML_PARSE_NONET);
    REQUIRE(d);
    xmlXPathContextPtr ctx = xmlXPathNewContext(d);
    xmlXPathRegisterNs(ctx, BAD_CAST "sv", BAD_CAST "https://snapvirt.dev/xmlns/snapshot/1");
    xmlXPathObjectPtr obj = xmlXPathEvalExpression(BAD_CAST xpath, ctx);
    std::string out;
    if (obj && obj->nodesetval && obj->nodesetval->nodeNr > 0) {
        xmlChar* s = xmlNodeGetContent(obj->nodesetval->nodeTab[0]);
        out = reinterpret_cast<const char*>(s);
        xmlFree(s);
    }
    xmlXPathFreeObject(obj);
    xmlXPathFreeContext(ctx);
    xmlFreeDoc(d);
    return out;
}

json jobs_of(const client::Client& c, const std::string& instance) {
    return c.get("/v1/jobs?instance=" + client::escape(instance)).json()["items"];
}

// Everything a refused request must leave as it was.
struct Unchanged {
    Unchanged(const client::Client& c, const TestGuest& g) : c_(c), g_(g) { snap(); }
    void snap() {
        catalog = snapshots_of(c_, g_.name()).dump();
        jobs = jobs_of(c_, g_.name()).size();
        libvirt = g_.snapshot_count();
        current = g_.current_snapshot();
    }
    void check() const {
        CHECK(snapshots_of(c_, g_.name()).dump() == catalog);
        CHECK(jobs_of(c_, g_.name()).size() == jobs);
        CHECK(g_.snapshot_count() == libvirt);
        CHECK(g_.current_snapshot() == current);
    }
    const client::Client& c_;
    const TestGuest& g_;
    std::string catalog;
    std::size_t jobs = 0;
    int libvirt = 0;
    std::string current;
};

}  // namespace

TEST_CASE("A memory snapshot restores RAM on revert and records the guest's pause", "[e2e][memory]") {
    TestGuest g({.tag = "mem", .memory_mib = 64, .fill_mib = 24});
    g.wait_booted();
    Daemon d;
    auto c = d.client();

    const std::uint64_t before = g.counter();
    auto taken = take_snapshot(c, g.name(), {{"mode", "memory"}, {"name", "ram"}, {"description", "with RAM"}});
    INFO(taken.job.dump());
    REQUIRE(taken.job["state"] == "succeeded");
    const std::uint64_t at_snapshot = g.counter();
    const auto& s = taken.snapshot;
    CHECK(s["state"] == "ready");
    CHECK(s["mode"] == "memory");
    CHECK(s["origin"] == "api");
    CHECK(s["is_current"] == true);
    CHECK(s["guest_paused_ms"].get<std::int64_t>() > 0);
    CHECK(g.state() == "running");
    CHECK(g.current_snapshot() == "ram");

    // The counter runs on; the revert brings it back.
    std::this_thread::sleep_for(2500ms);
    const std::uint64_t before_revert = g.counter();
    REQUIRE(before_revert > at_snapshot + 1500);
    auto reverted = run_job(c, c.post("/v1/snapshots/" + s["id"].get<std::string>() + "/revert", json::object()));
    REQUIRE(reverted["state"] == "succeeded");
    check_counter_back(before, at_snapshot, before_revert, g.counter(), 1500);  // 1000 Hz: within 1.5 s
    CHECK(g.state() == "running");             // "auto": back as it was taken
    auto after = c.get("/v1/snapshots/" + s["id"].get<std::string>()).json();
    CHECK(after["state"] == "ready");
    CHECK(after["is_current"] == true);
    CHECK(c.get("/v1/instances/" + g.name()).json()["current_snapshot_id"] == s["id"]);
}

TEST_CASE("A stopped snapshot of a running guest shuts it down, snapshots and starts it again", "[e2e][stopped]") {
    TestGuest g({.tag = "stop"});
    g.wait_booted();
    Daemon d;
    auto c = d.client();

    auto accepted = c.post("/v1/instances/" + g.name() + "/snapshots",
                           {{"mode", "stopped"}, {"name", "cold"}, {"force_stop", true}, {"shutdown_timeout_s", 2}});
    REQUIRE(accepted.status == 202);
    const std::string job_id = accepted.json()["job"]["id"];
    std::set<std::string> phases;
    json job;
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    do {
        job = c.get("/v1/jobs/" + job_id).json();
        phases.insert(job["progress"]["phase"].get<std::string>());
        std::this_thread::sleep_for(50ms);
    } while (job["state"] != "succeeded" && job["state"] != "failed" && std::chrono::steady_clock::now() < deadline);
    INFO(job.dump());
    REQUIRE(job["state"] == "succeeded");
    CHECK(phases.count("shutting_down") == 1);
    CHECK(g.state() == "running");  // started again: it was running and keep_stopped is false
    auto s = c.get("/v1/snapshots/" + accepted.json()["snapshot"]["id"].get<std::string>()).json();
    CHECK(s["state"] == "ready");
    CHECK(s["mode"] == "stopped");
    CHECK(s["guest_paused_ms"].is_null());
    CHECK(g.has_snapshot("cold"));
}

TEST_CASE("keep_stopped leaves the guest off, reverting a stopped snapshot restores the disk", "[e2e][stopped]") {
    TestGuest g({.tag = "disk"});
    g.wait_booted();
    Daemon d;
    auto c = d.client();
    auto taken = take_snapshot(c, g.name(), {{"mode", "stopped"}, {"name", "clean"}, {"force_stop", true},
                                             {"shutdown_timeout_s", 1}, {"keep_stopped", true}});
    INFO(taken.job.dump());
    REQUIRE(taken.job["state"] == "succeeded");
    REQUIRE(g.state() == "shutoff");

    // Write a pattern behind the snapshot's back, then revert.
    std::string out;
    REQUIRE(TestGuest::qemu_io(g.disk(), "write -P 0xab 512k 4k", &out) == 0);
    REQUIRE(TestGuest::qemu_io(g.disk(), "read -P 0xab 512k 4k", &out) == 0);
    auto reverted = run_job(c, c.post("/v1/snapshots/" + taken.snapshot["id"].get<std::string>() + "/revert", json::object()));
    REQUIRE(reverted["state"] == "succeeded");
    CHECK(g.state() == "shutoff");  // a stopped snapshot comes back shut off
    CHECK(TestGuest::qemu_io(g.disk(), "read -P 0xab 512k 4k", &out) != 0);
    CHECK_THAT(out, Catch::Contains("Pattern verification failed"));
    CHECK(TestGuest::qemu_io(g.disk(), "read -P 0x00 512k 4k", &out) == 0);
}

TEST_CASE("Without force_stop a guest that ignores ACPI makes the job fail and keeps running", "[e2e][stopped]") {
    TestGuest g({.tag = "noforce"});
    g.wait_booted();
    Daemon d;
    auto c = d.client();
    auto taken = take_snapshot(c, g.name(), {{"mode", "stopped"}, {"name", "never"}, {"shutdown_timeout_s", 2}});
    INFO(taken.job.dump());
    CHECK(taken.job["state"] == "failed");
    CHECK(taken.job["error"]["code"] == "shutdown_timeout");
    CHECK_THAT(taken.job["error"]["message"].get<std::string>(), Catch::Contains("still running"));
    CHECK(taken.snapshot.is_null());  // no snapshot left in the catalog
    CHECK(snapshots_of(c, g.name()).empty());
    CHECK(g.snapshot_count() == 0);   // nor in libvirt
    CHECK(g.state() == "running");
    CHECK(c.get("/v1/instances/" + g.name()).json()["busy_job_id"].is_null());
}

TEST_CASE("Snapshots that cannot work are refused with 422 and no job", "[e2e][validation]") {
    TestGuest off({.tag = "off", .running = false});
    TestGuest raw({.tag = "raw", .disk_format = "raw"});
    TestGuest uefi({.tag = "uefi", .running = false, .pflash = true});
    Daemon d;
    auto c = d.client();

    auto r = c.post("/v1/instances/" + off.name() + "/snapshots", {{"mode", "memory"}});
    CHECK(r.status == 422);
    CHECK(error_code(r) == "instance_not_running");
    CHECK(jobs_of(c, off.name()).empty());

    // method internal: what internal snapshots cannot cover (auto takes such guests external:
    // test_external.cpp).
    r = c.post("/v1/instances/" + raw.name() + "/snapshots", {{"mode", "memory"}, {"method", "internal"}});
    CHECK(r.status == 422);
    CHECK(error_code(r) == "unsupported_disk");
    CHECK(r.json()["error"]["details"]["disk"] == "vda");
    CHECK_THAT(r.json()["error"]["message"].get<std::string>(), Catch::Contains("raw"));
    CHECK(jobs_of(c, raw.name()).empty());
    CHECK(raw.state() == "running");

    r = c.post("/v1/instances/" + uefi.name() + "/snapshots", {{"mode", "stopped"}, {"method", "internal"}});
    CHECK(r.status == 422);
    CHECK(error_code(r) == "unsupported_firmware");
    CHECK(jobs_of(c, uefi.name()).empty());

    r = c.post("/v1/instances/svt-nobody/snapshots", {{"mode", "stopped"}});
    CHECK(r.status == 404);
    CHECK(error_code(r) == "instance_not_found");
}

TEST_CASE("Edits with XML-special text read back byte-exact from the API and libvirt", "[e2e][edit]") {
    TestGuest g({.tag = "edit", .running = false});
    Daemon d;
    auto c = d.client();
    auto first = take_snapshot(c, g.name(), {{"mode", "stopped"}, {"name", "one"}});
    auto second = take_snapshot(c, g.name(), {{"mode", "stopped"}, {"name", "two"}});
    REQUIRE(first.job["state"] == "succeeded");
    REQUIRE(second.job["state"] == "succeeded");
    REQUIRE(g.current_snapshot() == "two");

    const std::string display = "<b>Tom & \"Jerry\"</b> 'quoted' ]]> \xc3\xa4\xc3\xb6";
    const std::string description = "line one <![CDATA[x]]>\n\t& \"more\" 'text' ]]> </description><evil/>";
    const std::string id = first.snapshot["id"];
    auto r = c.patch("/v1/snapshots/" + id, {{"display_name", display}, {"description", description}});
    INFO(r.body);
    REQUIRE(r.status == 200);
    CHECK(r.json()["display_name"] == display);
    CHECK(r.json()["description"] == description);
    auto back = c.get("/v1/snapshots/" + id).json();
    CHECK(back["display_name"] == display);
    CHECK(back["description"] == description);

    const std::string doc = g.snapshot_xml("one");
    CHECK(xml_text(doc, "/domainsnapshot/description") == description);
    CHECK(xml_text(doc, "/domainsnapshot/domain/metadata/sv:snapshot/sv:display-name") == display);
    CHECK(xml_text(doc, "/domainsnapshot/name") == "one");
    CHECK(doc.find("<evil/>") == std::string::npos);

    // The current snapshot is what it was, in libvirt and in the API.
    CHECK(g.current_snapshot() == "two");
    CHECK(c.get("/v1/snapshots/" + second.snapshot["id"].get<std::string>()).json()["is_current"] == true);
    CHECK(back["is_current"] == false);

    // Display names stay unique per instance.
    r = c.patch("/v1/snapshots/" + id, {{"display_name", "two"}});
    CHECK(r.status == 409);
    CHECK(error_code(r) == "snapshot_exists");
    CHECK(c.get("/v1/snapshots/" + id).json()["display_name"] == display);
}

TEST_CASE("Delete re-parents children, delete with children removes the subtree in libvirt too", "[e2e][delete]") {
    TestGuest g({.tag = "del", .running = false});
    Daemon d;
    auto c = d.client();
    std::map<std::string, std::string> ids;
    for (const char* n : {"a", "b", "c", "d"}) {
        auto t = take_snapshot(c, g.name(), {{"mode", "stopped"}, {"name", n}});
        REQUIRE(t.job["state"] == "succeeded");
        ids[n] = t.snapshot["id"];
    }
    auto parent_in_libvirt = [&](const std::string& name) {
        return xml_text(g.snapshot_xml(name), "/domainsnapshot/parent/name");
    };
    REQUIRE(parent_in_libvirt("c") == "b");

    auto job = run_job(c, c.del("/v1/snapshots/" + ids["b"]));
    REQUIRE(job["state"] == "succeeded");
    CHECK(c.get("/v1/snapshots/" + ids["b"]).status == 404);
    CHECK_FALSE(g.has_snapshot("b"));
    CHECK(c.get("/v1/snapshots/" + ids["c"]).json()["parent_id"] == ids["a"]);
    CHECK(parent_in_libvirt("c") == "a");

    // Parents come before children in the instance's list.
    auto items = snapshots_of(c, g.name());
    REQUIRE(items.size() == 3);
    CHECK(items[0]["name"] == "a");
    CHECK(items[1]["name"] == "c");
    CHECK(items[2]["name"] == "d");

    job = run_job(c, c.del("/v1/snapshots/" + ids["c"] + "?children=true"));
    REQUIRE(job["state"] == "succeeded");
    items = snapshots_of(c, g.name());
    REQUIRE(items.size() == 1);
    CHECK(items[0]["name"] == "a");
    CHECK(g.snapshot_count() == 1);
    CHECK(g.has_snapshot("a"));
    CHECK(c.get("/v1/instances/" + g.name()).json()["snapshot_count"] == 1);
}

TEST_CASE("A second mutation on a busy instance is refused at once, other instances go on", "[e2e][jobs]") {
    TestGuest slow({.tag = "slow"});
    TestGuest other({.tag = "other", .running = false});
    slow.wait_booted();
    Daemon d;
    auto c = d.client();
    auto existing = take_snapshot(c, slow.name(), {{"mode", "memory"}, {"name", "existing"}});
    REQUIRE(existing.job["state"] == "succeeded");

    // A stopped snapshot of a guest that ignores ACPI takes its whole shutdown timeout.
    auto first = c.post("/v1/instances/" + slow.name() + "/snapshots",
                        {{"mode", "stopped"}, {"force_stop", true}, {"shutdown_timeout_s", 4}});
    REQUIRE(first.status == 202);
    const std::string busy_job = first.json()["job"]["id"];

    const auto t0 = std::chrono::steady_clock::now();
    auto second = c.post("/v1/instances/" + slow.name() + "/snapshots", {{"mode", "memory"}});
    CHECK(std::chrono::steady_clock::now() - t0 < 1s);
    CHECK(second.status == 409);
    CHECK(error_code(second) == "instance_busy");
    CHECK(second.json()["error"]["details"]["job_id"] == busy_job);
    CHECK_THAT(second.json()["error"]["message"].get<std::string>(), Catch::Contains(busy_job));
    const std::string existing_id = existing.snapshot["id"];
    auto revert = c.post("/v1/snapshots/" + existing_id + "/revert", json::object());
    CHECK(revert.status == 409);
    CHECK(error_code(revert) == "instance_busy");
    CHECK(c.del("/v1/snapshots/" + existing_id).status == 409);
    CHECK(c.patch("/v1/snapshots/" + existing_id, {{"description", "x"}}).status == 409);
    CHECK(c.get("/v1/instances/" + slow.name()).json()["busy_job_id"] == busy_job);

    // Meanwhile a job on another instance runs and completes.
    auto parallel = take_snapshot(c, other.name(), {{"mode", "stopped"}, {"name", "parallel"}});
    CHECK(parallel.job["state"] == "succeeded");
    CHECK(c.get("/v1/jobs/" + busy_job).json()["state"] == "running");

    auto done = wait_job(c, busy_job);
    CHECK(done["state"] == "succeeded");
    CHECK(slow.state() == "running");
    CHECK(c.get("/v1/instances/" + slow.name()).json()["busy_job_id"].is_null());
}

TEST_CASE("Cancelling a stopped snapshot while it waits for shutdown leaves the guest running", "[e2e][jobs]") {
    TestGuest g({.tag = "cancel"});
    g.wait_booted();
    Daemon d;
    auto c = d.client();
    auto accepted = c.post("/v1/instances/" + g.name() + "/snapshots", {{"mode", "stopped"}, {"shutdown_timeout_s", 30}});
    REQUIRE(accepted.status == 202);
    const std::string id = accepted.json()["job"]["id"];
    REQUIRE(eventually([&] { return c.get("/v1/jobs/" + id).json()["progress"]["phase"] == "shutting_down"; }, 10s, 20ms));
    auto cancel = c.post("/v1/jobs/" + id + "/cancel", json::object());
    CHECK(cancel.status == 202);
    auto job = wait_job(c, id, 20s);
    CHECK(job["state"] == "cancelled");
    CHECK(g.state() == "running");
    CHECK(snapshots_of(c, g.name()).empty());
    CHECK(g.snapshot_count() == 0);
    auto again = c.post("/v1/jobs/" + id + "/cancel", json::object());
    CHECK(again.status == 409);
    CHECK(error_code(again) == "job_not_cancellable");
}

TEST_CASE("The snapshot limit answers 409, snapshots and jobs survive a daemon restart", "[e2e][limits]") {
    TestGuest g({.tag = "limit", .running = false});
    DaemonOptions o;
    o.config = "[snapshots]\nmax_snapshots_per_instance = 2\n";
    Daemon d(o);
    auto c = d.client();
    auto one = take_snapshot(c, g.name(), {{"mode", "stopped"}, {"name", "one"}});
    auto two = take_snapshot(c, g.name(), {{"mode", "stopped"}, {"name", "two"}});
    REQUIRE(one.job["state"] == "succeeded");
    REQUIRE(two.job["state"] == "succeeded");
    auto third = c.post("/v1/instances/" + g.name() + "/snapshots", {{"mode", "stopped"}, {"name", "three"}});
    CHECK(third.status == 409);
    CHECK(error_code(third) == "snapshot_limit_reached");
    CHECK(g.snapshot_count() == 2);

    const auto snaps_before = snapshots_of(c, g.name());
    const auto jobs_before = jobs_of(c, g.name());
    REQUIRE(jobs_before.size() == 2);
    d.restart();
    c = d.client();
    CHECK(snapshots_of(c, g.name()) == snaps_before);
    const auto jobs_after = jobs_of(c, g.name());
    REQUIRE(jobs_after.size() == 2);
    CHECK(jobs_after == jobs_before);
    CHECK(c.get("/v1/jobs/" + one.job["id"].get<std::string>()).json()["state"] == "succeeded");
}

TEST_CASE("Every validation error is refused and leaves catalog and libvirt unchanged", "[e2e][validation]") {
    TestGuest g({.tag = "valid", .running = false});
    Daemon d;
    auto c = d.client();
    auto base = take_snapshot(c, g.name(), {{"mode", "stopped"}, {"name", "base"}});
    REQUIRE(base.job["state"] == "succeeded");
    const std::string id = base.snapshot["id"];
    const std::string path = "/v1/instances/" + g.name() + "/snapshots";
    Unchanged before(c, g);

    struct Case {
        std::string what;
        std::string method, target, body, content_type;
        int status;
        std::string code;
        std::string field;
    };
    const std::vector<Case> cases = {
        {"invalid JSON", "POST", path, "{\"mode\": \"memory\",}", "application/json", 400, "invalid_json", ""},
        {"not an object", "POST", path, "[\"memory\"]", "application/json", 400, "invalid_request", "body"},
        {"no mode", "POST", path, "{}", "application/json", 400, "invalid_request", "mode"},
        {"unknown mode", "POST", path, "{\"mode\":\"hot\"}", "application/json", 400, "invalid_request", "mode"},
        {"unknown field", "POST", path, "{\"mode\":\"stopped\",\"nmae\":\"x\"}", "application/json", 400, "unknown_field", "nmae"},
        {"bad name", "POST", path, "{\"mode\":\"stopped\",\"name\":\"has space\"}", "application/json", 400, "invalid_request", "name"},
        {"name too long", "POST", path, "{\"mode\":\"stopped\",\"name\":\"" + std::string(65, 'n') + "\"}", "application/json", 400, "invalid_request", "name"},
        {"name with markup", "POST", path, "{\"mode\":\"stopped\",\"name\":\"<name>x</name>\"}", "application/json", 400, "invalid_request", "name"},
        {"display name too long", "POST", path, "{\"mode\":\"stopped\",\"display_name\":\"" + std::string(256, 'd') + "\"}", "application/json", 400, "invalid_request", "display_name"},
        {"description too long", "POST", path, "{\"mode\":\"stopped\",\"description\":\"" + std::string(4097, 'd') + "\"}", "application/json", 400, "invalid_request", "description"},
        {"wrong type", "POST", path, "{\"mode\":\"stopped\",\"force_stop\":\"yes\"}", "application/json", 400, "invalid_request", "force_stop"},
        {"timeout out of range", "POST", path, "{\"mode\":\"stopped\",\"shutdown_timeout_s\":0}", "application/json", 400, "invalid_request", "shutdown_timeout_s"},
        {"stopped-only field on memory", "POST", path, "{\"mode\":\"memory\",\"keep_stopped\":true}", "application/json", 400, "invalid_request", "keep_stopped"},
        {"duplicate name", "POST", path, "{\"mode\":\"stopped\",\"name\":\"base\"}", "application/json", 409, "snapshot_exists", ""},
        {"wrong content type", "POST", path, "{\"mode\":\"stopped\"}", "text/plain", 415, "unsupported_media_type", ""},
        {"body too large", "POST", path, "{\"mode\":\"stopped\",\"description\":\"" + std::string(70000, 'x') + "\"}", "application/json", 413, "body_too_large", ""},
        {"patch unknown field", "PATCH", "/v1/snapshots/" + id, "{\"name\":\"renamed\"}", "application/json", 400, "unknown_field", "name"},
        {"patch nothing", "PATCH", "/v1/snapshots/" + id, "{}", "application/json", 400, "invalid_request", "body"},
        {"patch long name", "PATCH", "/v1/snapshots/" + id, "{\"display_name\":\"" + std::string(256, 'x') + "\"}", "application/json", 400, "invalid_request", "display_name"},
        {"patch control chars", "PATCH", "/v1/snapshots/" + id, "{\"display_name\":\"a\\u0001b\"}", "application/json", 400, "invalid_request", "display_name"},
        {"revert bad start", "POST", "/v1/snapshots/" + id + "/revert", "{\"start\":\"later\"}", "application/json", 400, "invalid_request", "start"},
        {"revert unknown field", "POST", "/v1/snapshots/" + id + "/revert", "{\"forse\":true}", "application/json", 400, "unknown_field", "forse"},
        {"delete bad flag", "DELETE", "/v1/snapshots/" + id + "?children=maybe", "", "", 400, "invalid_request", "children"},
        {"unknown snapshot", "DELETE", "/v1/snapshots/00000000-0000-0000-0000-000000000000", "", "", 404, "snapshot_not_found", ""},
        {"method not allowed", "PUT", "/v1/snapshots/" + id, "{}", "application/json", 405, "method_not_allowed", ""},
    };
    for (const auto& t : cases) {
        INFO(t.what);
        client::Headers h;
        if (!t.content_type.empty()) h.emplace_back("Content-Type", t.content_type);
        auto r = c.send(t.method, t.target, t.body, h);
        INFO(r.body);
        CHECK(r.status == t.status);
        CHECK(error_code(r) == t.code);
        if (!t.field.empty()) CHECK(r.json()["error"]["details"]["field"] == t.field);
        CHECK_FALSE(r.json()["error"]["message"].get<std::string>().empty());
        before.check();
    }
}

TEST_CASE("The global snapshot list filters and pages with a stable cursor", "[e2e][list]") {
    TestGuest a({.tag = "lista", .running = false});
    TestGuest b({.tag = "listb", .running = false});
    Daemon d;
    auto c = d.client();
    for (int i = 0; i < 3; ++i) {
        REQUIRE(take_snapshot(c, a.name(), {{"mode", "stopped"}, {"name", "a" + std::to_string(i)},
                                            {"description", i == 1 ? "the special one" : "plain"}})
                    .job["state"] == "succeeded");
        REQUIRE(take_snapshot(c, b.name(), {{"mode", "stopped"}, {"name", "b" + std::to_string(i)}}).job["state"] ==
                "succeeded");
    }
    auto page = c.get("/v1/snapshots?instance=" + a.name() + "&limit=2").json();
    REQUIRE(page["items"].size() == 2);
    CHECK(page["items"][0]["name"] == "a2");
    REQUIRE(page["next_cursor"].is_string());
    // A row added between pages does not shift the next page.
    REQUIRE(take_snapshot(c, a.name(), {{"mode", "stopped"}, {"name", "a3"}}).job["state"] == "succeeded");
    auto next = c.get("/v1/snapshots?instance=" + a.name() + "&limit=2&cursor=" + page["next_cursor"].get<std::string>()).json();
    REQUIRE(next["items"].size() == 1);
    CHECK(next["items"][0]["name"] == "a0");
    CHECK(next["next_cursor"].is_null());

    auto found = c.get("/v1/snapshots?q=special").json()["items"];
    REQUIRE(found.size() == 1);
    CHECK(found[0]["name"] == "a1");
    CHECK(c.get("/v1/snapshots?instance=" + b.uuid() + "&mode=stopped&state=ready").json()["items"].size() == 3);
    CHECK(c.get("/v1/snapshots?mode=memory&instance=" + b.name()).json()["items"].empty());
    CHECK(c.get("/v1/snapshots?state=bogus").status == 400);
    CHECK(c.get("/v1/snapshots?cursor=nonsense").status == 400);
}

TEST_CASE("A snapshot taken after a revert does not inherit the reverted snapshot's display name", "[e2e][edit]") {
    TestGuest g({.tag = "inherit"});
    g.wait_booted();
    Daemon d;
    auto c = d.client();
    auto alpha = take_snapshot(c, g.name(), {{"mode", "memory"}, {"name", "alpha"}, {"display_name", "Alpha"}});
    REQUIRE(alpha.job["state"] == "succeeded");
    REQUIRE(run_job(c, c.post("/v1/snapshots/" + alpha.snapshot["id"].get<std::string>() + "/revert", json::object()))["state"] ==
            "succeeded");
    REQUIRE(c.patch("/v1/snapshots/" + alpha.snapshot["id"].get<std::string>(), {{"display_name", "Alpha2"}}).status == 200);
    auto bravo = take_snapshot(c, g.name(), {{"mode", "memory"}, {"name", "bravo"}});
    REQUIRE(bravo.job["state"] == "succeeded");
    CHECK(bravo.snapshot["display_name"] == "bravo");
    // And libvirt agrees: the default display name is either written or absent (then the name
    // is shown), never Alpha's...
    const std::string stored =
        xml_text(g.snapshot_xml("bravo"), "/domainsnapshot/domain/metadata/sv:snapshot/sv:display-name");
    CHECK((stored.empty() || stored == "bravo"));
    // ...so a catalog rebuilt from libvirt shows the same names.
    d.stop();
    for (const char* f : {"catalog.db", "catalog.db-wal", "catalog.db-shm"}) std::filesystem::remove(d.state_dir() / f);
    d.start();
    const auto names = d.client().get("/v1/instances/" + g.name() + "/snapshots").json();
    std::map<std::string, std::string> shown;
    for (const auto& s : names["items"]) shown[s["name"]] = s["display_name"];
    CHECK(shown["alpha"] == "Alpha2");
    CHECK(shown["bravo"] == "bravo");
}
