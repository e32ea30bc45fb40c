// seccomp_exec SYSCALL... -- PROGRAM ARGS...
// Runs PROGRAM under the seccomp part of snapvirtd.service, for tests on machines without
// systemd as PID 1: only the named system calls are allowed (others fail with EPERM, as
// SystemCallErrorNumber=EPERM), plus MemoryDenyWriteExecute= (no PROT_WRITE|PROT_EXEC mmap, no
// mprotect to PROT_EXEC) and RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 (other families
// fail with EAFNOSUPPORT), and NoNewPrivileges=. libseccomp is loaded at run time (libseccomp2
// is there wherever systemd is), so no -dev package is needed. Exit 77 if it is missing.

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <dlfcn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

namespace {
enum scmp_compare { SCMP_CMP_NE = 1, SCMP_CMP_LT, SCMP_CMP_LE, SCMP_CMP_EQ, SCMP_CMP_GE, SCMP_CMP_GT, SCMP_CMP_MASKED_EQ };
struct scmp_arg_cmp {
    unsigned int arg;
    scmp_compare op;
    std::uint64_t datum_a;
    std::uint64_t datum_b;
};
constexpr std::uint32_t act_allow = 0x7fff0000U;
constexpr std::uint32_t act_errno(int e) { return 0x00050000U | (static_cast<std::uint32_t>(e) & 0xffffU); }
using init_fn = void* (*)(std::uint32_t);
using rule_fn = int (*)(void*, std::uint32_t, int, unsigned int, ...);
using resolve_fn = int (*)(const char*);
using load_fn = int (*)(void*);
}  // namespace

int main(int argc, char** argv) {
    void* lib = dlopen("libseccomp.so.2", RTLD_NOW);
    if (!lib) {
        std::fprintf(stderr, "seccomp_exec: %s\n", dlerror());
        return 77;
    }
    auto init = reinterpret_cast<init_fn>(dlsym(lib, "seccomp_init"));
    auto rule = reinterpret_cast<rule_fn>(dlsym(lib, "seccomp_rule_add"));
    auto resolve = reinterpret_cast<resolve_fn>(dlsym(lib, "seccomp_syscall_resolve_name"));
    auto load = reinterpret_cast<load_fn>(dlsym(lib, "seccomp_load"));
    if (!init || !rule || !resolve || !load) return 77;

    void* ctx = init(act_errno(EPERM));
    int i = 1;
    for (; i < argc && std::strcmp(argv[i], "--") != 0; ++i) {
        const char* name = argv[i];
        // These get argument-dependent rules below.
        if (!std::strcmp(name, "mmap") || !std::strcmp(name, "mprotect") || !std::strcmp(name, "pkey_mprotect") ||
            !std::strcmp(name, "socket"))
            continue;
        const int nr = resolve(name);
        if (nr < 0) continue;  // not on this architecture
        if (rule(ctx, act_allow, nr, 0) != 0) std::fprintf(stderr, "seccomp_exec: cannot allow %s\n", name);
    }
    if (i + 1 >= argc) {
        std::fprintf(stderr, "usage: seccomp_exec SYSCALL... -- PROGRAM ARGS...\n");
        return 2;
    }
    for (std::uint64_t prot : {0, 2, 4}) {  // (prot & (PROT_WRITE|PROT_EXEC)) != both
        rule(ctx, act_allow, resolve("mmap"), 1, scmp_arg_cmp{2, SCMP_CMP_MASKED_EQ, 0x6, prot});
    }
    rule(ctx, act_allow, resolve("mprotect"), 1, scmp_arg_cmp{2, SCMP_CMP_MASKED_EQ, 0x4, 0});
    rule(ctx, act_allow, resolve("pkey_mprotect"), 1, scmp_arg_cmp{2, SCMP_CMP_MASKED_EQ, 0x4, 0});
    for (std::uint64_t family : {AF_UNIX, AF_INET, AF_INET6})
        rule(ctx, act_allow, resolve("socket"), 1, scmp_arg_cmp{0, SCMP_CMP_EQ, family, 0});
    for (std::uint64_t family = 0; family < 64; ++family)
        if (family != AF_UNIX && family != AF_INET && family != AF_INET6)
            rule(ctx, act_errno(EAFNOSUPPORT), resolve("socket"), 1, scmp_arg_cmp{0, SCMP_CMP_EQ, family, 0});

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || load(ctx) != 0) {
        std::perror("seccomp_exec: loading the filter");
        return 1;
    }
    execv(argv[i + 1], argv + i + 1);
    std::perror("seccomp_exec: execv");
    return 127;
}
