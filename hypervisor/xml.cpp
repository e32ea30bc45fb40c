#include "hypervisor/xml.hpp"

#include "hypervisor/error.hpp"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlsave.h>
#include <libxml/xmlwriter.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include <cstdlib>
#include <memory>

namespace snapvirt::hv::xml {

namespace {

struct DocFree {
    void operator()(xmlDocPtr p) const noexcept { xmlFreeDoc(p); }
};
struct XPathContextFree {
    void operator()(xmlXPathContextPtr p) const noexcept { xmlXPathFreeContext(p); }
};
struct XPathObjectFree {
    void operator()(xmlXPathObjectPtr p) const noexcept { xmlXPathFreeObject(p); }
};
struct BufferFree {
    void operator()(xmlBufferPtr p) const noexcept { xmlBufferFree(p); }
};
struct WriterFree {
    void operator()(xmlTextWriterPtr p) const noexcept { xmlFreeTextWriter(p); }
};
struct XmlCharFree {
    void operator()(xmlChar* p) const noexcept { xmlFree(p); }
};
using Doc = std::unique_ptr<xmlDoc, DocFree>;
using XPathContext = std::unique_ptr<xmlXPathContext, XPathContextFree>;
using XPathObject = std::unique_ptr<xmlXPathObject, XPathObjectFree>;
using XmlString = std::unique_ptr<xmlChar, XmlCharFree>;

const xmlChar* x(const char* s) { return reinterpret_cast<const xmlChar*>(s); }

Doc parse(const std::string& text) {
    Doc doc(xmlReadMemory(text.data(), static_cast<int>(text.size()), "libvirt.xml", "UTF-8",
                          XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING));
    if (!doc) throw Error(Error::Kind::failed, "libvirt returned XML that does not parse.");
    return doc;
}

// Evaluates an XPath expression relative to `node` (or the document) and returns the node set.
class Query {
public:
    explicit Query(xmlDocPtr doc) : ctx_(xmlXPathNewContext(doc)) {
        if (!ctx_) throw std::bad_alloc();
        xmlXPathRegisterNs(ctx_.get(), x("sv"), x(metadata_ns));
    }
    std::vector<xmlNodePtr> nodes(const char* expr, xmlNodePtr at = nullptr) {
        ctx_->node = at ? at : xmlDocGetRootElement(ctx_->doc);
        XPathObject obj(xmlXPathEvalExpression(x(expr), ctx_.get()));
        std::vector<xmlNodePtr> out;
        if (obj && obj->type == XPATH_NODESET && obj->nodesetval)
            for (int i = 0; i < obj->nodesetval->nodeNr; ++i) out.push_back(obj->nodesetval->nodeTab[i]);
        return out;
    }
    xmlNodePtr node(const char* expr, xmlNodePtr at = nullptr) {
        auto n = nodes(expr, at);
        return n.empty() ? nullptr : n.front();
    }
    std::optional<std::string> text(const char* expr, xmlNodePtr at = nullptr) {
        xmlNodePtr n = node(expr, at);
        if (!n) return std::nullopt;
        return content(n);
    }
    static std::string content(xmlNodePtr n) {
        XmlString s(xmlNodeGetContent(n));
        return s ? reinterpret_cast<const char*>(s.get()) : "";
    }
    static std::string attr(xmlNodePtr n, const char* name) {
        XmlString s(xmlGetProp(n, x(name)));
        return s ? reinterpret_cast<const char*>(s.get()) : "";
    }

private:
    XPathContext ctx_;
};

// Appends the file or device each <source> found by `xpath` names (a disk and its backing chain).
void append_source_files(Query& q, const char* xpath, std::vector<std::string>& out) {
    for (xmlNodePtr src : q.nodes(xpath)) {
        for (const char* a : {"file", "dev"}) {
            std::string f = Query::attr(src, a);
            if (!f.empty()) out.push_back(std::move(f));
        }
    }
}

void check(int rc) {
    if (rc < 0) throw Error(Error::Kind::failed, "Writing XML failed.");
}

}  // namespace

std::string build_snapshot(const SnapshotSpec& spec) {
    std::unique_ptr<xmlBuffer, BufferFree> buf(xmlBufferCreate());
    std::unique_ptr<xmlTextWriter, WriterFree> w(xmlNewTextWriterMemory(buf.get(), 0));
    if (!buf || !w) throw std::bad_alloc();
    const bool external = spec.method == SnapshotMethod::external;
    check(xmlTextWriterStartElement(w.get(), x("domainsnapshot")));
    check(xmlTextWriterWriteElement(w.get(), x("name"), x(spec.name.c_str())));
    if (!spec.description.empty())
        check(xmlTextWriterWriteElement(w.get(), x("description"), x(spec.description.c_str())));
    if (spec.mode == SnapshotMode::memory) {
        check(xmlTextWriterStartElement(w.get(), x("memory")));
        check(xmlTextWriterWriteAttribute(w.get(), x("snapshot"), x(to_string(spec.method))));
        if (external) check(xmlTextWriterWriteAttribute(w.get(), x("file"), x(spec.memory_file.c_str())));
        check(xmlTextWriterEndElement(w.get()));
    }
    if (external) {
        check(xmlTextWriterStartElement(w.get(), x("disks")));
        for (const auto& [target, overlay] : spec.overlays) {
            check(xmlTextWriterStartElement(w.get(), x("disk")));
            check(xmlTextWriterWriteAttribute(w.get(), x("name"), x(target.c_str())));
            check(xmlTextWriterWriteAttribute(w.get(), x("snapshot"), x(to_string(SnapshotMethod::external))));
            check(xmlTextWriterWriteAttribute(w.get(), x("type"), x("file")));
            check(xmlTextWriterStartElement(w.get(), x("driver")));
            check(xmlTextWriterWriteAttribute(w.get(), x("type"), x("qcow2")));
            check(xmlTextWriterEndElement(w.get()));
            check(xmlTextWriterStartElement(w.get(), x("source")));
            check(xmlTextWriterWriteAttribute(w.get(), x("file"), x(overlay.c_str())));
            check(xmlTextWriterEndElement(w.get()));
            check(xmlTextWriterEndElement(w.get()));
        }
        for (const auto& target : spec.left_out) {
            check(xmlTextWriterStartElement(w.get(), x("disk")));
            check(xmlTextWriterWriteAttribute(w.get(), x("name"), x(target.c_str())));
            check(xmlTextWriterWriteAttribute(w.get(), x("snapshot"), x("no")));
            check(xmlTextWriterEndElement(w.get()));
        }
        check(xmlTextWriterEndElement(w.get()));
    }
    check(xmlTextWriterEndElement(w.get()));
    check(xmlTextWriterEndDocument(w.get()));
    w.reset();  // flushes into buf
    return std::string(reinterpret_cast<const char*>(xmlBufferContent(buf.get())), xmlBufferLength(buf.get()));
}

SnapshotInfo parse_snapshot(const std::string& text) {
    Doc doc = parse(text);
    Query q(doc.get());
    SnapshotInfo s;
    s.name = q.text("/domainsnapshot/name").value_or("");
    s.description = q.text("/domainsnapshot/description").value_or("");
    s.parent = q.text("/domainsnapshot/parent/name");
    s.state = q.text("/domainsnapshot/state").value_or("");
    if (auto t = q.text("/domainsnapshot/creationTime")) s.creation_time = std::strtoll(t->c_str(), nullptr, 10);
    const std::string internal = to_string(SnapshotMethod::internal);
    const std::string external = to_string(SnapshotMethod::external);
    if (xmlNodePtr mem = q.node("/domainsnapshot/memory")) {
        const std::string kind = Query::attr(mem, "snapshot");
        s.has_memory = kind == internal || kind == external;
        if (kind == external) {
            s.method = SnapshotMethod::external;
            s.memory_file = Query::attr(mem, "file");
        }
    }
    for (xmlNodePtr disk : q.nodes("/domainsnapshot/disks/disk")) {
        const std::string kind = Query::attr(disk, "snapshot");
        if (kind == external || kind == "manual") s.all_disks_internal = false;
        if (kind != external) continue;
        s.method = SnapshotMethod::external;
        if (xmlNodePtr src = q.node("source", disk)) {
            std::string file = Query::attr(src, "file");
            if (file.empty()) file = Query::attr(src, "dev");
            if (!file.empty()) s.overlays.push_back(std::move(file));
        }
    }
    // The snapshot's state is libvirt's word for the domain's state when it was taken.
    const bool guest_ran = s.state == to_string(DomainState::running) || s.state == to_string(DomainState::paused);
    if (s.has_memory && guest_ran)
        s.mode = SnapshotMode::memory;
    else if (s.state == to_string(DomainState::shutoff) && !s.has_memory &&
             (s.all_disks_internal || s.method == SnapshotMethod::external))
        s.mode = SnapshotMode::stopped;
    s.display_name = q.text("/domainsnapshot/domain/metadata/sv:snapshot/sv:display-name");
    s.files = s.overlays;
    if (!s.memory_file.empty()) s.files.push_back(s.memory_file);
    append_source_files(q, "/domainsnapshot/domain/devices/disk//source", s.files);
    if (auto nvram = q.text("/domainsnapshot/domain/os/nvram")) s.files.push_back(*nvram);
    if (!s.memory_file.empty()) s.state_files.push_back(s.memory_file);
    append_source_files(q, "/domainsnapshot/domain/devices/disk[not(@device='cdrom' or @device='floppy')]//source",
                        s.state_files);
    return s;
}

DomainConfig parse_domain(const std::string& text) {
    Doc doc = parse(text);
    Query q(doc.get());
    DomainConfig cfg;
    for (xmlNodePtr n : q.nodes("/domain/devices/disk")) {
        DiskInfo d;
        d.type = Query::attr(n, "type");
        d.device = Query::attr(n, "device");
        if (d.device.empty()) d.device = "disk";
        d.excluded = Query::attr(n, "snapshot") == "no";
        if (xmlNodePtr t = q.node("target", n)) d.target = Query::attr(t, "dev");
        if (xmlNodePtr drv = q.node("driver", n)) d.format = Query::attr(drv, "type");
        if (xmlNodePtr src = q.node("source", n)) {
            for (const char* a : {"file", "dev", "name", "volume"}) {
                d.source = Query::attr(src, a);
                if (!d.source.empty()) break;
            }
        }
        d.base_type = d.type;
        for (xmlNodePtr b = q.node("backingStore", n); b && !Query::attr(b, "type").empty(); b = q.node("backingStore", b))
            d.base_type = Query::attr(b, "type");
        d.readonly = q.node("readonly", n) != nullptr;
        cfg.disks.push_back(std::move(d));
    }
    if (xmlNodePtr loader = q.node("/domain/os/loader")) cfg.pflash_firmware = Query::attr(loader, "type") == "pflash";
    cfg.nvram = q.text("/domain/os/nvram").value_or("");
    append_source_files(q, "/domain/devices/disk//source", cfg.files);
    if (!cfg.nvram.empty()) cfg.files.push_back(cfg.nvram);
    if (xmlNodePtr os = q.node("/domain/os"); os && Query::attr(os, "firmware") == "efi") cfg.pflash_firmware = true;
    return cfg;
}

std::string set_snapshot_metadata(const std::string& snapshot_xml, const std::string& description,
                                  const std::string& display_name) {
    Doc doc = parse(snapshot_xml);
    Query q(doc.get());
    xmlNodePtr root = xmlDocGetRootElement(doc.get());

    // <description>: replace its text, add it after <name> when missing, drop it when empty.
    xmlNodePtr desc = q.node("/domainsnapshot/description");
    if (description.empty()) {
        if (desc) {
            xmlUnlinkNode(desc);
            xmlFreeNode(desc);
        }
    } else {
        if (!desc) {
            xmlNodePtr name = q.node("/domainsnapshot/name");
            desc = xmlNewDocNode(doc.get(), nullptr, x("description"), nullptr);
            if (name)
                xmlAddNextSibling(name, desc);
            else
                xmlAddChild(root, desc);
        }
        xmlNodeSetContent(desc, nullptr);
        xmlNodeAddContent(desc, x(description.c_str()));  // text, escaped when serialised
    }

    // <domain><metadata><snapvirt:snapshot><snapvirt:display-name>
    if (xmlNodePtr dom = q.node("/domainsnapshot/domain")) {
        xmlNodePtr meta = q.node("metadata", dom);
        if (!meta) {
            meta = xmlNewDocNode(doc.get(), nullptr, x("metadata"), nullptr);
            xmlNodePtr first = dom->children;
            if (xmlNodePtr after = q.node("(name|uuid|genid|title|description)[last()]", dom))
                xmlAddNextSibling(after, meta);
            else if (first)
                xmlAddPrevSibling(first, meta);
            else
                xmlAddChild(dom, meta);
        }
        for (xmlNodePtr old : q.nodes("sv:snapshot", meta)) {
            xmlUnlinkNode(old);
            xmlFreeNode(old);
        }
        xmlNodePtr ours = xmlNewChild(meta, nullptr, x("snapshot"), nullptr);
        xmlNsPtr ns = xmlNewNs(ours, x(metadata_ns), x("snapvirt"));
        xmlSetNs(ours, ns);
        xmlNodePtr dn = xmlNewChild(ours, ns, x("display-name"), nullptr);
        xmlNodeAddContent(dn, x(display_name.c_str()));
    }

    xmlChar* out = nullptr;
    int len = 0;
    xmlDocDumpMemoryEnc(doc.get(), &out, &len, "UTF-8");
    if (!out) throw std::bad_alloc();
    XmlString holder(out);
    return std::string(reinterpret_cast<const char*>(out), static_cast<std::size_t>(len));
}

}  // namespace snapvirt::hv::xml
