#!/usr/bin/env bash
# Packs what scripts/gpu-check.sh needs and a lent GPU machine lacks: GoogleTest/GoogleMock (static) and
# Google Benchmark (shared) with their CMake package files, copied from this machine's Debian packages into
# .gpu-deps/ (git-ignored) in the usual prefix layout, so find_package() finds them there through
# CMAKE_PREFIX_PATH. The GPU machine has nvcc, CMake, ninja and a host compiler but can fetch nothing; the
# device tool carries .gpu-deps when a run names it in `carry` (about 2 MB).
#   scripts/gpu-deps.sh            then   run: scripts/gpu-check.sh   carry: [".gpu-deps"]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh >/dev/null

multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
lib=/usr/lib/$multiarch
dest=.gpu-deps
rm -rf "$dest.tmp"
mkdir -p "$dest.tmp/include" "$dest.tmp/lib/$multiarch/cmake"
for header_dir in gtest gmock benchmark; do
  cp -r "/usr/include/$header_dir" "$dest.tmp/include/"
done
cp -P "$lib"/libgtest*.a "$lib"/libgmock*.a "$lib"/libbenchmark* "$dest.tmp/lib/$multiarch/"
for package in GTest benchmark; do
  cp -r "$lib/cmake/$package" "$dest.tmp/lib/$multiarch/cmake/"
done
rm -rf "$dest"
mv "$dest.tmp" "$dest"
echo "gpu-deps: $(du -sh "$dest" | cut -f1) in $dest (name it in the device run's carry)"
