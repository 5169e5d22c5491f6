"""Evaluation harness: methods, protocols, reference metrics (PSNR / SSIM / LPIPS), records and leaderboards."""
