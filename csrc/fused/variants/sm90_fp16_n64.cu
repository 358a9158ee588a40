// One sm90 fused-kernel variant per translation unit, so they build in parallel.
#include "fused/sm90/launch_sm90.h"

namespace fct {
FusedVariant const kSm90Fp16N64 = sm90::make_variant<__half, 64>(DType::kFloat16);
}  // namespace fct
