"""Decoding that changes or audits how text is produced: OPERA's over-trust penalty with retrospection,
critical-token rollouts, self-correction and extraction audits. Modules import torch only inside functions."""
