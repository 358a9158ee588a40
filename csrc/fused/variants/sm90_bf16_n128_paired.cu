// One sm90 fused-kernel variant per translation unit, so they build in parallel.
#include "fused/sm90/launch_sm90.h"

namespace fct {
FusedVariant const kSm90Bf16N128Paired = sm90::make_variant<__nv_bfloat16, 128, 2, 1>(DType::kBFloat16);
}  // namespace fct
