#pragma once
// The `snapvirt` CLI's exit codes (documented in docs/cli.md and `snapvirt --help`) and the one
// exception type that carries a failure, with its exit code, up to main().

#include <stdexcept>
#include <string>

namespace snapvirt::cli {

// Exit codes a script can branch on. Keep in step with docs/cli.md and exit_code_help().
enum class Exit : int {
    ok = 0,
    job_failed = 1,      // the job ended `failed` or `cancelled`
    usage = 2,           // bad command line, ambiguous reference, unusable local file
    not_found = 3,       // 404: no such instance, snapshot, schedule or job
    conflict = 4,        // 409: busy, snapshot or schedule exists, limit, not ready, not cancellable, idempotency
    rejected = 5,        // 400, 413, 415, 422, 507: the daemon refused the request's content (or it does not fit)
    auth = 6,            // 401, 403, or no permission on the Unix socket
    unavailable = 7,     // cannot reach the daemon, or 503 (hypervisor unavailable)
    not_confirmed = 8,   // revert/delete declined at the prompt, or no terminal and no --yes
    timed_out = 9,       // --timeout passed while waiting; the job goes on in the daemon
    internal = 10,       // 500, or an answer the CLI does not understand
    interrupted = 130,   // Ctrl-C while waiting; the job goes on in the daemon
};

// The exit code for an HTTP error status from the daemon.
inline Exit exit_for_status(int status) {
    switch (status) {
        case 404: return Exit::not_found;
        case 409: return Exit::conflict;
        case 400:
        case 413:
        case 415:
        case 422:
        case 431:
        case 507: return Exit::rejected;
        case 401:
        case 403: return Exit::auth;
        case 408:
        case 502:
        case 503:
        case 504: return Exit::unavailable;
        default: return Exit::internal;
    }
}

// A command's failure: `message` is printed as "snapvirt: <message>" on stderr, `hint` (if any)
// on the next line, and the process exits with `exit`.
class Failure : public std::runtime_error {
public:
    Failure(Exit exit, std::string message, std::string hint = {})
        : std::runtime_error(std::move(message)), exit_(exit), hint_(std::move(hint)) {}
    Exit exit() const noexcept { return exit_; }
    const std::string& hint() const noexcept { return hint_; }

private:
    Exit exit_;
    std::string hint_;
};

// The exit code table as shown at the end of `snapvirt --help`.
inline const char* exit_code_help() {
    return "Exit codes:\n"
           "  0    success\n"
           "  1    the job ended failed or cancelled\n"
           "  2    usage error (bad arguments, ambiguous snapshot or job reference)\n"
           "  3    not found (instance, snapshot, schedule or job)\n"
           "  4    conflict (instance busy, snapshot or schedule exists, limit reached, not cancellable, idempotency key reused)\n"
           "  5    request refused as invalid (HTTP 400, 413, 415, 422: e.g. bad name, instance not running;\n"
           "       507: an external snapshot's files do not fit)\n"
           "  6    authentication or permission (HTTP 401, 403, Unix socket permissions)\n"
           "  7    daemon unreachable, or hypervisor unavailable (HTTP 503)\n"
           "  8    not confirmed (declined at the prompt, or no terminal and no --yes)\n"
           "  9    timed out waiting (--timeout); the job goes on\n"
           "  10   internal error (HTTP 500 or an unexpected answer)\n"
           "  130  interrupted while waiting; the job goes on\n";
}

}  // namespace snapvirt::cli
