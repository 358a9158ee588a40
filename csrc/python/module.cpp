// pybind11 bindings: the native API as `fused_convt_full._C`. Pointers and
// streams cross as Python ints so the module never links libtorch; every call
// drops the GIL and turns a Status into RuntimeError.
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "fused_convt_full/api.h"

namespace py = pybind11;

namespace {

template <typename T>
T* as_ptr(std::uintptr_t v) {
  return reinterpret_cast<T*>(v);
}

void raise_if_error(fct::Status const& st) {
  if (!st.ok) throw std::runtime_error("fused_convt_full: " + st.message);
}

std::vector<int> compiled_archs() {
  std::vector<int> out;
  std::stringstream ss(FCT_CUDA_ARCHS);
  std::string item;
  while (std::getline(ss, item, ';')) {
    std::string digits;
    for (char c : item)
      if (c >= '0' && c <= '9') digits += c;
      else if (!digits.empty()) break;
    if (!digits.empty()) out.push_back(std::stoi(digits));
  }
  return out;
}

using EpilogueFn = fct::Status (*)(fct::DType, fct::Layout, int64_t, int64_t, int64_t, void const*, float const*,
                                   float const*, float, void*, cudaStream_t);

void run_epilogue(EpilogueFn fn, fct::DType dtype, fct::Layout layout, int64_t N, int64_t C, int64_t HW,
                  std::uintptr_t z, std::uintptr_t conv_b, std::uintptr_t b, float s, std::uintptr_t y,
                  std::uintptr_t stream) {
  fct::Status st;
  {
    py::gil_scoped_release release;
    st = fn(dtype, layout, N, C, HW, as_ptr<void const>(z), as_ptr<float const>(conv_b), as_ptr<float const>(b), s,
            as_ptr<void>(y), as_ptr<CUstream_st>(stream));
  }
  raise_if_error(st);
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "fused_convt_full native core: fused CUTLASS transposed conv + channel-softmax epilogue";

  py::enum_<fct::DType>(m, "DType")
      .value("float32", fct::DType::kFloat32)
      .value("float16", fct::DType::kFloat16)
      .value("bfloat16", fct::DType::kBFloat16);
  py::enum_<fct::Layout>(m, "Layout").value("nchw", fct::Layout::kNCHW).value("nhwc", fct::Layout::kNHWC);
  py::enum_<fct::Math>(m, "Math").value("tf32", fct::Math::kTF32).value("fp32_strict", fct::Math::kFP32Strict);

  py::class_<fct::ConvTransposeProblem>(m, "Problem")
      .def(py::init<>())
      .def_readwrite("N", &fct::ConvTransposeProblem::N)
      .def_readwrite("H", &fct::ConvTransposeProblem::H)
      .def_readwrite("W", &fct::ConvTransposeProblem::W)
      .def_readwrite("Cin", &fct::ConvTransposeProblem::Cin)
      .def_readwrite("Cout", &fct::ConvTransposeProblem::Cout)
      .def_readwrite("kH", &fct::ConvTransposeProblem::kH)
      .def_readwrite("kW", &fct::ConvTransposeProblem::kW)
      .def_readwrite("stride_h", &fct::ConvTransposeProblem::stride_h)
      .def_readwrite("stride_w", &fct::ConvTransposeProblem::stride_w)
      .def_readwrite("pad_h", &fct::ConvTransposeProblem::pad_h)
      .def_readwrite("pad_w", &fct::ConvTransposeProblem::pad_w)
      .def_readwrite("out_pad_h", &fct::ConvTransposeProblem::out_pad_h)
      .def_readwrite("out_pad_w", &fct::ConvTransposeProblem::out_pad_w)
      .def_readwrite("dil_h", &fct::ConvTransposeProblem::dil_h)
      .def_readwrite("dil_w", &fct::ConvTransposeProblem::dil_w)
      .def_readwrite("dtype", &fct::ConvTransposeProblem::dtype)
      .def_readwrite("out_layout", &fct::ConvTransposeProblem::out_layout)
      .def_readwrite("math", &fct::ConvTransposeProblem::math)
      .def("H_out", &fct::ConvTransposeProblem::H_out)
      .def("W_out", &fct::ConvTransposeProblem::W_out)
      .def("__repr__", [](fct::ConvTransposeProblem const& p) {
        std::ostringstream o;
        o << "Problem(N=" << p.N << ", Cin=" << p.Cin << ", H=" << p.H << ", W=" << p.W << ", Cout=" << p.Cout
          << ", k=" << p.kH << "x" << p.kW << ", stride=" << p.stride_h << "x" << p.stride_w << ", pad=" << p.pad_h
          << "x" << p.pad_w << ", out_pad=" << p.out_pad_h << "x" << p.out_pad_w << ", dil=" << p.dil_h << "x"
          << p.dil_w << ")";
        return o.str();
      });

  m.attr("CHANNEL_ALIGNMENT") = fct::kChannelAlignment;

  m.def(
      "fused_support",
      [](fct::ConvTransposeProblem const& p) {
        fct::FusedSupport s = fct::fused_support(p);
        return std::make_tuple(s.ok, s.reason, s.kernel_name);
      },
      py::arg("problem"), "(ok, reason, kernel_name): whether the fused kernel covers this problem.");

  m.def(
      "fused_forward",
      [](fct::ConvTransposeProblem const& p, std::uintptr_t x, std::uintptr_t w_packed, std::uintptr_t conv_b,
         std::uintptr_t b, float s, std::uintptr_t y, std::uintptr_t stream) {
        fct::Status st;
        {
          py::gil_scoped_release release;
          st = fct::fused_forward(p, as_ptr<void const>(x), as_ptr<void const>(w_packed), as_ptr<float const>(conv_b),
                                  as_ptr<float const>(b), s, as_ptr<void>(y), as_ptr<CUstream_st>(stream));
        }
        raise_if_error(st);
      },
      py::arg("problem"), py::arg("x"), py::arg("w_packed"), py::arg("conv_b"), py::arg("b"), py::arg("s"),
      py::arg("y"), py::arg("stream"), "Launch the fused kernel on `stream` (device pointers as ints).");

  m.def("fused_variants", &fct::fused_variant_names, "Names of every compiled fused-kernel variant.");
  m.def(
      "fused_forward_variant",
      [](std::string const& variant, fct::ConvTransposeProblem const& p, std::uintptr_t x, std::uintptr_t w_packed,
         std::uintptr_t conv_b, std::uintptr_t b, float s, std::uintptr_t y, std::uintptr_t stream) {
        fct::Status st;
        {
          py::gil_scoped_release release;
          st = fct::fused_forward_variant(variant, p, as_ptr<void const>(x), as_ptr<void const>(w_packed),
                                          as_ptr<float const>(conv_b), as_ptr<float const>(b), s, as_ptr<void>(y),
                                          as_ptr<CUstream_st>(stream));
        }
        raise_if_error(st);
      },
      py::arg("variant"), py::arg("problem"), py::arg("x"), py::arg("w_packed"), py::arg("conv_b"), py::arg("b"),
      py::arg("s"), py::arg("y"), py::arg("stream"), "Launch a named fused variant (tuning runs).");

  m.def(
      "nchw_to_nhwc",
      [](fct::DType dtype, int64_t N, int64_t C, int64_t HW, int64_t C_pad, std::uintptr_t x, std::uintptr_t y,
         std::uintptr_t stream) {
        fct::Status st;
        {
          py::gil_scoped_release release;
          st = fct::nchw_to_nhwc(dtype, N, C, HW, C_pad, as_ptr<void const>(x), as_ptr<void>(y),
                                 as_ptr<CUstream_st>(stream));
        }
        raise_if_error(st);
      },
      py::arg("dtype"), py::arg("N"), py::arg("C"), py::arg("HW"), py::arg("C_pad"), py::arg("x"), py::arg("y"),
      py::arg("stream"), "The fused kernel's input layout from NCHW x: [N][HW][C_pad], padding zero.");

  m.def(
      "softmax_epilogue",
      [](fct::DType dtype, fct::Layout layout, int64_t N, int64_t C, int64_t HW, std::uintptr_t z,
         std::uintptr_t conv_b, std::uintptr_t b, float s, std::uintptr_t y, std::uintptr_t stream) {
        run_epilogue(&fct::softmax_epilogue, dtype, layout, N, C, HW, z, conv_b, b, s, y, stream);
      },
      py::arg("dtype"), py::arg("layout"), py::arg("N"), py::arg("C"), py::arg("HW"), py::arg("z"),
      py::arg("conv_b"), py::arg("b"), py::arg("s"), py::arg("y"), py::arg("stream"),
      "Two-stage epilogue: y = sigmoid(s * (softmax_c(z + conv_b) + b)).");

  m.def(
      "softmax_epilogue_naive",
      [](fct::DType dtype, fct::Layout layout, int64_t N, int64_t C, int64_t HW, std::uintptr_t z,
         std::uintptr_t conv_b, std::uintptr_t b, float s, std::uintptr_t y, std::uintptr_t stream) {
        run_epilogue(&fct::softmax_epilogue_naive, dtype, layout, N, C, HW, z, conv_b, b, s, y, stream);
      },
      py::arg("dtype"), py::arg("layout"), py::arg("N"), py::arg("C"), py::arg("HW"), py::arg("z"),
      py::arg("conv_b"), py::arg("b"), py::arg("s"), py::arg("y"), py::arg("stream"),
      "The naive two-stage epilogue (benchmark contender only).");

  m.def(
      "plain_dgrad_forward",
      [](fct::ConvTransposeProblem const& p, std::uintptr_t x, std::uintptr_t w_packed, std::uintptr_t y,
         std::uintptr_t stream) {
        fct::Status st;
        {
          py::gil_scoped_release release;
          st = fct::plain_dgrad_forward(p, as_ptr<void const>(x), as_ptr<void const>(w_packed), as_ptr<void>(y),
                                        as_ptr<CUstream_st>(stream));
        }
        raise_if_error(st);
      },
      py::arg("problem"), py::arg("x"), py::arg("w_packed"), py::arg("y"), py::arg("stream"),
      "Benchmark baseline: same mainloop, stock CUTLASS epilogue, raw NHWC output (Cout_padded channels).");

  m.def("compiled_archs", &compiled_archs, "SM architectures the kernels were compiled for.");
}
