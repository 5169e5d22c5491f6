"""Evaluation harness: reference metrics (PSNR / SSIM / LPIPS), benchmarks and leaderboards."""
