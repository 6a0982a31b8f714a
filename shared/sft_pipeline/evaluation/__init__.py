"""Held-out evaluation of a fine-tune against its base model, a few-shot prompt and the
alias's current version: the examples, the graders, the statistics, the promotion gate
and the inference prices. Pure functions and models: no AWS, no provider SDK, no I/O.
"""
