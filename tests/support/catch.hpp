#pragma once
// Catch2 for every test file, whichever major version the distribution ships: v2 (Debian 12,
// one header) or v3 (Debian 13, split headers and a compiled library). The tests are written
// against v2's names; under v3 the few that moved are made available under their v2 names here.

#if __has_include(<catch2/catch_all.hpp>)

#include <catch2/catch_all.hpp>

#include <string>

namespace Catch {
// v2 spelled the substring matcher Catch::Contains (v3: Catch::Matchers::ContainsSubstring; its
// Catch::Matchers::Contains matches an element of a range instead).
inline Matchers::StringContainsMatcher Contains(const std::string& str,
                                                CaseSensitive sensitivity = CaseSensitive::Yes) {
    return Matchers::ContainsSubstring(str, sensitivity);
}
using Matchers::EndsWith;
using Matchers::Equals;
using Matchers::Matches;
using Matchers::StartsWith;
}  // namespace Catch

// v2 put Approx in the global namespace too.
using Catch::Approx;

#else

#include <catch2/catch.hpp>

#endif
