#!/usr/bin/env bash
# Build, test and benchmark on the GPU machine in one go (no network there).
# Usage: bash scripts/gpu_job.sh [stage ...]   stages: build ctest pytest sanitize quick tune bench sweep
# Logs and results go to $OUT (default ./gpu_out). The nvidia-cutlass wheel must be in .whl/.
set -uo pipefail
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
stages=${*:-build ctest pytest sanitize bench}
ARCH=${FCT_ARCH:-90a}
export PYTHONUNBUFFERED=1 FCT_COMMIT=${FCT_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}

if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/card.txt"

for stage in $stages; do
  echo "=== $stage $(date -u +%H:%M:%S)"
  case $stage in
    build)
      python3 -m pip install -v --no-build-isolation --no-deps . \
        -C cmake.define.CMAKE_CUDA_ARCHITECTURES="$ARCH" -C build-dir=build/gpu >"$OUT/build.log" 2>&1 \
        || { tail -60 "$OUT/build.log"; exit 1; }
      grep -E "spill|error" "$OUT/build.log" | grep -v "0 bytes spill" | head -20 ;;
    ctest)
      ctest --test-dir build/gpu --timeout 120 --output-on-failure 2>&1 | tee "$OUT/ctest.log" | tail -30 ;;
    pytest)
      (cd /tmp && timeout 240 python3 -m pytest -q -p no:cacheprovider --junitxml="$OUT/pytest.xml" "$OLDPWD/tests" 2>&1) \
        | tee "$OUT/pytest.log" | grep -vE "^SKIPPED" | tail -25 ;;
    sanitize)
      # The native test binary covers six shapes (one odd-sized) x 3 dtypes x 2 layouts, fused and two-stage.
      {
        for tool in ${FCT_SANITIZERS:-memcheck racecheck}; do
          timeout 120 compute-sanitizer --tool $tool --error-exitcode 3 build/gpu/fct_native_test | tail -3
          echo "$tool fct_native_test exit: ${PIPESTATUS[0]}"
        done
        (cd /tmp && timeout 120 compute-sanitizer --tool memcheck --error-exitcode 3 python3 "$OLDPWD/scripts/sanitize_cases.py" | tail -4)
        echo "memcheck sanitize_cases.py exit: ${PIPESTATUS[0]}"
      } 2>&1 | tee "$OUT/sanitize.log" ;;
    quick)
      # Kernel-level timings (fused variants, plain epilogue, cuDNN + epilogues) on the reference problem.
      (cd /tmp && timeout 300 python3 "$OLDPWD/scripts/quick_bench.py" ${FCT_QUICK_ARGS:-float32 bfloat16}) 2>&1 | tee "$OUT/quick.log" ;;
    tune)
      inc=$(python3 -c "import cutlass_library, os; print(os.path.dirname(cutlass_library.__file__))")/source/include
      nvcc -O3 -std=c++17 --expt-relaxed-constexpr -gencode=arch=compute_${ARCH},code=sm_${ARCH} -I csrc -I csrc/include \
        -I "$inc" scripts/epilogue_tune.cu -o /tmp/epilogue_tune && /tmp/epilogue_tune | tee "$OUT/epilogue_tune.log" ;;
    bench)
      (cd /tmp && timeout 240 python3 -m fused_convt_full.bench --json "$OUT/bench_default.json" --markdown "$OUT/bench_default.md" \
        --plot "$OUT/bench_default.png" ${FCT_BENCH_ARGS:-}) 2>&1 | tee "$OUT/bench.log" | tail -30 ;;
    sweep)
      (cd /tmp && timeout 200 python3 -m fused_convt_full.bench ${FCT_SWEEP_ARGS:---sweep cout --no-compile} --json "$OUT/bench_sweep.json" \
        --markdown "$OUT/bench_sweep.md" --plot "$OUT/bench_sweep.png") 2>&1 | tee "$OUT/sweep.log" | tail -30 ;;
    *) echo "unknown stage $stage"; exit 2 ;;
  esac
done
