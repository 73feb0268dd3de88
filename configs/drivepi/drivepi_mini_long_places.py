# The long mini recipe with place tokens (issue 15, docs/recipes.md "Round 4"): a place that a question names
# (x = 12.2 m, y = -3.4 m) gets the scene token of its BEV cell added to its text tokens (Ferret-style
# referring), and every answer weighs the same in the text loss (loss_average='answer'; a 60-token trajectory
# no longer outweighs thirty yes/no answers). Same data, LLM and schedule as drivepi_mini_long.py:
#     python tools/train.py configs/drivepi/drivepi_mini_long_places.py --work-dir work_dirs/mini_long_places
_base_ = ['./drivepi_mini_long.py']

model = dict(place_tokens=True, llm=dict(loss_average='answer'))
