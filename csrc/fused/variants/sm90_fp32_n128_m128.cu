// Tuning candidate: 128 rows per consumer warpgroup (two independent wgmma chains).
#include "fused/sm90/launch_sm90.h"

namespace fct {
FusedVariant const kSm90Fp32N128M128 = sm90::make_variant<float, 128, 128>(DType::kFloat32);
}  // namespace fct
