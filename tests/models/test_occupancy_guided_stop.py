"""OccupancyGuidedStop: hand-made occupancy grids with known stopping points."""
import pytest
import torch
from mmdet3d.structures import Det3DDataSample

from drivepi.geometry import (
    EGO_LENGTH,
    EGO_REAR_AXLE_TO_CENTER,
    FREE_INDEX,
    OCC_GRID,
    OCC_RANGE,
    OCC_VOXEL_SIZE,
    OPENOCC_CLASSES,
)
from drivepi.models import OccupancyGuidedStop
from drivepi.models.occupancy_guided_stop import Obstacles

CAR, ROAD = OPENOCC_CLASSES.index('car'), OPENOCC_CLASSES.index('driveable_surface')
STRAIGHT = torch.tensor([[5.0 * (k + 1), 0.0] for k in range(6)])  # 10 m/s, waypoints every 0.5 s


def cell(x: float, y: float):
    """Grid index (ix, iy) of the cell whose lower corner is (x, y), m (a multiple of the voxel size)."""
    return round((x - OCC_RANGE[0]) / OCC_VOXEL_SIZE), round((y - OCC_RANGE[1]) / OCC_VOXEL_SIZE)


def grid_with_block(label: int, x0: float, x1: float, y0: float, y1: float, z_cells=slice(3, 7)) -> torch.Tensor:
    """(X, Y, Z) labels: free everywhere, ``label`` in the cells of [x0, x1) x [y0, y1) at heights ``z_cells``
    (default: centres 0.4-1.6 m, a car on the ground)."""
    occ = torch.full(OCC_GRID, FREE_INDEX, dtype=torch.uint8)
    (ix0, iy0), (ix1, iy1) = cell(x0, y0), cell(x1, y1)
    occ[ix0:ix1, iy0:iy1, z_cells] = label
    return occ


def test_free_space_keeps_the_plan():
    occ = torch.full(OCC_GRID, FREE_INDEX, dtype=torch.uint8)
    assert torch.equal(OccupancyGuidedStop()(STRAIGHT, occ), STRAIGHT)


def test_stopped_car_ahead_stops_the_ego_before_it():
    """A car whose rear is at x = 20 m. The footprint's front is ``1.385 + 4.084 / 2 + 0.5`` m ahead of the rear
    axle, so the first path sample (every 1 m) that reaches the first cell centre (20.2 m) is at 17 m; the rear
    axle stops ``stop_distance`` = 1 m before it, at 16 m, braking at once from the plan's 10 m/s with the
    constant deceleration that ends there: 10^2 / (2 x 16) = 3.125 m/s^2."""
    occ = grid_with_block(CAR, 20.0, 24.0, -1.0, 1.0)
    front = EGO_REAR_AXLE_TO_CENTER + EGO_LENGTH / 2 + 0.5
    first_hit = float(torch.ceil(torch.tensor(20.2 - front)))
    assert first_hit == 17.0
    out = OccupancyGuidedStop()(STRAIGHT, occ)
    s_stop, decel = first_hit - 1.0, 3.125
    expected = [min(10.0 * t - decel * t * t / 2, s_stop) if t < 10.0 / decel else s_stop
                for t in [0.5 * k for k in range(1, 7)]]
    torch.testing.assert_close(out, torch.tensor([[x, 0.0] for x in expected]))
    assert (out[1:, 0] - out[:-1, 0]).min() >= 0 and out[-1, 0] < 16.0 + 1e-6  # never backwards, stops in time


def test_flow_moves_the_obstacle():
    """The same car driving away at the ego's speed never comes closer: with its flow the plan is kept,
    without flow (or with use_flow=False) the ego stops behind it."""
    occ = grid_with_block(CAR, 20.0, 24.0, -1.0, 1.0)
    flow = torch.zeros(OCC_GRID + (2,))
    flow[occ == CAR] = torch.tensor([10.0, 0.0])
    assert torch.equal(OccupancyGuidedStop()(STRAIGHT, occ, flow), STRAIGHT)
    assert OccupancyGuidedStop(use_flow=False)(STRAIGHT, occ, flow)[-1, 0] <= 16.0


