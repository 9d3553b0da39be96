"""Your own sounds: `train` (a head on YAMNet embeddings, exported as the same kind of INT8 model) and
`distill` (a compact student for smaller budgets).
"""
