"""Side-by-side benchmark of fused_convt_full against its contenders (run ``python -m fused_convt_full.bench``)."""
