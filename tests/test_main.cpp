// The suites' main: doctest's, after one check that io_uring can be had at all. Where it is
// refused (EPERM: io_uring_disabled or seccomp; ENOSYS: no io_uring in the kernel) every suite
// exits 77, which Meson reports as a skip, with the reason, instead of failing every case.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cerrno>
#include <cstdio>

#include "ringsock/error.hpp"
#include "ringsock/io_context.hpp"

int main(int argc, char** argv) {
  try {
    ringsock::io_context probe;
  } catch (const ringsock::ring_setup_error& e) {
    const int err = e.code().value();
    if (err == EPERM || err == ENOSYS) {
      std::fprintf(stderr, "skipped: io_uring is not available here: %s\n", e.what());
      return 77;
    }
    throw;
  }
  return doctest::Context(argc, argv).run();
}
