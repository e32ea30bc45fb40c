#pragma once
// API bearer tokens: random secrets shown once, stored only as SHA-256 hashes, compared in
// constant time.

#include "api/backend.hpp"
#include "daemon/catalog.hpp"

#include <string>
#include <utility>
#include <vector>

namespace snapvirt::daemon {

// "svt_" followed by 43 characters of base64url (256 random bits).
std::string generate_token();
// The scope of the stored hash that equals the token's hash, or Scope::none.
api::Scope match_token(const std::string& token, const std::vector<std::pair<std::string, std::string>>& hashes);

// Creates a token and returns it; throws std::runtime_error (e.g. a name already taken).
std::string create_token(Catalog& catalog, const std::string& name, const std::string& scope);
// Stores a token made elsewhere (its hash only).
void add_token(Catalog& catalog, const std::string& name, const std::string& scope, const std::string& token);

}  // namespace snapvirt::daemon
