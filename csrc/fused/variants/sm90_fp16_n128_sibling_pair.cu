// One sm90 fused-kernel variant per translation unit, so they build in parallel.
#include "fused/sm90/launch_sm90.h"

namespace fct {
FusedVariant const kSm90Fp16N128SiblingPair = sm90::make_variant<__half, 128, true>(DType::kFloat16);
}  // namespace fct
