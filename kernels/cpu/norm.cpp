// Normalisations (see norm.hpp).
#include "kernels/cpu/norm.hpp"

#include <cmath>

#include "kernels/dtypes.hpp"

namespace dsa::cpu {
namespace {

void rms_norm_row(const float* x, int64_t n, const float* w, float eps, float* y) {
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += double(x[i]) * double(x[i]);
  const double denom = std::sqrt(ss / double(n) + double(eps));
  for (int64_t i = 0; i < n; ++i) y[i] = round_bf16(w[i] * float(double(x[i]) / denom));
}

}  // namespace

void rms_norm(const float* x, int64_t rows, int64_t n, const float* w, float eps, float* y) {
  for (int64_t r = 0; r < rows; ++r) rms_norm_row(x + r * n, n, w, eps, y + r * n);
}

void add_rms_norm(const float* x, float* residual, int64_t rows, int64_t n, const float* w, float eps,
                  float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    float* res = residual + r * n;
    float* out = y + r * n;
    const float* in = x + r * n;
    // out holds the fp32 sum until it is normalised in place (out may alias x).
    for (int64_t i = 0; i < n; ++i) {
      const float sum = in[i] + res[i];
      out[i] = sum;
      res[i] = round_bf16(sum);
    }
    rms_norm_row(out, n, w, eps, out);
  }
}

void layer_norm(const float* x, int64_t rows, int64_t n, const float* w, const float* b, float eps,
                float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* in = x + r * n;
    double mu = 0.0;
    for (int64_t i = 0; i < n; ++i) mu += in[i];
    mu /= double(n);
    double var = 0.0;
    for (int64_t i = 0; i < n; ++i) var += (in[i] - mu) * (in[i] - mu);
    var /= double(n);
    const double denom = std::sqrt(var + double(eps));
    for (int64_t i = 0; i < n; ++i)
      y[r * n + i] = round_bf16(float((in[i] - mu) / denom * double(w[i]) + double(b[i])));
  }
}

}  // namespace dsa::cpu
