#include "cpu/tile_fold.hpp"

#include <cstdlib>
#include <cstring>

namespace normkit::cpu {

const TileFold& tile_fold() noexcept {
  static const TileFold& chosen = [] () -> const TileFold& {
#if defined(NORMKIT_HAVE_AVX2) && (defined(__x86_64__) || defined(__i386__))
    const char* forced = std::getenv("NORMKIT_HOST_ISA");
    if (!(forced && std::strcmp(forced, "sse2") == 0) && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c")) {
      return avx2::kTileFold;
    }
#endif
    return sse2::kTileFold;
  }();
  return chosen;
}

}  // namespace normkit::cpu
