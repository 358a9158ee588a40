// One fused-kernel variant per translation unit, so they build in parallel.
#include "fused/launch.h"

namespace fct {
FusedVariant const kFusedFp16N64 = make_variant<FusedConfig<cutlass::half_t, 64>>(DType::kFloat16);
}  // namespace fct
