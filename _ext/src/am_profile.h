/* Hooks of the phase split (benchmarks/phases/run.sh), and only of it: that script
 * compiles the kernels with -DAM_PROFILE_ENCODE_ONLY (stop after the encoder) or
 * -DAM_PROFILE_NO_STORE (table sums without dequantisation, stores or copy-outs), so
 * that the differences between builds split a call into its phases. In every other
 * build the hooks expand to nothing: the production kernels hold no profiling code. */
#ifndef AM_PROFILE_H
#define AM_PROFILE_H

/* AM_PROFILE_AFTER_ENCODE(statements): run right after a block is encoded. */
#ifdef AM_PROFILE_ENCODE_ONLY
#define AM_PROFILE_AFTER_ENCODE(...) __VA_ARGS__
#else
#define AM_PROFILE_AFTER_ENCODE(...)
#endif

/* AM_PROFILE_INSTEAD_OF_STORE(statements): run where the sums are dequantised and
 * stored, or copied out; they keep the sums alive and skip the rest. */
#ifdef AM_PROFILE_NO_STORE
#define AM_PROFILE_INSTEAD_OF_STORE(...) __VA_ARGS__
#else
#define AM_PROFILE_INSTEAD_OF_STORE(...)
#endif

#endif
