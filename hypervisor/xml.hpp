#pragma once
// libvirt's XML, read and written through libxml2: values are always escaped by the writer,
// never pasted into markup, so no input can change a document's structure.

#include "hypervisor/types.hpp"

#include <string>

namespace snapvirt::hv::xml {

// snapvirt's namespace in a snapshot's <domain><metadata>.
inline constexpr const char* metadata_ns = "https://snapvirt.dev/xmlns/snapshot/1";

// A <domainsnapshot> for virDomainSnapshotCreateXML: with the guest's RAM for mode memory;
// for the external method with the memory file and each disk's overlay the spec names.
std::string build_snapshot(const SnapshotSpec& spec);
SnapshotInfo parse_snapshot(const std::string& xml);
DomainConfig parse_domain(const std::string& xml);

// Returns `snapshot_xml` with its description and snapvirt's display-name metadata replaced,
// everything else as it was (for a REDEFINE).
std::string set_snapshot_metadata(const std::string& snapshot_xml, const std::string& description,
                                  const std::string& display_name);

}  // namespace snapvirt::hv::xml
