// One fused-kernel variant per translation unit, so they build in parallel.
#include "fused/launch.h"

namespace fct {
FusedVariant const kFusedFp16N256 = make_variant<FusedConfig<cutlass::half_t, 256>>(DType::kFloat16);
}  // namespace fct
