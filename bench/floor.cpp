// The memory anchor of docs/BENCHMARKS.md: the smallest libvirt client there is. It opens a
// connection to qemu:///system with keepalive and the default event loop (as snapvirtd does),
// lists the domains once, and waits to be killed. Its VmRSS is what linking and using libvirt
// costs any daemon, before a line of its own work.
#include <libvirt/libvirt.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

int main(int argc, char** argv) {
    const char* uri = argc > 1 ? argv[1] : "qemu:///system";
    virEventRegisterDefaultImpl();
    std::thread loop([] {
        for (;;) virEventRunDefaultImpl();
    });
    loop.detach();
    virConnectPtr conn = virConnectOpen(uri);
    if (!conn) return 1;
    virConnectSetKeepAlive(conn, 5, 3);
    virDomainPtr* domains = nullptr;
    const int n = virConnectListAllDomains(conn, &domains, 0);
    for (int i = 0; i < n; ++i) virDomainFree(domains[i]);
    free(domains);
    std::printf("ready %d\n", n);
    std::fflush(stdout);
    for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
}
