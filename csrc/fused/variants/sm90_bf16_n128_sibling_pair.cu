// One sm90 fused-kernel variant per translation unit, so they build in parallel.
#include "fused/sm90/launch_sm90.h"

namespace fct {
FusedVariant const kSm90Bf16N128SiblingPair = sm90::make_variant<__nv_bfloat16, 128, true>(DType::kBFloat16);
}  // namespace fct
