// libFuzzer: endpoint::parse accepts or throws std::invalid_argument, never crashes; whatever it
// accepts prints back to a string that parses to the same endpoint.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string_view>

#include "ringsock/endpoint.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    ringsock::endpoint e = ringsock::endpoint::parse(text);
    if (e.family() == ringsock::address_family::unix_domain) return 0;  // paths print as given
    ringsock::endpoint again = ringsock::endpoint::parse(e.to_string());
    if (!(again == e)) std::abort();
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