def test_curved_path_uses_the_heading_along_the_path():
    """A left turn ending heading +y; a car beside the straight-ahead line but on the curve blocks it, and the
    stopped waypoints stay on the original path."""
    angles = torch.linspace(0.25, 1.5, 6) * (torch.pi / 2) / 1.5
    radius = 15.0
    turn = torch.stack([radius * angles.sin(), radius * (1 - angles.cos())], -1)
    occ = grid_with_block(CAR, 13.0, 16.0, 10.0, 13.0)  # on the arc near its end, far left of the x axis
    out = OccupancyGuidedStop()(turn, occ)
    assert not torch.equal(out, turn) and (out - turn).norm(dim=-1)[-1] > 3.0  # it stops well before the end
    radii = ((out[:, 0]) ** 2 + (out[:, 1] - radius) ** 2).sqrt()  # still on the circle (chords: slightly inside)
    assert (radii <= radius + 1e-4).all() and (radii > radius - 0.3).all()
    assert torch.equal(OccupancyGuidedStop()(STRAIGHT, occ), STRAIGHT)  # the straight path never meets that car


SIDEWALK = OPENOCC_CLASSES.index('sidewalk')


def parked_car_grid(sidewalk_left_of: float = None) -> torch.Tensor:
    """A car parked from x = 20 to 24 m whose cells reach y = 0 (centres up to -0.2 m), into the straight path's
    footprint (its right edge is at y = -0.925 m), road under everything, and optionally sidewalk on the ground
    left of ``sidewalk_left_of`` m."""
    occ = grid_with_block(CAR, 20.0, 24.0, -2.0, 0.0)
    occ[:, :, 1] = ROAD
    if sidewalk_left_of is not None:
        occ[:, cell(0.0, sidewalk_left_of)[1]:, 1] = SIDEWALK
    return occ


def test_swerves_onto_the_first_free_offset_path():
    """Offsets (0.5, -0.5, 1.0): +0.5 m still touches the car (footprint right edge -0.425 m vs its cell centres
    up to -0.2 m), -0.5 m hits it harder, +1.0 m clears it (edge at +0.075 m). The plan keeps its progress and
    moves 1.0 m left, eased in with a half-cosine over 10 m of path: 0.5 m at x = 5 m, the full metre from
    10 m on."""
    guided = OccupancyGuidedStop(lateral_offsets=(0.5, -0.5, 1.0))
    out = guided(STRAIGHT, parked_car_grid())
    torch.testing.assert_close(out, torch.tensor([[5.0, 0.5]] + [[5.0 * (k + 1), 1.0] for k in range(1, 6)]))
    assert OccupancyGuidedStop()(STRAIGHT, parked_car_grid())[-1, 0] < 20.0  # without offsets it brakes


def test_a_wide_shift_is_checked_against_cells_far_from_the_planned_path():
    """A 6 m shift left runs into a second car parked at y = 5.2-7.2 m, out of reach of the planned path (its
    footprint centres' box grown by half length + half width: |y| <= ~4.4 m) but across the shifted one: the
    shift must see it and brake; with the lane at 6 m free, it shifts."""
    blocked = parked_car_grid()
    blocked[cell(14.0, 5.2)[0]:cell(30.0, 7.2)[0], cell(14.0, 5.2)[1]:cell(30.0, 7.2)[1], 3:7] = CAR
    guided = OccupancyGuidedStop(lateral_offsets=(6.0,))
    assert guided(STRAIGHT, parked_car_grid())[-1, 1] == pytest.approx(6.0)
    torch.testing.assert_close(guided(STRAIGHT, blocked), OccupancyGuidedStop()(STRAIGHT, blocked))


def test_does_not_swerve_off_the_road():
    """Sidewalk left of y = 0.8 m: the 1 m shift would put the ego's centre over it, so the plan brakes instead
    (the same waypoints as without offsets)."""
    occ = parked_car_grid(sidewalk_left_of=0.8)
    out = OccupancyGuidedStop(lateral_offsets=(1.0,))(STRAIGHT, occ)
    torch.testing.assert_close(out, OccupancyGuidedStop()(STRAIGHT, occ))
    assert out[-1, 0] < 20.0


