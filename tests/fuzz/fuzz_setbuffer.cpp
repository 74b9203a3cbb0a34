// libFuzzer: SocketAsyncEventArgs::SetBuffer with arbitrary (also negative and overflowing)
// offsets and counts either takes them, keeping the window inside the buffer, or throws
// ArgumentOutOfRangeException / ArgumentException and leaves the previous window unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "ringsock/compat.hpp"

using namespace ringsock::compat;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::byte> buf(64);
  SocketAsyncEventArgs e;
  std::size_t i = 0;
  auto next_int = [&]() -> int {
    int v = 0;
    if (i + sizeof v <= size) std::memcpy(&v, data + i, sizeof v);
    i += sizeof v;
    return v;
  };
  while (i < size) {
    const int op = size > i ? data[i++] % 3 : 0;
    const int offset = next_int(), count = next_int();
    const int old_offset = e.Offset(), old_count = e.Count();
    try {
      if (op == 0) e.SetBuffer(buf, offset, count);
      else if (op == 1) e.SetBuffer(offset, count);
      else e.SetBuffer(std::span<std::byte>(buf).first(static_cast<std::size_t>(offset) % 65), 0, 0);
    } catch (const ArgumentException&) {
      if (e.Offset() != old_offset || e.Count() != old_count) std::abort();
      continue;
    }
    const long long end = static_cast<long long>(e.Offset()) + e.Count();
    if (e.Offset() < 0 || e.Count() < 0 || end > static_cast<long long>(e.Buffer().size())) std::abort();
  }
  return 0;
}
