"""Training and evaluation data made by a teacher model from a spec.

The spec (spec.py) says what to make; the plan (plan.py) turns it into numbered slots, one per
example, each with its own seed; the teacher (teacher.py) is asked for one conversation per
slot with structured output and its answer parsed with pydantic; acceptance (acceptance.py)
runs each example through the validator's own rules and near-duplicate normaliser; the
generator (generator.py) keeps a bounded number of requests in flight and regenerates what was
refused until the counts are met; the report (report.py) says how diverse the result is.
Pure domain: the chat port and where accepted examples go are handed in.
"""
