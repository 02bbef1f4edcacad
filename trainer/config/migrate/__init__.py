"""Migration of MMCV runner configs (``mmcv``) and their ``lr_config`` schedules (``schedule``)."""
