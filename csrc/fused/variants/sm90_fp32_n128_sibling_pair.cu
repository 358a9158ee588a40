// One sm90 fused-kernel variant per translation unit, so they build in parallel.
#include "fused/sm90/launch_sm90.h"

namespace fct {
FusedVariant const kSm90Fp32N128SiblingPair = sm90::make_variant<float, 128, true>(DType::kFloat32);
}  // namespace fct
