// libFuzzer: the bench servers' minimal HTTP parser (bench/servers/http_min.h) never reads past
// its input, and a request it finds ends with CRLFCRLF inside the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "../../bench/servers/http_min.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<char> buf(data, data + size);  // exact size: ASan sees any overread
  std::size_t off = 0;
  while (off < buf.size()) {
    std::size_t end = http_request_end(buf.data() + off, buf.size() - off);
    if (end == 0) break;
    if (end < 4 || end > buf.size() - off || buf[off + end - 1] != '\n' || buf[off + end - 4] != '\r')
      std::abort();
    (void)http_wants_close(buf.data() + off, end);
    off += end;
  }
  return 0;
}