@pytest.mark.parametrize('case', ['ground', 'below_ground', 'beside', 'under_the_ego_now', 'too_high', 'single_cell'])
def test_what_does_not_block(case):
    occ = dict(
        ground=grid_with_block(ROAD, 20.0, 24.0, -1.0, 1.0),
        below_ground=grid_with_block(CAR, 20.0, 24.0, -1.0, 1.0, z_cells=slice(0, 3)),  # centres -0.8..0.0 m
        beside=grid_with_block(CAR, 10.0, 14.0, 1.2, 3.0),  # footprint half-width 0.925 m, no lateral margin
        under_the_ego_now=grid_with_block(CAR, 0.0, 2.0, -0.4, 0.4),
        too_high=grid_with_block(CAR, 20.0, 24.0, -1.0, 1.0, z_cells=slice(9, 12)),  # z 2.6-3.8 m: a bridge
        single_cell=grid_with_block(CAR, 20.0, 20.4, 0.0, 0.4),  # min_cells=2: one stray voxel is noise
    )[case]
    assert torch.equal(OccupancyGuidedStop()(STRAIGHT, occ), STRAIGHT)


def test_invalid_settings_are_rejected():
    with pytest.raises(ValueError, match='dt must be positive'):
        OccupancyGuidedStop(dt=0.0)


PEDESTRIAN = OPENOCC_CLASSES.index('pedestrian')
# a mode 1.5 m left of the straight one from its second waypoint: clear of the parked car of parked_car_grid
LEFT = STRAIGHT + torch.tensor([[0.0, 0.5]] + [[0.0, 1.5]] * 5)


def test_does_not_swerve_around_a_pedestrian():
    """Vulnerable road users move unpredictably: around a pedestrian the plan brakes, offsets or not."""
    occ = grid_with_block(PEDESTRIAN, 20.0, 24.0, -2.0, 0.0)
    occ[:, :, 1] = ROAD
    out = OccupancyGuidedStop(lateral_offsets=(1.0,))(STRAIGHT, occ)
    torch.testing.assert_close(out, OccupancyGuidedStop()(STRAIGHT, occ))
    assert out[-1, 0] < 20.0
    swerved = OccupancyGuidedStop(lateral_offsets=(1.0,), swerve_static_only=False)(STRAIGHT, occ)
    assert swerved[-1, 1] == 1.0


def test_selection_prefers_a_free_mode_over_a_higher_scored_colliding_one():
    """The straight mode (probability 0.7) runs into the parked car, the left mode (0.3) passes it. Costs: the
    straight one is braked and pays the collision weight, -log 0.7 + 5 - 0.1 * its braked progress; the left
    one -log 0.3 - 0.1 * its full progress: the left mode is chosen (without a progress term too). Without
    mode selection the best-scoring mode is braked."""
    occ = parked_car_grid()
    modes, probs = torch.stack([STRAIGHT, LEFT]), torch.tensor([0.7, 0.3])
    guided = OccupancyGuidedStop()
    selection = guided.select(modes, probs, occ)
    braked = guided(STRAIGHT, occ)
    assert selection['modes'].tolist() == [0, 1] and selection['choice'] == 1
    torch.testing.assert_close(selection['candidates'], torch.stack([braked, LEFT]))
    progress = torch.stack([braked, LEFT]).diff(dim=1, prepend=torch.zeros(2, 1, 2)).norm(dim=-1).sum(1)
    expected = -probs.log() + torch.tensor([5.0, 0.0]) - 0.1 * progress
    torch.testing.assert_close(selection['costs'], expected)
    assert OccupancyGuidedStop(progress_weight=0.0).select(modes, probs, occ)['choice'] == 1
    sample = Det3DDataSample()
    sample.pred_traj, sample.pred_traj_modes, sample.pred_traj_scores, sample.pred_occ = STRAIGHT, modes, probs, occ
    guided.refine(sample)
    assert torch.equal(sample.pred_traj, LEFT) and sample.pred_traj_candidates.shape == (2, 6, 2)
    sample.pred_traj = STRAIGHT
    OccupancyGuidedStop(select_modes=False).refine(sample)
    torch.testing.assert_close(sample.pred_traj, braked)


