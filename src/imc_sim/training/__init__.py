"""Training: the fine-tuning loop and device-aware training."""
