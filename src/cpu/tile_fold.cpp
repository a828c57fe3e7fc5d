#include "cpu/tile_fold.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <cstdlib>
#include <cstring>

namespace normkit::cpu {
namespace {

#if defined(NORMKIT_HAVE_AVX2) && (defined(__x86_64__) || defined(__i386__))
// CPUID leaf 1, ECX bit 29 (clang's __builtin_cpu_supports has no "f16c"; the AVX2 test covers the OS's
// support of the AVX state that F16C needs).
bool has_f16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & (1u << 29)) != 0;
}
#endif

}  // namespace

const TileFold& tile_fold() noexcept {
  static const TileFold& chosen = [] () -> const TileFold& {
#if defined(NORMKIT_HAVE_AVX2) && (defined(__x86_64__) || defined(__i386__))
    const char* forced = std::getenv("NORMKIT_HOST_ISA");
    if (!(forced && std::strcmp(forced, "sse2") == 0) && __builtin_cpu_supports("avx2") && has_f16c()) {
      return avx2::kTileFold;
    }
#endif
    return sse2::kTileFold;
  }();
  return chosen;
}

}  // namespace normkit::cpu
