"""DrivePI: LiDAR + cameras + language -> text answers, occupancy, occupancy flow and ego trajectory.

One forward pass (see docs/contracts.md, Model):
points -> LiDAR BEV, images -> camera BEV, fused BEV -> token filter keeps K positions ->
projector -> Qwen2 sequence ``[instruction, K spatial tokens, Q planning queries, conversation]`` ->
hidden states at the spatial positions are projected back and scattered into the fused BEV (pruned
positions keep their pre-LLM features) -> occupancy and flow heads; hidden states of the planning
queries -> planning head; the LM head gives the text (answer-only cross-entropy in training,
greedy generation with the KV cache in ``predict``).
"""
from typing import List, Optional

import torch
from mmdet3d.models.detectors import Base3DDetector
from mmdet3d.structures import Det3DDataSample

from drivepi.models.ada3d.token_filter import scatter_tokens
from drivepi.models.llm.prompt import DrivePIPrompt
from drivepi.registry import MODELS

SampleList = List[Det3DDataSample]


@MODELS.register_module()
class DrivePI(Base3DDetector):
    """The DrivePI model, assembled from registry configs.

    Args:
        lidar_branch: LiDAR branch config (points -> BEV (B, C_l, Hb, Wb) + aux dict).
        llm: ``Qwen2LLM`` config.
        token_filter: ``BEVTokenFilter`` config (``in_channels`` filled in).
        occ_head, flow_head: dense head configs (``in_channels`` filled in).
        plan_head: planning head config (``in_channels``, ``num_queries`` filled in).
        camera_branch: camera branch config or None (LiDAR only).
        fuser: BEV fuser config, required with a camera branch.
        projector: projector config from BEV channels to the LLM hidden size (channels filled in);
            the same type maps hidden states back to BEV channels.
        spatial_position: config of the embedding of each spatial token's BEV cell centre, added to the
            projected token (``BEVPositionEmbedding``; ``out_channels`` filled in), or None.
        num_plan_queries: Q, learned query tokens whose hidden states feed the planning head.
        instruction: system text of the prompt with a ``{command}`` field (None: the default).
        max_answer_tokens: generation limit per answer in ``predict``; it must cover the longest answer
            (the dataset checks it against its QA file when given the same limit and tokenizer).
        blind_spatial_tokens: replace the spatial tokens by zeros (everything else equal): the "blind"
            pass of ``tools/test.py --blind`` that measures how much the answers depend on the scene.
        data_preprocessor: ``Det3DDataPreprocessor`` config.
    """

    def __init__(self, lidar_branch: dict, llm: dict, token_filter: dict, occ_head: dict, flow_head: dict,
                 plan_head: dict, camera_branch: Optional[dict] = None, fuser: Optional[dict] = None,
                 projector: dict = dict(type='MLPProjector'), spatial_position: Optional[dict] = None,
                 num_plan_queries: int = 6, instruction: Optional[str] = None, max_answer_tokens: int = 64,
                 blind_spatial_tokens: bool = False, data_preprocessor: Optional[dict] = None, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if (camera_branch is None) != (fuser is None):
            raise ValueError('camera_branch and fuser go together: give both or neither')
        self.lidar_branch = MODELS.build(lidar_branch)
        self.camera_branch = MODELS.build(camera_branch) if camera_branch is not None else None
        self.fuser = MODELS.build(fuser) if fuser is not None else None
        bev_channels = self.fuser.out_channels if self.fuser is not None else self.lidar_branch.out_channels
        self.token_filter = MODELS.build(dict(token_filter, in_channels=bev_channels))
        self.llm = MODELS.build(llm)
        hidden = self.llm.hidden_size
        self.projector = MODELS.build(dict(projector, in_channels=bev_channels, out_channels=hidden))
        self.back_projector = MODELS.build(dict(projector, in_channels=hidden, out_channels=bev_channels))
        self.spatial_position = (MODELS.build(dict(spatial_position, out_channels=hidden))
                                 if spatial_position is not None else None)
        self.blind_spatial_tokens = blind_spatial_tokens
        self.plan_queries = torch.nn.Parameter(torch.randn(num_plan_queries, hidden) * 0.02)
        self.occ_head = MODELS.build(dict(occ_head, in_channels=bev_channels))
        self.flow_head = MODELS.build(dict(flow_head, in_channels=bev_channels))
        self.plan_head = MODELS.build(dict(plan_head, in_channels=hidden, num_queries=num_plan_queries))
        self.prompt = DrivePIPrompt(self.llm.tokenizer, instruction)
        self.max_answer_tokens = max_answer_tokens

    # ------------------------------------------------------------------ features
    def extract_feat(self, inputs: dict, data_samples: SampleList, gt_occ: Optional[torch.Tensor] = None):
        """Fused BEV (B, C, Hb, Wb) and the LiDAR branch's aux dict."""
        bev, aux = self.lidar_branch(inputs['points'], gt_occ=gt_occ)
        if self.camera_branch is not None:
            if 'imgs' not in inputs:
                raise ValueError('this DrivePI config has a camera branch but the batch holds no `imgs`')
            ego2img = self._stack_meta(data_samples, 'ego2img', torch.float32, inputs['imgs'].device)
            cam_valid = self._stack_meta(data_samples, 'cam_valid', torch.bool, inputs['imgs'].device)
            bev = self.fuser(bev, self.camera_branch(inputs['imgs'].float(), ego2img, cam_valid))
        return bev, aux

    @staticmethod
    def _stack_meta(data_samples: SampleList, key: str, dtype: torch.dtype, device) -> torch.Tensor:
        """Stack one metainfo entry of every sample into a tensor, naming a missing key."""
        missing = [i for i, ds in enumerate(data_samples) if key not in ds.metainfo]
        if missing:
            raise KeyError(f'data samples {missing} have no metainfo `{key}`')
        return torch.stack([torch.as_tensor(ds.metainfo[key], dtype=dtype) for ds in data_samples]).to(device)

    def _run_llm(self, bev: torch.Tensor, data_samples: SampleList, conversations: list,
                 prefill_decoder: bool = False) -> dict:
        """Token filter, LLM pass and heads. With ``prefill_decoder`` (one sample, inference) the LLM pass
        is the answer decoder's prefill, which also keeps the prefix's KV cache for the answers.

        Returns:
            dict with ``scores`` (B, Hb*Wb), ``hidden`` and ``embeds`` (B, L, D), ``prompt`` (PromptBatch),
            ``occ_logits`` (B, 17, X, Y, Z), ``flow`` (B, X, Y, Z, 2), ``traj`` (B, T, 2).
        """
        selected = self.token_filter(bev)
        keep_idx = selected['keep_idx']
        commands = self._stack_meta(data_samples, 'ego_fut_cmd', torch.long, bev.device)
        prompt = self.prompt.batch(commands.tolist(), keep_idx.shape[1], len(self.plan_queries), conversations)
        prompt = prompt.to(bev.device)
        b = bev.shape[0]
        embeds = self.llm.embed(prompt.input_ids, prompt.spatial_mask, self._spatial_tokens(selected, bev),
                                prompt.plan_mask, self.plan_queries.expand(b, -1, -1))
        if prefill_decoder:
            hidden = self.llm.prefill(embeds)
        else:
            hidden = self.llm.hidden_states(embeds, prompt.attention_mask)
        spatial_states = hidden[prompt.spatial_mask].view(b, keep_idx.shape[1], -1)
        llm_bev = scatter_tokens(self.back_projector(spatial_states), keep_idx, bev)
        plan_states = hidden[prompt.plan_mask].view(b, len(self.plan_queries), -1)
        ego_status = (self._stack_meta(data_samples, 'ego_status', torch.float32, bev.device)
                      if self.plan_head.ego_proj is not None else None)
        return dict(scores=selected['scores'], hidden=hidden, embeds=embeds, prompt=prompt,
                    occ_logits=self.occ_head(llm_bev), flow=self.flow_head(llm_bev),
                    traj=self.plan_head(plan_states, commands, ego_status))

    def _spatial_tokens(self, selected: dict, bev: torch.Tensor) -> torch.Tensor:
        """(B, K, D) LLM inputs of the kept BEV tokens: projected features plus the embedding of where
        each token lies (zeros in the blind pass)."""
        tokens = self.projector(selected['tokens'])
        if self.spatial_position is not None:
            tokens = tokens + self.spatial_position(selected['keep_idx'], bev.shape[2:])
        return torch.zeros_like(tokens) if self.blind_spatial_tokens else tokens

    # ------------------------------------------------------------------ modes
    def loss(self, inputs: dict, data_samples: SampleList) -> dict:
        """Training losses: ``loss_text``, ``loss_occ_ce``, ``loss_occ_lovasz``, ``loss_flow``,
        ``loss_plan``, ``loss_plan_col``, ``loss_importance`` (LiDAR voxels), ``loss_token_importance``,
        plus the LiDAR branch's ``*_ratio`` statistics (no 'loss' in the name: logged, not summed)."""
        gt = self._stack_gt(data_samples, inputs['points'][0].device)
        bev, aux = self.extract_feat(inputs, data_samples, gt_occ=gt['occ'])
        out = self._run_llm(bev, data_samples, [ds.get('conversations', []) for ds in data_samples])
        losses = dict(loss_text=self.llm.text_loss(out['hidden'], out['prompt'].labels))
        losses.update(self.occ_head.loss(out['occ_logits'], gt['occ'], gt['mask_camera']))
        losses.update(self.flow_head.loss(out['flow'], gt['flow'], gt['occ']))
        losses.update(self.plan_head.loss(out['traj'], gt['traj'], gt['traj_mask'], gt['fut_boxes']))
        if 'loss_importance' in aux:
            losses['loss_importance'] = aux['loss_importance']
        losses.update({k: v.detach().float() for k, v in aux.items() if k.endswith('_ratio')})  # logged only
        losses['loss_token_importance'] = self.token_filter.loss(out['scores'], gt['occ'], bev.shape[2:])
        return losses

    def _stack_gt(self, data_samples: SampleList, device) -> dict:
        """Batch and check the GT fields of the data samples (occ, flow, mask_camera, traj, traj_mask,
        fut_boxes); a missing field, a wrong shape or a NaN raises naming the sample and field."""
        grid, steps = self.occ_head.grid_size, (self.plan_head.num_waypoints,)
        fields = dict(occ=('gt_occ', grid), flow=('gt_flow', grid + (2,)), mask_camera=('gt_mask_camera', grid),
                      traj=('gt_traj', steps + (2,)), traj_mask=('gt_traj_mask', steps))
        gt = {}
        for name, (key, shape) in fields.items():
            values = []
            for i, ds in enumerate(data_samples):
                value = ds.get(key)
                if value is None:
                    raise KeyError(f'data sample {i} has no `{key}` needed for training')
                value = torch.as_tensor(value)
                if tuple(value.shape) != shape:
                    raise ValueError(f'data sample {i}: `{key}` has shape {tuple(value.shape)}, expected {shape}')
                if value.is_floating_point() and not torch.isfinite(value).all():
                    raise ValueError(f'data sample {i}: `{key}` contains NaN/inf values')
                values.append(value)
            gt[name] = torch.stack(values).to(device)
        gt['occ'] = gt['occ'].long()
        gt['fut_boxes'] = [[torch.as_tensor(b, dtype=torch.float32, device=device) for b in ds.get('gt_fut_boxes', [])]
                           for ds in data_samples]
        return gt

    @torch.no_grad()
    def predict(self, inputs: dict, data_samples: SampleList) -> SampleList:
        """Adds ``pred_occ`` uint8 (X,Y,Z), ``pred_flow`` (X,Y,Z,2), ``pred_traj`` (T,2) and ``pred_answers``
        (list of lists of str, parallel to ``conversations``) to every data sample."""
        bev, _ = self.extract_feat(inputs, data_samples)
        # one sample with questions: its LLM pass is the decoder's prefill, encoding the prefix only once
        prefilled = len(data_samples) == 1 and bool(data_samples[0].get('conversations'))
        out = self._run_llm(bev, data_samples, [[] for _ in data_samples], prefill_decoder=prefilled)
        pred_occ = self.occ_head.predict(out['occ_logits'])
        lengths = out['prompt'].attention_mask.sum(1).tolist()
        for i, ds in enumerate(data_samples):
            ds.pred_occ, ds.pred_flow, ds.pred_traj = pred_occ[i].cpu(), out['flow'][i].cpu(), out['traj'][i].cpu()
            conversations = ds.get('conversations', [])
            if conversations and not prefilled:
                self.llm.prefill(out['embeds'][i:i + 1, :lengths[i]])
            ds.pred_answers = [self._answer_conversation(conv) for conv in conversations]
        return data_samples

    def _answer_conversation(self, conversation: list) -> List[str]:
        """Answer each turn greedily, with the earlier questions and the model's own answers as context,
        continuing the sample's prefix (instruction, spatial tokens, queries) that ``llm.prefill`` encoded
        once into the decoder's KV cache."""
        history, answers = [], []
        for turn in conversation:
            ids = history + self.prompt.question_ids(turn['question'])
            new_ids = self.llm.generate(self.llm.embed_ids(ids)[None], self.max_answer_tokens, after_prefix=True)
            answers.append(self.llm.decode(new_ids))
            history += self.prompt.turn_ids(turn['question'], answers[-1])[0]
        return answers

    def deploy(self) -> 'DrivePI':
        """Inference form after training: LoRA adapters folded into the LLM's base weights (the same
        outputs with fewer, larger matmuls; the LLM's CUDA graphs then replay plain linears) and eval mode.
        Irreversible: the adapters are gone, so only for evaluation, driving and benchmarks."""
        if self.llm.train_mode == 'lora':
            self.llm.merge_lora()
        return self.eval()

    def _forward(self, inputs: dict, data_samples: SampleList) -> dict:
        """Raw outputs: ``occ_logits`` (B, 17, X, Y, Z), ``flow`` (B, X, Y, Z, 2), ``traj`` (B, T, 2)."""
        bev, _ = self.extract_feat(inputs, data_samples)
        out = self._run_llm(bev, data_samples, [[] for _ in data_samples])
        return {k: out[k] for k in ('occ_logits', 'flow', 'traj')}
