"""Evaluation: the ``Evaluator`` over torchmetrics or MMEngine-style metrics, and result gathering."""
