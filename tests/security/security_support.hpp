#pragma once
// Helpers of the security suite: a throwaway PKI made with the openssl CLI, snapvirtd's
// `token` subcommands, daemons with TLS listeners, raw sockets, and the log checks
// (no secret in the log, a request id on every access line).

#include "cli/client.hpp"
#include "tests/support/daemon.hpp"

#include "tests/support/catch.hpp"

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <unistd.h>

namespace snapvirt::sec {

namespace fs = std::filesystem;

// Runs a shell command; returns its exit status and (stdout + stderr) in `output`.
int sh(const std::string& command, std::string* output = nullptr);

// A CA, a server certificate for 127.0.0.1 (subjectAltName IP:127.0.0.1), a client
// certificate signed by the CA, and a self-signed "rogue" client certificate, all made once
// per test process in a temporary directory.
struct Pki {
    fs::path dir;
    fs::path ca_crt, ca_key;
    fs::path server_crt, server_key;
    fs::path client_crt, client_key;
    fs::path rogue_crt, rogue_key;
    fs::path other_key;  // a key that belongs to none of the certificates
    // The base64 body of each private key's PEM, for the "never logged" checks.
    std::vector<std::string> key_bodies() const;
};
const Pki& pki();

// `snapvirtd token ...` against a state directory (also while a daemon runs there).
struct CommandResult {
    int status = -1;
    std::string output;
};
CommandResult snapvirtd_cli(const std::vector<std::string>& args);
// Creates a token; returns the secret (the last line of the output). REQUIREs success.
std::string create_token(const fs::path& state_dir, const std::string& scope, const std::string& name);
void revoke_token(const fs::path& state_dir, const std::string& name);

// A daemon with a TLS listener on 127.0.0.1:0 (and its Unix socket); `mtls` adds the client CA.
struct TlsDaemon {
    std::unique_ptr<test::Daemon> daemon;
    client::Url url;  // https://127.0.0.1:PORT
    client::TlsOptions tls;  // verifies the server against the test CA (and presents the client certificate with mTLS)
    std::string admin_token;  // {state}/admin.token (test::Daemon::token() is empty without its own TCP listener)
    client::Client as(const std::string& token) const { return client::Client(url, token, tls, std::chrono::seconds(30)); }
};
TlsDaemon start_tls_daemon(bool mtls, const std::string& extra_server_config = {});

// The content of {state}/admin.token without the line end ("" when there is none).
std::string read_admin_token(const fs::path& state_dir);

// The first line of the daemon's log matching "Listening on <scheme>://127.0.0.1:PORT".
std::optional<client::Url> listening_url(const test::Daemon& d, const std::string& scheme);

// A plain TCP socket connected to 127.0.0.1:port (blocking); -1 on failure.
int connect_tcp(std::uint16_t port);
// Whether the peer closed `fd` (recv gives 0 or an error other than EAGAIN), waiting up to `wait`.
bool peer_closed(int fd, std::chrono::milliseconds wait);

// The log must hold none of `secrets`, no private-key body of the test PKI, and every access
// line must carry a request id (`access req=<id> `).
void check_log_hygiene(const std::string& log, const std::vector<std::string>& secrets);

// A status and the error code (if any) of one request, transport errors as status -1.
struct Outcome {
    int status = -1;
    std::string code;
    std::string transport_error;
    bool www_authenticate = false;
};
Outcome call(const client::Client& c, const std::string& method, const std::string& target, const std::string& body = {});

// Raw sockets a test opened, closed when it ends.
struct Fds {
    std::vector<int> fds;
    ~Fds() {
        for (int fd : fds) ::close(fd);
    }
};

}  // namespace snapvirt::sec
