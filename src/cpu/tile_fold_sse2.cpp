// Baseline (x86-64 SSE2, or any target's 16-byte vectors) build of the tile folding loops.
namespace { constexpr unsigned kVectorBytes = 16; }
#define NORMKIT_TILE_FOLD_NAMESPACE sse2
#define NORMKIT_TILE_FOLD_NAME "sse2"
#include "cpu/tile_fold_impl.inc"