def test_selection_among_free_modes_goes_by_score_and_off_road_penalty():
    occ = torch.full(OCC_GRID, FREE_INDEX, dtype=torch.uint8)
    modes = torch.stack([STRAIGHT, LEFT])
    assert OccupancyGuidedStop().select(modes, torch.tensor([0.2, 0.8]), occ)['choice'] == 1
    occ[:, cell(0.0, 1.2)[1]:, 1] = SIDEWALK  # the left mode's centre over sidewalk from x ~ 4 m on
    assert OccupancyGuidedStop().select(modes, torch.tensor([0.2, 0.8]), occ)['choice'] == 0
    selection = OccupancyGuidedStop(lateral_offsets=(1.0,)).select(modes[:1], torch.ones(1), parked_car_grid())
    assert selection['modes'].tolist() == [0, 0] and selection['choice'] == 0  # swerving beats braking here
    assert selection['candidates'][0, -1, 1] == 1.0


def test_obstacle_columns_equal_a_column_by_column_count():
    """Centres, velocities and the dynamic flag against a loop over the columns of a random grid: only layers whose
    centre lies in the height band count, a column's velocity is the mean flow of its obstacle voxels there."""
    gen = torch.Generator().manual_seed(0)
    classes = torch.tensor([FREE_INDEX, ROAD, CAR, OPENOCC_CLASSES.index('pedestrian')])
    occ = torch.full(OCC_GRID, FREE_INDEX, dtype=torch.uint8)
    occ[90:110, 90:110] = classes[torch.randint(0, 4, (20, 20, OCC_GRID[2]), generator=gen)].to(torch.uint8)
    flow = torch.randn(OCC_GRID + (2,), generator=gen)
    stop = OccupancyGuidedStop(z_range=(0.2, 2.0), static_speed=0.5)
    found = stop.obstacles(occ, flow)
    z_centres = [OCC_RANGE[2] + (k + 0.5) * OCC_VOXEL_SIZE for k in range(OCC_GRID[2])]
    band = [k for k, z in enumerate(z_centres) if 0.2 <= z <= 2.0]
    assert band == [3, 4, 5, 6, 7]  # centres 0.4-2.0 m
    expected = []
    for ix in range(90, 110):
        for iy in range(90, 110):
            layers = [k for k in band if int(occ[ix, iy, k]) in stop.obstacle_classes]
            if layers:
                velocity = flow[ix, iy, layers].mean(0)
                walking = any(int(occ[ix, iy, k]) == classes[3] for k in band)
                expected.append((OCC_RANGE[0] + (ix + 0.5) * OCC_VOXEL_SIZE, OCC_RANGE[1] + (iy + 0.5) * OCC_VOXEL_SIZE,
                                 velocity, walking or float(velocity.norm()) > 0.5))
    assert len(found.centres) == len(expected) > 100
    assert torch.allclose(found.centres, torch.tensor([e[:2] for e in expected]))
    assert torch.allclose(found.velocities, torch.stack([e[2] for e in expected]), atol=1e-6)
    assert found.dynamic.tolist() == [e[3] for e in expected]


def test_cells_out_of_reach_are_dropped_without_changing_a_hit():
    """The pre-filter of ``first_hits`` against every cell: random obstacle cells all over the grid, moving with
    random velocities, and paths that turn and one that stands: the first hits equal those counted over all cells
    (the filter only drops cells that no footprint reaches), and most cells are dropped."""
    gen = torch.Generator().manual_seed(0)
    stop = OccupancyGuidedStop(min_cells=1)
    obstacles = Obstacles(torch.rand(300, 2, generator=gen) * 80 - 40, torch.randn(300, 2, generator=gen),
                          torch.zeros(300, dtype=torch.bool))
    k = torch.arange(1, 7, dtype=torch.float32)
    trajs = torch.stack([torch.stack([4.0 * k * torch.cos(a * k / 6), 4.0 * k * torch.sin(a * k / 6)], -1)
                         for a in torch.linspace(-0.6, 0.6, 9)] + [torch.zeros(6, 2)])
    paths, times = stop.sample_paths(trajs)
    near = stop.within_reach(paths, times, obstacles)
    assert 0 < len(near.centres) < 0.5 * len(obstacles.centres)
    every_cell = stop.footprint_cells(paths, times, obstacles).sum(-1) >= stop.min_cells
    expected = torch.where(every_cell.any(1), every_cell.float().argmax(1), paths.shape[1])
    hits = stop.first_hits(paths, times, obstacles)
    assert torch.equal(hits, expected) and len(set(hits.tolist())) >= 5  # hits at many samples, and none
