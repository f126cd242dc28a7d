// Internal to the CPU kernels: contract checks at kernel entry. A violated contract is a bug in the
// caller (shapes are validated where the model is loaded), so it stops the program with the
// expression and a hint rather than reading out of bounds.
#pragma once
#include <cstdio>
#include <cstdlib>

#define DSA_KERNEL_REQUIRE(cond, hint)                                                              \
  do {                                                                                              \
    if (!(cond)) {                                                                                  \
      std::fprintf(stderr, "%s:%d: kernel contract violated: %s (%s)\n", __FILE__, __LINE__, #cond, \
                   hint);                                                                           \
      std::abort();                                                                                 \
    }                                                                                               \
  } while (0)
