// NORMKIT_HD marks functions compiled for both the host and the device: the one definition of each
// formula is shared by the CUDA kernels and the host engine.
#pragma once

#if defined(__CUDACC__)
#define NORMKIT_HD __host__ __device__ __forceinline__
#else
#define NORMKIT_HD inline
#endif

// Loop unrolling hint understood by nvcc and gcc alike.
#if defined(__CUDACC__)
#define NORMKIT_UNROLL _Pragma("unroll")
#else
#define NORMKIT_UNROLL _Pragma("GCC unroll 16")
#endif
