"""Compatibility with code written for MMEngine: ``trainer.compat.mmengine`` is the import table.

``trainer.compat.runner`` adds to the ``Trainer`` the attributes MMEngine's ``Runner`` offers a
hook (``logger``, ``cfg``, ``experiment_name``, ...).
"""
