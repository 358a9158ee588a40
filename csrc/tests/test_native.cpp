// Drives the native C++ API (no Python, no torch) against a float64 host
// reference. Exit 0: all passed; 1: a mismatch or CUDA error; 77: no GPU (ctest
// reports it as skipped).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include "fused_convt_full/api.h"

namespace {

using fct::ConvTransposeProblem;
using fct::DType;
using fct::Layout;

#define CHECK_CUDA(call)                                                                          \
  do {                                                                                            \
    cudaError_t err_ = (call);                                                                    \
    if (err_ != cudaSuccess) {                                                                    \
      std::fprintf(stderr, "CUDA error %s at %s:%d\n", cudaGetErrorString(err_), __FILE__, __LINE__); \
      std::exit(1);                                                                               \
    }                                                                                             \
  } while (0)

struct Case {
  const char* name;
  int N, Cin, H, W, Cout, k, stride, pad, out_pad;
};

size_t elem_size(DType t) { return t == DType::kFloat32 ? 4 : 2; }

// Stores v in dtype t at index i of a raw buffer and returns the rounded value.
double store(std::vector<uint8_t>& buf, DType t, size_t i, double v) {
  if (t == DType::kFloat32) {
    float f = float(v);
    std::memcpy(buf.data() + 4 * i, &f, 4);
    return f;
  }
  if (t == DType::kFloat16) {
    __half h = __float2half(float(v));
    std::memcpy(buf.data() + 2 * i, &h, 2);
    return __half2float(h);
  }
  __nv_bfloat16 h = __float2bfloat16(float(v));
  std::memcpy(buf.data() + 2 * i, &h, 2);
  return __bfloat162float(h);
}

double load(std::vector<uint8_t> const& buf, DType t, size_t i) {
  if (t == DType::kFloat32) {
    float f;
    std::memcpy(&f, buf.data() + 4 * i, 4);
    return f;
  }
  if (t == DType::kFloat16) {
    __half h;
    std::memcpy(&h, buf.data() + 2 * i, 2);
    return __half2float(h);
  }
  __nv_bfloat16 h;
  std::memcpy(&h, buf.data() + 2 * i, 2);
  return __bfloat162float(h);
}

struct DeviceBuffer {
  void* ptr = nullptr;
  explicit DeviceBuffer(size_t bytes) { CHECK_CUDA(cudaMalloc(&ptr, bytes ? bytes : 1)); }
  ~DeviceBuffer() { cudaFree(ptr); }
};

// Reference composite in float64 from the (rounded) inputs; z is the conv output
// without bias, [N][Cout][Ho][Wo].
std::vector<double> conv_transpose_ref(ConvTransposeProblem const& p, std::vector<double> const& x,
                                       std::vector<double> const& w) {
  int Ho = p.H_out(), Wo = p.W_out();
  std::vector<double> z(size_t(p.N) * p.Cout * Ho * Wo, 0.0);
  for (int n = 0; n < p.N; ++n)
    for (int ci = 0; ci < p.Cin; ++ci)
      for (int ih = 0; ih < p.H; ++ih)
        for (int iw = 0; iw < p.W; ++iw) {
          double xv = x[((size_t(n) * p.Cin + ci) * p.H + ih) * p.W + iw];
          for (int kh = 0; kh < p.kH; ++kh) {
            int oh = ih * p.stride_h - p.pad_h + kh;
            if (oh < 0 || oh >= Ho) continue;
            for (int kw = 0; kw < p.kW; ++kw) {
              int ow = iw * p.stride_w - p.pad_w + kw;
              if (ow < 0 || ow >= Wo) continue;
              for (int co = 0; co < p.Cout; ++co)
                z[((size_t(n) * p.Cout + co) * Ho + oh) * Wo + ow] +=
                    xv * w[((size_t(ci) * p.Cout + co) * p.kH + kh) * p.kW + kw];
            }
          }
        }
  return z;
}

std::vector<double> epilogue_ref(ConvTransposeProblem const& p, std::vector<double> const& z,
                                 std::vector<double> const& conv_b, std::vector<double> const& b, double s) {
  size_t HW = size_t(p.H_out()) * p.W_out();
  std::vector<double> y(z.size());
  for (int n = 0; n < p.N; ++n)
    for (size_t hw = 0; hw < HW; ++hw) {
      double m = -INFINITY, sum = 0;
      for (int c = 0; c < p.Cout; ++c) m = std::fmax(m, z[(size_t(n) * p.Cout + c) * HW + hw] + conv_b[c]);
      for (int c = 0; c < p.Cout; ++c) sum += std::exp(z[(size_t(n) * p.Cout + c) * HW + hw] + conv_b[c] - m);
      for (int c = 0; c < p.Cout; ++c) {
        size_t i = (size_t(n) * p.Cout + c) * HW + hw;
        double prob = std::exp(z[i] + conv_b[c] - m) / sum;
        y[i] = 1.0 / (1.0 + std::exp(-s * (prob + b[c])));
      }
    }
  return y;
}

// Max abs error of a device result in `layout` against the NCHW reference; NaN
// anywhere (including a poisoned, never-written element) is an infinite error.
double max_error(ConvTransposeProblem const& p, Layout layout, std::vector<uint8_t> const& out,
                 std::vector<double> const& ref) {
  size_t HW = size_t(p.H_out()) * p.W_out();
  double worst = 0;
  for (int n = 0; n < p.N; ++n)
    for (int c = 0; c < p.Cout; ++c)
      for (size_t hw = 0; hw < HW; ++hw) {
        size_t i_ref = (size_t(n) * p.Cout + c) * HW + hw;
        size_t i_out = layout == Layout::kNCHW ? i_ref : (size_t(n) * HW + hw) * p.Cout + c;
        double v = load(out, p.dtype, i_out);
        if (std::isnan(v)) return INFINITY;
        worst = std::fmax(worst, std::fabs(v - ref[i_ref]));
      }
  return worst;
}

// Returns the failures; adds the checks it made to `checks`.
int run_case(Case const& cs, DType dtype, std::mt19937& rng, int& checks) {
  ConvTransposeProblem p;
  p.N = cs.N; p.Cin = cs.Cin; p.H = cs.H; p.W = cs.W; p.Cout = cs.Cout;
  p.kH = p.kW = cs.k; p.stride_h = p.stride_w = cs.stride; p.pad_h = p.pad_w = cs.pad;
  p.out_pad_h = p.out_pad_w = cs.out_pad; p.dtype = dtype;
  std::normal_distribution<double> normal(0.0, 1.0);
  size_t es = elem_size(dtype);
  int Cinp = p.Cin_padded(), Coutp = p.Cout_padded();

  // Logits of a few units so the softmax is far from flat.
  std::vector<double> x(size_t(p.N) * p.Cin * p.H * p.W), w(size_t(p.Cin) * p.Cout * p.kH * p.kW);
  std::vector<uint8_t> x_nhwc(size_t(p.N) * p.H * p.W * Cinp * es, 0), w_packed(size_t(Cinp) * p.kH * p.kW * Coutp * es, 0);
  for (int n = 0; n < p.N; ++n)
    for (int ci = 0; ci < p.Cin; ++ci)
      for (int h = 0; h < p.H; ++h)
        for (int ww = 0; ww < p.W; ++ww)
          x[((size_t(n) * p.Cin + ci) * p.H + h) * p.W + ww] =
              store(x_nhwc, dtype, ((size_t(n) * p.H + h) * p.W + ww) * Cinp + ci, normal(rng));
  double w_scale = 2.0 / std::sqrt(double(p.Cin));
  for (int ci = 0; ci < p.Cin; ++ci)
    for (int co = 0; co < p.Cout; ++co)
      for (int kh = 0; kh < p.kH; ++kh)
        for (int kw = 0; kw < p.kW; ++kw)
          w[((size_t(ci) * p.Cout + co) * p.kH + kh) * p.kW + kw] =
              store(w_packed, dtype, ((size_t(ci) * p.kH + kh) * p.kW + kw) * Coutp + co, w_scale * normal(rng));
  std::vector<float> conv_b_f(p.Cout), b_f(p.Cout);
  std::vector<double> conv_b(p.Cout), b(p.Cout);
  for (int c = 0; c < p.Cout; ++c) conv_b[c] = conv_b_f[c] = float(normal(rng)), b[c] = b_f[c] = float(normal(rng));
  double s = 1.7;

  std::vector<double> z = conv_transpose_ref(p, x, w);
  std::vector<double> ref = epilogue_ref(p, z, conv_b, b, s);
  size_t out_elems = ref.size();

  DeviceBuffer d_x(x_nhwc.size()), d_w(w_packed.size()), d_cb(4 * p.Cout), d_b(4 * p.Cout), d_y(out_elems * es),
      d_z(out_elems * es);
  CHECK_CUDA(cudaMemcpy(d_x.ptr, x_nhwc.data(), x_nhwc.size(), cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(d_w.ptr, w_packed.data(), w_packed.size(), cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(d_cb.ptr, conv_b_f.data(), 4 * p.Cout, cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemcpy(d_b.ptr, b_f.data(), 4 * p.Cout, cudaMemcpyHostToDevice));

  double tol = dtype == DType::kFloat32 ? 5e-3 : dtype == DType::kFloat16 ? 4e-3 : 2e-2;
  int failures = 0;
  std::vector<uint8_t> out(out_elems * es);
  for (Layout layout : {Layout::kNCHW, Layout::kNHWC}) {
    p.out_layout = layout;
    char const* lname = layout == Layout::kNCHW ? "nchw" : "nhwc";
    char const* dname = dtype == DType::kFloat32 ? "tf32" : dtype == DType::kFloat16 ? "fp16" : "bf16";

    fct::FusedSupport sup = fct::fused_support(p);
    if (!sup.ok) {
      std::printf("FAIL %-28s %s %s: fused path refused: %s\n", cs.name, dname, lname, sup.reason.c_str());
      ++failures;
      ++checks;
    } else {
      CHECK_CUDA(cudaMemset(d_y.ptr, 0xFF, out_elems * es));  // NaN poison
      fct::Status st = fct::fused_forward(p, d_x.ptr, d_w.ptr, static_cast<float*>(d_cb.ptr),
                                          static_cast<float*>(d_b.ptr), float(s), d_y.ptr, nullptr);
      CHECK_CUDA(cudaDeviceSynchronize());
      CHECK_CUDA(cudaMemcpy(out.data(), d_y.ptr, out.size(), cudaMemcpyDeviceToHost));
      double err = st.ok ? max_error(p, layout, out, ref) : INFINITY;
      bool ok = err <= tol;
      failures += !ok;
      ++checks;
      std::printf("%s %-28s %s %s fused      max_abs_err=%.3g (tol %.1g) %s\n", ok ? "PASS" : "FAIL", cs.name, dname,
                  lname, err, tol, st.ok ? sup.kernel_name.c_str() : st.message.c_str());
    }

    // Two-stage epilogue over the exact z (rounded to dtype).
    std::vector<uint8_t> z_dev(out_elems * es);
    size_t HW = size_t(p.H_out()) * p.W_out();
    for (int n = 0; n < p.N; ++n)
      for (int c = 0; c < p.Cout; ++c)
        for (size_t hw = 0; hw < HW; ++hw) {
          size_t i = (size_t(n) * p.Cout + c) * HW + hw;
          store(z_dev, dtype, layout == Layout::kNCHW ? i : (size_t(n) * HW + hw) * p.Cout + c, z[i]);
        }
    // Out of place into the poisoned y (exact-size allocations, so memcheck sees a read or write
    // past either end), then in place, which the API allows and the NCHW kernels choose differently.
    for (bool in_place : {false, true}) {
      CHECK_CUDA(cudaMemcpy(d_z.ptr, z_dev.data(), z_dev.size(), cudaMemcpyHostToDevice));
      CHECK_CUDA(cudaMemset(d_y.ptr, 0xFF, out_elems * es));
      void* dst = in_place ? d_z.ptr : d_y.ptr;
      fct::Status st = fct::softmax_epilogue(dtype, layout, p.N, p.Cout, int64_t(HW), d_z.ptr,
                                             static_cast<float*>(d_cb.ptr), static_cast<float*>(d_b.ptr), float(s),
                                             dst, nullptr);
      CHECK_CUDA(cudaDeviceSynchronize());
      CHECK_CUDA(cudaMemcpy(out.data(), dst, out.size(), cudaMemcpyDeviceToHost));
      double err = st.ok ? max_error(p, layout, out, ref) : INFINITY;
      bool ok = err <= tol;
      failures += !ok;
      ++checks;
      std::printf("%s %-28s %s %s two_stage%s max_abs_err=%.3g (tol %.1g) %s\n", ok ? "PASS" : "FAIL", cs.name,
                  dname, lname, in_place ? "_in_place" : "", err, tol, st.message.c_str());
    }
  }
  return failures;
}

}  // namespace

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("SKIP: no CUDA device available\n");
    return 77;
  }
  Case const cases[] = {
      {"k4s2p1op1_cin16_cout32", 2, 16, 8, 8, 32, 4, 2, 1, 1},
      {"odd_cin5_cout7_9x11", 1, 5, 9, 11, 7, 3, 2, 1, 1},
      {"stride1_cout100", 2, 8, 7, 5, 100, 3, 1, 1, 0},
      {"k_lt_s_k2s3_cout200", 1, 3, 6, 6, 200, 2, 3, 0, 0},
      {"pad_ge_k_k3s2p3_cout64", 2, 24, 7, 6, 64, 3, 2, 3, 1},
      {"cout256_k4s2p1", 1, 32, 5, 5, 256, 4, 2, 1, 0},
  };
  std::mt19937 rng(20261127);
  int failures = 0, total = 0;
  for (Case const& cs : cases)
    for (DType dt : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
      failures += run_case(cs, dt, rng, total);
    }
  std::printf("%d passed, %d failed\n", total - failures, failures);
  return failures ? 1 : 0;
}
