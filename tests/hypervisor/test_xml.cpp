#include "hypervisor/xml.hpp"

#include "tests/support/catch.hpp"

using namespace snapvirt::hv;

TEST_CASE("Snapshot XML escapes what it is given", "[xml]") {
    const std::string doc = xml::build_snapshot("s1", "<domain>&]]>'\"", snapvirt::SnapshotMode::memory);
    CHECK(doc.find("<description>&lt;domain&gt;&amp;]]&gt;'&quot;</description>") != std::string::npos);
    CHECK(doc.find("<memory snapshot=\"internal\"/>") != std::string::npos);
    const auto parsed = xml::parse_snapshot(doc);
    CHECK(parsed.name == "s1");
    CHECK(parsed.description == "<domain>&]]>'\"");
    CHECK(parsed.has_memory);
}

TEST_CASE("Setting snapshot metadata keeps everything else and round-trips byte-exact", "[xml]") {
    const std::string original = R"(<domainsnapshot>
  <name>s1</name>
  <state>running</state>
  <parent><name>s0</name></parent>
  <creationTime>1700000000</creationTime>
  <memory snapshot='internal'/>
  <disks><disk name='vda' snapshot='internal'/></disks>
  <domain type='qemu'><name>web1</name><uuid>11111111-2222-3333-4444-555555555555</uuid><memory>65536</memory></domain>
</domainsnapshot>)";
    const std::string nasty = "a <b> & \"c\" 'd' ]]> \xc3\xa4";
    const std::string edited = xml::set_snapshot_metadata(original, "line 1\n  <x/> ]]>", nasty);
    const auto s = xml::parse_snapshot(edited);
    CHECK(s.name == "s1");
    CHECK(s.description == "line 1\n  <x/> ]]>");
    REQUIRE(s.display_name);
    CHECK(*s.display_name == nasty);
    CHECK(s.parent == std::optional<std::string>("s0"));
    CHECK(s.creation_time == 1700000000);
    CHECK(s.state == "running");
    CHECK(s.has_memory);
    // A second edit replaces, never duplicates.
    const auto again = xml::parse_snapshot(xml::set_snapshot_metadata(edited, "", "plain"));
    CHECK(again.description.empty());
    CHECK(*again.display_name == "plain");
}

TEST_CASE("Domain XML tells disks and firmware", "[xml]") {
    const auto cfg = xml::parse_domain(R"(<domain type='kvm'><os firmware='efi'><type>hvm</type></os><devices>
      <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/a.img'/><target dev='vda'/></disk>
      <disk type='file' device='cdrom'><driver name='qemu' type='raw'/><target dev='sda'/><readonly/></disk>
      <disk type='file' device='disk' snapshot='no'><driver type='raw'/><source file='/b'/><target dev='vdb'/></disk>
    </devices></domain>)");
    REQUIRE(cfg.disks.size() == 3);
    CHECK(cfg.disks[0].format == "raw");
    CHECK(cfg.disks[0].source == "/a.img");
    CHECK(cfg.disks[1].readonly);
    CHECK(cfg.disks[1].device == "cdrom");
    CHECK(cfg.disks[2].excluded);
    CHECK(cfg.pflash_firmware);
}
