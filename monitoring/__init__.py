"""Production monitoring: serving traffic compared with the training baseline."""
