// SHA-256 (FIPS 180-4), for BrowseComp's dataset encryption key. Not used for anything secret.
#pragma once
#include <array>
#include <cstdint>
#include <string_view>

namespace dsa {

std::array<uint8_t, 32> sha256(std::string_view data);

}  // namespace dsa
