#include "hypervisor/xml.hpp"

#include "tests/support/catch.hpp"

using namespace snapvirt::hv;

TEST_CASE("Snapshot XML escapes what it is given", "[xml]") {
    SnapshotSpec spec;
    spec.name = "s1";
    spec.description = "<domain>&]]>'\"";
    spec.mode = snapvirt::SnapshotMode::memory;
    const std::string doc = xml::build_snapshot(spec);
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

TEST_CASE("External snapshot XML names the memory file and each overlay, escaped", "[xml]") {
    SnapshotSpec spec;
    spec.name = "s2";
    spec.mode = snapvirt::SnapshotMode::memory;
    spec.method = snapvirt::SnapshotMethod::external;
    spec.memory_file = "/var/lib/images/snapvirt-id.mem";
    spec.overlays = {{"vda", "/var/lib/images/snapvirt-id-vda.qcow2"}, {"vdb", "/x/'<&>.qcow2"}};
    const std::string doc = xml::build_snapshot(spec);
    CHECK(doc.find("<memory snapshot=\"external\" file=\"/var/lib/images/snapvirt-id.mem\"/>") != std::string::npos);
    CHECK(doc.find("<disk name=\"vda\" snapshot=\"external\" type=\"file\"><driver type=\"qcow2\"/><source "
                   "file=\"/var/lib/images/snapvirt-id-vda.qcow2\"/></disk>") != std::string::npos);
    CHECK(doc.find("file=\"/x/'&lt;&amp;&gt;.qcow2\"") != std::string::npos);

    // libvirt's answer for such a snapshot (shortened) reads back as external, with its files.
    const auto s = xml::parse_snapshot(R"(<domainsnapshot><name>s2</name><state>running</state>
      <memory snapshot='external' file='/m.mem'/>
      <disks><disk name='vda' snapshot='external' type='file'><driver type='qcow2'/><source file='/o.qcow2'/></disk>
        <disk name='hdc' snapshot='no'/></disks>
      <domain type='qemu'><name>v</name><os><nvram>/n.fd</nvram></os><devices><disk type='file' device='disk'>
        <source file='/base.img'/><target dev='vda'/></disk></devices></domain></domainsnapshot>)");
    CHECK(s.method == snapvirt::SnapshotMethod::external);
    CHECK(s.mode == snapvirt::SnapshotMode::memory);
    CHECK(s.memory_file == "/m.mem");
    CHECK(s.overlays == std::vector<std::string>{"/o.qcow2"});
    CHECK(s.files == std::vector<std::string>{"/o.qcow2", "/m.mem", "/base.img", "/n.fd"});

    // A disk-only external snapshot of a shut-off guest is a stopped one.
    const auto stopped = xml::parse_snapshot(R"(<domainsnapshot><name>s3</name><state>shutoff</state>
      <memory snapshot='no'/><disks><disk name='vda' snapshot='external'><source file='/o2.qcow2'/></disk></disks>
      </domainsnapshot>)");
    CHECK(stopped.mode == snapvirt::SnapshotMode::stopped);
    CHECK(stopped.method == snapvirt::SnapshotMethod::external);
    CHECK_FALSE(stopped.has_memory);
}

TEST_CASE("A snapshot's state files are its memory state and its domain's disk chains, not its overlays",
          "[xml]") {
    const auto s = xml::parse_snapshot(R"(<domainsnapshot><name>b</name><state>running</state>
      <memory snapshot='external' file='/b.mem'/>
      <disks><disk name='vda' snapshot='external' type='file'><source file='/b-vda.qcow2'/></disk></disks>
      <revertDisks><disk name='vda' snapshot='external' type='file'><source file='/a-vda.1795806401'/></disk></revertDisks>
      <domain type='qemu'><name>v</name><os><nvram>/n.fd</nvram></os><devices>
        <disk type='file' device='disk'><source file='/a-vda.qcow2'/>
          <backingStore type='file'><source file='/disk.raw'/></backingStore><target dev='vda'/></disk>
        <disk type='block'><source dev='/dev/loop7'/><target dev='vdb'/></disk>
        <disk type='file' device='cdrom'><source file='/install.iso'/><target dev='hdc'/></disk>
        <disk type='file' device='floppy'><source file='/boot.img'/><target dev='fda'/></disk>
      </devices></domain>
      <inactiveDomain type='qemu'><name>v</name><devices><disk type='file' device='disk'>
        <source file='/a-vda.qcow2'/><target dev='vda'/></disk></devices></inactiveDomain></domainsnapshot>)");
    CHECK(s.state_files == std::vector<std::string>{"/b.mem", "/a-vda.qcow2", "/disk.raw", "/dev/loop7"});
}

TEST_CASE("Domain XML lists every file of its disks' chains and its NVRAM", "[xml]") {
    const auto cfg = xml::parse_domain(R"(<domain type='qemu'><os><loader type='pflash'>/c.fd</loader>
      <nvram>/v.fd</nvram></os><devices>
      <disk type='file' device='disk'><driver type='qcow2'/><source file='/top.qcow2'/>
        <backingStore type='file'><format type='raw'/><source file='/base.img'/><backingStore/></backingStore>
        <target dev='vda'/></disk>
      <disk type='block' device='disk'><driver type='raw'/><source dev='/dev/loop7'/><target dev='vdb'/></disk>
    </devices></domain>)");
    CHECK(cfg.pflash_firmware);
    CHECK(cfg.nvram == "/v.fd");
    CHECK(cfg.files == std::vector<std::string>{"/top.qcow2", "/base.img", "/dev/loop7", "/v.fd"});
}

TEST_CASE("Domain XML tells the type of the image each disk's chain ends in", "[xml]") {
    const auto cfg = xml::parse_domain(R"(<domain type='qemu'><devices>
      <disk type='file' device='disk'><driver type='qcow2'/><source file='/ext/anchor.1795806324'/>
        <backingStore type='file'><format type='qcow2'/><source file='/ext/anchor.qcow2'/>
          <backingStore type='block'><format type='raw'/><source dev='/dev/vg0/web'/><backingStore/></backingStore>
        </backingStore><target dev='vda'/></disk>
      <disk type='file' device='disk'><driver type='raw'/><source file='/b.img'/><backingStore/><target dev='vdb'/></disk>
      <disk type='block' device='disk'><driver type='raw'/><source dev='/dev/vg0/db'/><target dev='vdc'/></disk>
    </devices></domain>)");
    REQUIRE(cfg.disks.size() == 3);
    CHECK(cfg.disks[0].type == "file");
    CHECK(cfg.disks[0].base_type == "block");
    CHECK(cfg.disks[1].base_type == "file");
    CHECK(cfg.disks[2].base_type == "block");
}

TEST_CASE("An anchor's snapshot XML leaves the other disks out", "[xml]") {
    SnapshotSpec spec;
    spec.name = "snapvirt-anchor-id";
    spec.mode = snapvirt::SnapshotMode::stopped;
    spec.method = snapvirt::SnapshotMethod::external;
    spec.keep_metadata = false;
    spec.overlays = {{"vdb", "/ext/snapvirt-id-vdb-base.qcow2"}};
    spec.left_out = {"vda"};
    const std::string doc = xml::build_snapshot(spec);
    CHECK(doc.find("<memory") == std::string::npos);
    CHECK(doc.find("<disk name=\"vdb\" snapshot=\"external\" type=\"file\">") != std::string::npos);
    CHECK(doc.find("<disk name=\"vda\" snapshot=\"no\"/>") != std::string::npos);
}
