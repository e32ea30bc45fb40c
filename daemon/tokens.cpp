#include "daemon/tokens.hpp"

#include "config/text.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <stdexcept>

namespace snapvirt::daemon {

std::string generate_token() {
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof raw) != 1) throw std::runtime_error("The system has no randomness to make a token.");
    static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out = "svt_";
    unsigned buffer = 0;
    int bits = 0;
    for (unsigned char c : raw) {
        buffer = (buffer << 8) | c;
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out.push_back(alphabet[(buffer >> bits) & 63]);
        }
    }
    if (bits > 0) out.push_back(alphabet[(buffer << (6 - bits)) & 63]);
    return out;
}

api::Scope match_token(const std::string& token, const std::vector<std::pair<std::string, std::string>>& hashes) {
    const std::string h = sha256_hex(token);
    api::Scope found = api::Scope::none;
    // Look at every entry, whatever matches, so the time taken says nothing about the tokens.
    for (const auto& [hash, scope] : hashes) {
        const bool same = hash.size() == h.size() && CRYPTO_memcmp(hash.data(), h.data(), h.size()) == 0;
        if (same) found = scope == "write" ? api::Scope::write : api::Scope::read;
    }
    return found;
}

void add_token(Catalog& catalog, const std::string& name, const std::string& scope, const std::string& token) {
    if (scope != "read" && scope != "write") throw std::runtime_error("The scope must be 'read' or 'write', not '" + scope + "'.");
    if (name.empty() || name.size() > 64) throw std::runtime_error("A token's name must be 1 to 64 characters.");
    for (const auto& t : catalog.tokens())
        if (t.name == name) throw std::runtime_error("A token named '" + name + "' exists already; revoke it first.");
    catalog.add_token(name, scope, sha256_hex(token), now_ms());
}

std::string create_token(Catalog& catalog, const std::string& name, const std::string& scope) {
    std::string token = generate_token();
    add_token(catalog, name, scope, token);
    return token;
}

}  // namespace snapvirt::daemon
