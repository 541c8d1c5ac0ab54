/* Kernels, compiled once per instruction set (AM_VARIANT = portable, avx2, avx512). */
#include "am_kernels.h"

#ifndef AM_VARIANT
#error "compile with -DAM_VARIANT=<portable|avx2|avx512>"
#endif

#define AM_STR_(x) #x
#define AM_STR(x) AM_STR_(x)

#if defined(__AVX512BW__)
#define AM_VECTOR_BYTES 64
#elif defined(__AVX2__)
#define AM_VECTOR_BYTES 32
#else
#define AM_VECTOR_BYTES 16
#endif

const am_kernels AM_TABLE_NAME(AM_VARIANT) = {
    .name = AM_STR(AM_VARIANT),
    .vector_bytes = AM_VECTOR_BYTES,
};
