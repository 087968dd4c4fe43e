"""What the training stages share: device and precision, TrainingArguments (`settings`), Trainer
callbacks, the checkpoint to resume from, and evaluation of a PyTorch classifier."""
