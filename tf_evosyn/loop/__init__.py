"""The generational loop: Evolution and its settings, fine-tuning and distillation, the
population and selection, the run directory, its lineage and reports, strategies.
"""
