// One fused-kernel variant per translation unit, so they build in parallel.
#include "fused/launch.h"

namespace fct {
FusedVariant const kFusedBf16N128 = make_variant<FusedConfig<cutlass::bfloat16_t, 128>>(DType::kBFloat16);
}  // namespace fct
