# The long mini recipe's model with the occupancy-guided stop (drivepi/models/occupancy_guided_stop.py): the
# planned trajectory is cut short before the first collision with the model's own predicted occupancy
# (moved by its predicted flow). Same checkpoint as drivepi_mini_long.py: nothing is trained.
_base_ = ['./drivepi_mini_long.py']

model = dict(plan_refiner=dict(type='OccupancyGuidedStop'))
