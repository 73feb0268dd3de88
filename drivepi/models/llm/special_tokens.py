"""Special tokens of the DrivePI prompt (Qwen chat tokens plus DrivePI's placeholders).

``<|spatial|>`` and ``<|plan|>`` are placeholders: their input embeddings are replaced by the
projected BEV tokens and the learned planning queries, so their embedding rows are never read
and a frozen real Qwen2 checkpoint needs no new trained rows.
"""
ENDOFTEXT = '<|endoftext|>'
IM_START = '<|im_start|>'
IM_END = '<|im_end|>'
SPATIAL_TOKEN = '<|spatial|>'
PLAN_TOKEN = '<|plan|>'

QWEN_SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END)
DRIVEPI_SPECIAL_TOKENS = (SPATIAL_TOKEN, PLAN_TOKEN)
