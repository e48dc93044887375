"""Pages that show Fairway's artifacts: the statistics view (views.stats), used by `fairway
stats` and `fairway report`, and later by the monitor's page and the model card.

Layer: between `monitoring | data` and `pipeline`; imports only `pipeline` (and lower).
"""
