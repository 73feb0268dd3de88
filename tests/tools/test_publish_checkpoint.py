"""tools/publish_checkpoint.py: weights and meta kept, optimizer dropped, SHA-256 prefix in the name."""
import hashlib
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'tools'))
from publish_checkpoint import publish  # noqa: E402


def test_publish_strips_training_state_and_names_the_digest(tmp_path):
    weights = {'heads.occ.decoder.out_conv.weight': torch.randn(4, 3), 'plan_queries': torch.randn(6, 8)}
    torch.save(dict(state_dict=weights, optimizer={'state': {0: torch.randn(1000)}}, message_hub={'x': 1},
                    meta=dict(iter=4000, seed=0, cfg='model = dict()', hook_msgs={'last_ckpt': 'a'},
                              model_signature=dict(num_tensors=2))),
               tmp_path / 'iter_4000.pth')
    final = publish(tmp_path / 'iter_4000.pth', tmp_path / 'release' / 'drivepi_mini_long.pth')
    digest = hashlib.sha256(final.read_bytes()).hexdigest()[:8]
    assert final.name == f'drivepi_mini_long-{digest}.pth'
    assert not (tmp_path / 'release' / 'drivepi_mini_long.pth').exists()
    published = torch.load(final, weights_only=True)  # tensors and plain data only
    assert set(published) == {'state_dict', 'meta'}
    assert published['meta'] == dict(iter=4000, seed=0, cfg='model = dict()', model_signature=dict(num_tensors=2))
    for key, value in weights.items():
        assert torch.equal(published['state_dict'][key], value)
    assert final.stat().st_size < (tmp_path / 'iter_4000.pth').stat().st_size


def test_publish_refuses_a_file_that_is_not_a_checkpoint(tmp_path):
    torch.save({'weights': torch.zeros(1)}, tmp_path / 'x.pth')
    with pytest.raises(ValueError, match='x.pth: not an MMEngine checkpoint'):
        publish(tmp_path / 'x.pth', tmp_path / 'y.pth')
    (tmp_path / 'z.pth').write_bytes(b'')
    with pytest.raises(ValueError, match='z.pth is empty'):
        publish(tmp_path / 'z.pth', tmp_path / 'y.pth')
