"""Place tokens: places named in questions are found again in the token ids and get the scene token of
their BEV cell."""
import math

import pytest
import torch
from transformers import AutoTokenizer

from drivepi.evaluation.qa_accuracy import find_places, format_place
from drivepi.models.ada3d.token_filter import gather_tokens
from drivepi.models.llm.prompt import DrivePIPrompt
from drivepi.models.llm.spatial_position import place_cells, token_cell_centers
from drivepi.registry import MODELS

OCC_RANGE = [-40.0, -40.0, -1.0, 40.0, 40.0, 5.4]
QUESTION = 'Is the car at x = 17.6 m, y = -28.7 m moving, and is x = -0.0 m, y = 3.0 m free?'


def test_format_and_find_places_round_trip():
    text = f'at {format_place(12.26, -3.44)} and {format_place(-0.01, 40.0)}.'
    assert text == 'at x = 12.3 m, y = -3.4 m and x = 0.0 m, y = 40.0 m.'
    found = find_places(text)
    assert [(x, y) for _, _, x, y in found] == [(12.3, -3.4), (0.0, 40.0)]
    assert [text[start:end] for start, end, _, _ in found] == ['x = 12.3 m, y = -3.4 m', 'x = 0.0 m, y = 40.0 m']
    assert find_places('x = 12 m') == [] and find_places('no place here') == []


@pytest.fixture(scope='module')
def prompt(tiny_llm_dir):
    return DrivePIPrompt(AutoTokenizer.from_pretrained(tiny_llm_dir))


def test_token_places_mark_exactly_the_tokens_of_each_place(prompt):
    ids = prompt.question_ids(QUESTION)
    places = prompt.token_places(ids)
    assert places.shape == (len(ids), 2)
    pieces = [prompt.tokenizer.decode([i]) for i in ids]
    marked = [(''.join(p for p, xy in zip(pieces, places) if xy[0] == x), x, y) for x, y in [(17.6, -28.7), (0.0, 3.0)]]
    assert [text.strip() for text, _, _ in marked] == ['x = 17.6 m, y = -28.7 m', 'x = -0.0 m, y = 3.0 m']
    assert all(torch.isclose(places[places[:, 0] == x][:, 1], torch.tensor(y)).all() for _, x, y in marked)
    unmarked = ''.join(p for p, xy in zip(pieces, places) if math.isnan(xy[0]))
    assert 'Is the car at' in unmarked and 'moving, and is' in unmarked and '17' not in unmarked


def test_places_of_padded_batch_rows(prompt):
    turn = dict(question=f'What is at {format_place(5.0, -2.0)}?', answer='car')
    batch = prompt.batch([0, 1], 3, 2, [[[turn]], []])
    places = torch.stack([prompt.token_places(row.tolist()) for row in batch.input_ids])
    assert places.shape == batch.input_ids.shape + (2,)
    row0 = places[0][~places[0, :, 0].isnan()]
    assert len(row0) > 0 and (row0 == torch.tensor([5.0, -2.0])).all()
    assert places[1].isnan().all()  # no questions, padding: no place


def test_place_cells_invert_the_cell_centres():
    positions = torch.arange(50 * 50)[None]
    centres = token_cell_centers(positions, (50, 50), OCC_RANGE)
    cells, valid = place_cells(centres + 0.7, (50, 50), OCC_RANGE)  # anywhere inside the 1.6 m cell
    assert valid.all() and torch.equal(cells, positions)
    # x = 17.6 -> ix = floor(57.6 / 1.6) = 36; y = -28.7 -> iy = floor(11.3 / 1.6) = 7
    cells, valid = place_cells(torch.tensor([[17.6, -28.7], [40.0, 0.0], [-41.0, 0.0], [math.nan, math.nan]]),
                               (50, 50), OCC_RANGE)
    assert cells[0] == 36 * 50 + 7 and valid.tolist() == [True, False, False, False]


def test_model_adds_the_scene_token_of_the_cell_to_the_place_tokens_only(mini_cfg):
    torch.manual_seed(0)
    model = MODELS.build(dict(mini_cfg, place_tokens=True))
    model.init_weights()
    bev = torch.randn(1, model.fuser.out_channels, 50, 50)
    ids = model.prompt.question_ids(QUESTION)
    places = model.prompt.token_places(ids)[None]
    embeds = model.llm.embed_ids(ids)[None]
    with torch.no_grad():
        out = model._add_place_tokens(embeds, torch.tensor([ids]), bev) - embeds
        cell = torch.tensor([[36 * 50 + 7]])
        expected = model.projector(bev[:, :, 36, 7][:, None]) + model.spatial_position(cell, (50, 50))
    first = places[0, :, 0] == 17.6
    torch.testing.assert_close(out[0, first], expected[0].expand(int(first.sum()), -1))
    second = places[0, :, 0] == 0.0
    assert not torch.equal(out[0, second][0], out[0, first][0])  # another cell, another token
    assert (out[0, places[0, :, 0].isnan()] == 0).all()
    torch.testing.assert_close(gather_tokens(bev, cell)[0, 0], bev[0, :, 36, 7])
    model.blind_spatial_tokens = True
    with torch.no_grad():
        blind = model._add_place_tokens(embeds, torch.tensor([ids]), bev)
        assert (blind == embeds).all()  # the blind pass hides them too


def test_place_tokens_need_the_position_embedding(mini_cfg):
    with pytest.raises(ValueError, match='place_tokens needs a spatial_position'):
        MODELS.build(dict(mini_cfg, place_tokens=True, spatial_position=None))
