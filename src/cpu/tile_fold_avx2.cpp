// AVX2 build of the tile folding loops (compiled with -mavx2; used only when the CPU has AVX2).
namespace { constexpr unsigned kVectorBytes = 32; }
#define NORMKIT_TILE_FOLD_NAMESPACE avx2
#define NORMKIT_TILE_FOLD_NAME "avx2"
#include "cpu/tile_fold_impl.inc"
