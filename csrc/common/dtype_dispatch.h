// One place that maps the runtime DType to a device element type.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "fused_convt_full/api.h"

namespace fct {

template <typename Fn>
void dispatch_dtype(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::kFloat32: fn(float{}); break;
    case DType::kFloat16: fn(__half{}); break;
    case DType::kBFloat16: fn(__nv_bfloat16{}); break;
  }
}

}  // namespace fct
