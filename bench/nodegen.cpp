// Writes a libvirt test-driver node file with DOMAINS domains of SNAPSHOTS snapshots each (a
// chain; the last one current), the first domain with FIRST snapshots if given, for
// catalog-scale benchmarks:
//   bench_nodegen DOMAINS SNAPSHOTS [FIRST] > node.xml    then --libvirt-uri test:///abs/node.xml
#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
    if (argc != 3 && argc != 4) {
        std::fprintf(stderr, "usage: %s DOMAINS SNAPSHOTS [FIRST]\n", argv[0]);
        return 2;
    }
    const int domains = std::atoi(argv[1]);
    const int per_domain = std::atoi(argv[2]);
    const int first = argc == 4 ? std::atoi(argv[3]) : per_domain;
    std::printf("<node>\n");
    for (int d = 0; d < domains; ++d) {
        std::printf("<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>"
                    "<name>bench-%05d</name><uuid>5ea7be7c-0000-4000-8000-%012d</uuid>"
                    "<memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type>hvm</type></os>"
                    "<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
                    "<source file='/bench/%05d.qcow2'/><target dev='vda'/></disk></devices>\n",
                    d, d, d);
        const int snapshots = d == 0 ? first : per_domain;
        for (int s = 0; s < snapshots; ++s) {
            std::printf("<test:domainsnapshot><name>snap-%04d</name><description>Benchmark snapshot %d of "
                        "domain %d</description><state>running</state><creationTime>%d</creationTime>",
                        s, s, d, 1700000000 + s);
            if (s > 0) std::printf("<parent><name>snap-%04d</name></parent>", s - 1);
            std::printf("<memory snapshot='internal'/><active>%d</active></test:domainsnapshot>\n",
                        s == snapshots - 1 ? 1 : 0);
        }
        std::printf("</domain>\n");
    }
    std::printf("</node>\n");
    return 0;
}
