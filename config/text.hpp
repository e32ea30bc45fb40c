#pragma once
// Small text helpers that several layers need, written once.

#include <string>
#include <string_view>

namespace snapvirt {

// ASCII letters lowered; other bytes as they are (UUIDs, header names, media types).
std::string lower_ascii(std::string_view text);

// 'text': how messages quote a name ("Instance 'web1' is not running.").
std::string in_quotes(std::string_view text);

// The SHA-256 digest of `data` in lowercase hex (token hashes, request fingerprints).
std::string sha256_hex(std::string_view data);

}  // namespace snapvirt
