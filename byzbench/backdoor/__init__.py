"""Backdoor threat model: triggers, poisoned batches, the attack success rate."""
