// The browser test's world: two real QEMU guests (one running, one shut off) and a snapvirtd
// of its own. Prints one JSON line {"url", "token", "instances": [running, off], "state_dir"}
// on stdout, then waits until its standard input closes (the Node test ends or dies) and
// removes everything again: the destructors take the daemon and the guests away.

#include "tests/support/daemon.hpp"
#include "tests/support/guest.hpp"

#include <nlohmann/json.hpp>

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <unistd.h>

using namespace snapvirt::test;

namespace {

volatile std::sig_atomic_t stop_requested = 0;
void on_signal(int) { stop_requested = 1; }

}  // namespace

int main() {
    // SIGTERM/SIGINT/SIGHUP end the wait below, so the destructors still run.
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaction(sig, &sa, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    try {
        TestGuest running({.tag = "web", .memory_mib = 64, .fill_mib = 16});
        TestGuest off({.tag = "webo", .memory_mib = 64, .fill_mib = 16, .running = false});
        running.wait_booted();

        DaemonOptions opts;
        // Keeps a snapshot in "creating" long enough to be seen in the page, as on a slower host.
        const char* delays = std::getenv("SNAPVIRT_WEB_DELAYS");
        opts.env["SNAPVIRT_TEST_DELAYS"] = delays ? delays : "saving.after=1500,snapshotting.after=1500";
        Daemon daemon(opts);

        const nlohmann::json hello = {{"url", daemon.url().to_string()},
                                      {"token", daemon.token()},
                                      {"instances", {running.name(), off.name()}},
                                      {"uuids", {running.uuid(), off.uuid()}},
                                      {"state_dir", daemon.state_dir().string()}};
        std::cout << hello.dump() << std::endl;

        // Wait for EOF on stdin (or a signal).
        char buf[256];
        while (!stop_requested) {
            const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
            if (n == 0) break;
            if (n < 0 && errno != EINTR) break;
        }
        if (std::getenv("SNAPVIRT_WEB_SHOW_LOG")) std::cerr << daemon.log();
    } catch (const std::exception& e) {
        std::cerr << "web fixture: " << e.what() << std::endl;
        return 1;
    }
    return 0;
}
