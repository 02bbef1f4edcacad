"""MMEngine-style runner configs: load (``_base_``, substitutions), edit, format, build the types
they name (``types``, ``data``), map them onto Trainer arguments (``runner``, ``hooks``, ``loops``),
and migrate MMCV configs (``migrate``). Imported only when a config is used."""
