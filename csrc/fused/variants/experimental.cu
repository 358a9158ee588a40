// Tuning candidates, compiled only with -DFCT_EXPERIMENTAL_VARIANTS=ON; selected
// by name through fused_forward_variant(). The production table is dispatch.cpp's.
#include "fused/variant.h"

#ifdef FCT_EXPERIMENTAL_VARIANTS
#include "fused/launch.h"

namespace fct {
namespace {
// 128x128 CTA, eight 64x32 warps: twice the warps per SM of the default.
using F32W8 = FusedConfig<float, 128, CustomTiles<128, 128, 32, 64, 32, 3, 8>>;
using B16W8 = FusedConfig<cutlass::bfloat16_t, 128, CustomTiles<128, 128, 32, 64, 32, 3, 16>>;
// 256x128 CTA, eight 64x64 warps: half the weight re-reads per output pixel.
using F32M256 = FusedConfig<float, 128, CustomTiles<256, 128, 16, 64, 64, 4, 8>>;
using B16M256 = FusedConfig<cutlass::bfloat16_t, 128, CustomTiles<256, 128, 32, 64, 64, 3, 16>>;

FusedVariant const kF32W8 = make_variant<F32W8>(DType::kFloat32);
FusedVariant const kB16W8 = make_variant<B16W8>(DType::kBFloat16);
FusedVariant const kF32M256 = make_variant<F32M256>(DType::kFloat32);
FusedVariant const kB16M256 = make_variant<B16M256>(DType::kBFloat16);
FusedVariant const* const kList[] = {&kF32W8, &kB16W8, &kF32M256, &kB16M256};
}  // namespace

VariantList experimental_variants() { return {kList, 4}; }
}  // namespace fct
#else
namespace fct {
VariantList experimental_variants() { return {nullptr, 0}; }
}  // namespace fct
#endif
