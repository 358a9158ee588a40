// Tuning candidate: 128 rows per consumer warpgroup (two independent wgmma chains).
#include "fused/sm90/launch_sm90.h"

namespace fct {
FusedVariant const kSm90Bf16N128M128 = sm90::make_variant<__nv_bfloat16, 128, 128>(DType::kBFloat16);
}  // namespace fct
