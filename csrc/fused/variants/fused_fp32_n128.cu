// One fused-kernel variant per translation unit, so they build in parallel.
#include "fused/launch.h"

namespace fct {
FusedVariant const kFusedFp32N128 = make_variant<FusedConfig<float, 128>>(DType::kFloat32);
}  // namespace fct
