"""DrivePI: LiDAR + cameras + language -> text answers, occupancy, occupancy flow and ego trajectory.

One forward pass (see docs/contracts.md, Model):
points -> LiDAR BEV, images -> camera BEV, fused BEV -> token filter keeps K positions ->
projector -> Qwen2 sequence ``[instruction, K spatial tokens, Q planning queries, conversation]`` ->
hidden states at the spatial positions are projected back and scattered into the fused BEV (pruned
positions keep their pre-LLM features) and, with the hidden states of the planning queries, handed to
every head of the ``heads`` dict (occupancy, flow, planning: ``drivepi.models.heads.base_head``); the LM
head gives the text (answer-only cross-entropy in training, greedy generation with the KV cache in
``predict``).
"""
from typing import List, Optional, Sequence

import torch
from mmdet3d.models.detectors import Base3DDetector
from mmdet3d.structures import Det3DDataSample

from drivepi.device_copies import scalars_to_host, to_device
from drivepi.models.ada3d.token_filter import gather_tokens, scatter_tokens
from drivepi.models.cuda_graphs import run_overlapped
from drivepi.models.heads import HeadInputs, stack_field
from drivepi.models.llm.prompt import DrivePIPrompt
from drivepi.models.llm.spatial_position import place_cells
from drivepi.registry import MODELS

SampleList = List[Det3DDataSample]
FREEZABLE_MODULES = ('lidar_branch', 'camera_branch', 'fuser', 'token_filter', 'projector', 'back_projector',
                     'spatial_position', 'heads')
ENCODERS = ('lidar_branch', 'camera_branch', 'fuser')


def rows_at(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``hidden`` (B, L, D) at the True positions of ``mask`` (B, L), the same number N in every row ->
    (B, N, D). The positions are found on the mask's device, so a CPU mask (as the prompt builds it) costs
    the GPU no host synchronisation, unlike boolean indexing of a GPU tensor."""
    rows, cols = mask.nonzero(as_tuple=True)
    return hidden[to_device(rows, hidden.device), to_device(cols, hidden.device)].view(mask.shape[0], -1,
                                                                                      hidden.shape[-1])


@MODELS.register_module()
class DrivePI(Base3DDetector):
    """The DrivePI model, assembled from registry configs.

    Args:
        lidar_branch: LiDAR branch config (points -> BEV (B, C_l, Hb, Wb) + aux dict).
        llm: ``Qwen2LLM`` config.
        token_filter: ``BEVTokenFilter`` config (``in_channels`` filled in).
        heads: ``{name: head config}``; each head follows ``BaseDrivePIHead``'s contract and gets its
            input width filled in from the feature it reads (``in_channels`` = BEV channels for ``'bev'``
            heads; ``in_channels`` = LLM hidden size and ``num_queries`` for ``'plan_states'`` heads).
        grid_size: (X, Y, Z) of the occupancy grid whose ``gt_occ`` supervises the Ada3D importance
            predictors (LiDAR voxels and BEV tokens).
        camera_branch: camera branch config or None (LiDAR only).
        fuser: BEV fuser config, required with a camera branch.
        projector: projector config from BEV channels to the LLM hidden size (channels filled in);
            the same type maps hidden states back to BEV channels.
        spatial_position: config of the embedding of each spatial token's BEV cell centre, added to the
            projected token (``BEVPositionEmbedding``; ``out_channels`` filled in), or None.
        place_tokens: add to the tokens of every place that a question names (``x = 12.2 m, y = -3.4 m``) the
            spatial token of the BEV cell holding it (projected feature + position embedding, whether or not
            the token filter kept that cell), as Ferret / GPT4RoI hand a referred region's feature to the LLM;
            needs ``spatial_position`` (its range locates the cell).
        num_plan_queries: Q, learned query tokens whose hidden states feed the ``'plan_states'`` heads.
        instruction: system text of the prompt with a ``{command}`` field (None: the default).
        plan_refiner: config of a module whose ``refine(data_sample)`` rewrites every sample's ``pred_traj`` from
            its predictions after the heads (``OccupancyGuidedStop``: braking before the predicted occupancy,
            choosing among the modes of a multi-mode planning head), or None.
        max_answer_tokens: generation limit per answer in ``predict``; it must cover the longest answer
            (the dataset checks it against its QA file when given the same limit and tokenizer).
        blind_spatial_tokens: replace the spatial tokens by zeros (everything else equal): the "blind"
            pass of ``tools/test.py --blind`` that measures how much the answers depend on the scene.
        frozen_modules: names from :data:`FREEZABLE_MODULES` whose weights do not train and which stay in
            eval mode, for staged training (e.g. the language stage of ``drivepi_mini_long_qa_stage.py``);
            the losses of frozen parts are not computed and frozen encoders run without autograd. The
            LLM's own weights follow its ``train_mode``.
        overlap_branches: on a GPU at inference, run the camera branch on a second CUDA stream while the host works
            through the LiDAR branch (:meth:`extract_feat`); False runs them one after the other.
        data_preprocessor: ``DrivePIDataPreprocessor`` (or ``Det3DDataPreprocessor``) config.
    """

    def __init__(self, lidar_branch: dict, llm: dict, token_filter: dict, heads: dict, grid_size: Sequence[int],
                 camera_branch: Optional[dict] = None, fuser: Optional[dict] = None,
                 projector: dict = dict(type='MLPProjector'), spatial_position: Optional[dict] = None,
                 place_tokens: bool = False, num_plan_queries: int = 6, instruction: Optional[str] = None,
                 plan_refiner: Optional[dict] = None,
                 max_answer_tokens: int = 64,
                 blind_spatial_tokens: bool = False, frozen_modules: Sequence[str] = (), overlap_branches: bool = True,
                 data_preprocessor: Optional[dict] = None, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if (camera_branch is None) != (fuser is None):
            raise ValueError('camera_branch and fuser go together: give both or neither')
        unknown = sorted(set(frozen_modules) - set(FREEZABLE_MODULES))
        if unknown:
            raise ValueError(f'frozen_modules {unknown} are not parts of DrivePI that can be frozen '
                             f'(one of {FREEZABLE_MODULES})')
        self.grid_size = tuple(grid_size)
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
        if place_tokens and spatial_position is None:
            raise ValueError('place_tokens needs a spatial_position embedding (its range locates the cells)')
        self.place_tokens = place_tokens
        self.plan_queries = torch.nn.Parameter(torch.randn(num_plan_queries, hidden) * 0.02)
        widths = dict(bev=dict(in_channels=bev_channels),
                      plan_states=dict(in_channels=hidden, num_queries=num_plan_queries))
        self.heads = torch.nn.ModuleDict({name: MODELS.build(dict(cfg, **widths[MODELS.get(cfg['type']).feature]))
                                          for name, cfg in heads.items()})
        self.plan_refiner = MODELS.build(plan_refiner) if plan_refiner is not None else None
        self.prompt = DrivePIPrompt(self.llm.tokenizer, instruction)
        self.max_answer_tokens = max_answer_tokens
        self.blind_spatial_tokens = blind_spatial_tokens
        self.overlap_branches = overlap_branches
        self.frozen_modules = tuple(name for name in frozen_modules if getattr(self, name) is not None)
        for name in self.frozen_modules:
            getattr(self, name).requires_grad_(False)

    def train(self, mode: bool = True) -> 'DrivePI':
        """``nn.Module.train``, keeping the frozen modules in eval mode (their normalisation statistics
        and filters behave as at test time)."""
        super().train(mode)
        for name in self.frozen_modules:
            getattr(self, name).eval()
        return self

    # ------------------------------------------------------------------ features
    def extract_feat(self, inputs: dict, data_samples: SampleList, gt_occ: Optional[torch.Tensor] = None):
        """Fused BEV (B, C, Hb, Wb) and the LiDAR branch's aux dict. On a GPU at inference the camera branch
        runs on a second stream while the host works through the LiDAR branch (:func:`run_overlapped`)."""
        def lidar():
            return self.lidar_branch(inputs['points'], gt_occ=gt_occ)

        if self.camera_branch is None:
            return lidar()
        if 'imgs' not in inputs:
            raise ValueError('this DrivePI config has a camera branch but the batch holds no `imgs`')
        device = inputs['imgs'].device
        ego2img = stack_field(data_samples, 'ego2img', None, torch.float32, device, metainfo=True)
        cam_valid = stack_field(data_samples, 'cam_valid', None, torch.bool, device, metainfo=True)
        camera_bev, (bev, aux) = run_overlapped(
            lambda: self.camera_branch(inputs['imgs'].float(), ego2img, cam_valid), lidar, device,
            overlap=self.overlap_branches)
        return self.fuser(bev, camera_bev), aux

    def _run_llm(self, bev: torch.Tensor, data_samples: SampleList, conversations: list,
                 prefill_decoder: bool = False) -> dict:
        """Token filter and the LLM pass. With ``prefill_decoder`` (inference) the LLM pass is the answer
        decoder's prefill, which also keeps every sample's prefix in the decoder's KV cache for the answers.

        Returns:
            dict with ``scores`` (B, Hb*Wb), ``hidden`` and ``embeds`` (B, L, D), ``prompt`` (PromptBatch on the
            BEV's device), ``host_prompt`` (the same on the CPU)
            and ``feats`` (:class:`HeadInputs` for the heads).
        """
        selected = self.token_filter(bev)
        keep_idx = selected['keep_idx']
        commands = stack_field(data_samples, 'ego_fut_cmd', (), torch.long, metainfo=True)
        host_prompt = self.prompt.batch(commands.tolist(), keep_idx.shape[1], len(self.plan_queries), conversations)
        prompt = host_prompt.to(bev.device)
        b = bev.shape[0]
        embeds = self.llm.embed(prompt.input_ids, prompt.spatial_mask, self._spatial_tokens(selected, bev),
                                prompt.plan_mask, self.plan_queries.expand(b, -1, -1))
        embeds = self._add_place_tokens(embeds, host_prompt.input_ids, bev)
        if prefill_decoder:
            hidden = self.llm.prefill(embeds, host_prompt.attention_mask.sum(1).tolist())
        else:
            hidden = self.llm.hidden_states(embeds, host_prompt.attention_mask)
        spatial_states = rows_at(hidden, host_prompt.spatial_mask)
        feats = HeadInputs(bev=scatter_tokens(self.back_projector(spatial_states), keep_idx, bev),
                           plan_states=rows_at(hidden, host_prompt.plan_mask))
        return dict(scores=selected['scores'], hidden=hidden, embeds=embeds, prompt=prompt, host_prompt=host_prompt,
                    feats=feats)

    def _spatial_tokens(self, selected: dict, bev: torch.Tensor) -> torch.Tensor:
        """(B, K, D) LLM inputs of the kept BEV tokens (:meth:`_scene_tokens`)."""
        return self._scene_tokens(selected['tokens'], selected['keep_idx'], bev.shape[2:])

    def _scene_tokens(self, features: torch.Tensor, cells: torch.Tensor, bev_shape) -> torch.Tensor:
        """(B, N, D) LLM inputs of BEV cells: projected features (B, N, C) plus the embedding of where each
        cell (B, N) lies (zeros in the blind pass)."""
        tokens = self.projector(features)
        if self.spatial_position is not None:
            tokens = tokens + self.spatial_position(cells, bev_shape)
        return torch.zeros_like(tokens) if self.blind_spatial_tokens else tokens

    def _add_place_tokens(self, embeds: torch.Tensor, input_ids: torch.Tensor, bev: torch.Tensor) -> torch.Tensor:
        """``embeds`` (B, L, D) of ``input_ids`` (B, L) with the scene token of its place added to every token
        inside a named place (:meth:`DrivePIPrompt.token_places`); unchanged, and the ids not read, without
        ``place_tokens``."""
        if not self.place_tokens:
            return embeds
        places = torch.stack([self.prompt.token_places(row.tolist()) for row in input_ids.cpu()])
        cells, valid = place_cells(places, bev.shape[2:], self.spatial_position.point_cloud_range)  # on the CPU
        if not bool(valid.any()):
            return embeds
        cells, valid = to_device(cells, bev.device), to_device(valid, bev.device)
        tokens = self._scene_tokens(gather_tokens(bev, cells), cells, bev.shape[2:])
        return embeds + (tokens * valid[..., None]).to(embeds.dtype)

    # ------------------------------------------------------------------ modes
    def loss(self, inputs: dict, data_samples: SampleList) -> dict:
        """Training losses: ``loss_text``, every head's losses (``loss_occ_ce``, ``loss_occ_lovasz``,
        ``loss_flow``, ``loss_plan``, ``loss_plan_col`` with the default heads), ``loss_importance``
        (LiDAR voxels), ``loss_token_importance``, plus the LiDAR branch's ``*_ratio`` statistics (no
        'loss' in the name: logged, not summed)."""
        gt_occ = stack_field(data_samples, 'gt_occ', self.grid_size, torch.long, inputs['points'][0].device)
        encoders_frozen = all(name in self.frozen_modules for name in ENCODERS if getattr(self, name) is not None)
        with torch.set_grad_enabled(not encoders_frozen):
            bev, aux = self.extract_feat(inputs, data_samples,
                                         gt_occ=None if 'lidar_branch' in self.frozen_modules else gt_occ)
        out = self._run_llm(bev, data_samples, [ds.get('conversations', []) for ds in data_samples])
        losses = dict(loss_text=self.llm.text_loss(out['hidden'], out['prompt'].labels))
        heads = {} if 'heads' in self.frozen_modules else self.heads
        for name, head in heads.items():
            head_losses = head.loss(out['feats'], data_samples)
            clashes = set(head_losses) & set(losses)
            if clashes:
                raise ValueError(f'head {name!r} returns losses {sorted(clashes)} that another part already returns')
            losses.update(head_losses)
        if 'loss_importance' in aux:
            losses['loss_importance'] = aux['loss_importance']
        losses.update({k: v.detach().float() for k, v in aux.items() if k.endswith('_ratio')})  # logged only
        if 'token_filter' not in self.frozen_modules:
            losses['loss_token_importance'] = self.token_filter.loss(out['scores'], gt_occ, bev.shape[2:])
        return losses

    def train_step(self, data, optim_wrapper) -> dict:
        """MMEngine's ``BaseModel.train_step`` (preprocess, losses, ``parse_losses``, ``update_params``) returning
        the logged values as floats, brought to the host in one copy that is queued before the backward pass
        and read after the optimizer step has been queued (:func:`scalars_to_host`): one wait, which lets the
        GPU run the backward pass meanwhile, instead of one host synchronisation per logged value."""
        with optim_wrapper.optim_context(self):
            data = self.data_preprocessor(data, True)
            losses = self._run_forward(data, mode='loss')
        parsed_losses, log_vars = self.parse_losses(losses)
        read_log_vars = scalars_to_host(log_vars)
        optim_wrapper.update_params(parsed_losses)
        return read_log_vars()

    @torch.no_grad()
    def predict(self, inputs: dict, data_samples: SampleList) -> SampleList:
        """Every head writes its ``pred_*`` fields (``pred_occ`` uint8 (X,Y,Z), ``pred_flow`` (X,Y,Z,2),
        ``pred_traj`` (T,2) with the default heads; the ``plan_refiner``, if any, rewrites it) and
        ``pred_answers`` (list of lists of str, parallel to ``conversations``) is added to every data sample."""
        bev, _ = self.extract_feat(inputs, data_samples)
        conversations = [ds.get('conversations', []) for ds in data_samples]
        # the LLM pass is the decoder's prefill (each prefix encoded once) when the answers can continue it: one
        # sample, or several where the decoder batches (every sample's turns then decoded together)
        prefilled = any(conversations) and (len(data_samples) == 1 or self.llm.batches_decoding(bev.device))
        out = self._run_llm(bev, data_samples, [[] for _ in data_samples], prefill_decoder=prefilled)
        for head in self.heads.values():
            head.predict(out['feats'], data_samples)
        if self.plan_refiner is not None:
            for ds in data_samples:
                self.plan_refiner.refine(ds)
        if prefilled:
            answers = self._answer_conversations(conversations, bev)
        else:  # one sample after another, each prefix encoded again for the decoder
            lengths = out['host_prompt'].attention_mask.sum(1).tolist()
            answers = []
            for i, sample_conversations in enumerate(conversations):
                if sample_conversations:
                    self.llm.prefill(out['embeds'][i:i + 1, :lengths[i]])
                answers += self._answer_conversations([sample_conversations], bev[i:i + 1])
        for ds, sample_answers in zip(data_samples, answers):
            ds.pred_answers = sample_answers
        return data_samples

    def _answer_conversations(self, conversations: List[list], bev: torch.Tensor) -> List[List[List[str]]]:
        """Answer each turn greedily, with the conversation's earlier questions and the model's own answers as
        context, continuing its sample's prefix (instruction, spatial tokens, queries) that ``llm.prefill``
        encoded once into the decoder's KV cache. The conversations are independent: the k-th turns of all
        of them, across the samples, are decoded together (``llm.generate_batch``), one round per turn.

        Args:
            conversations: per sample (in the order of the prefill's prefixes), its conversations.
            bev: (S, C, Hb, Wb) the samples' BEV features (their place tokens).

        Returns:
            per sample, per conversation, its answers (parallel to its turns).
        """
        owners = [s for s, sample_conversations in enumerate(conversations) for _ in sample_conversations]
        flat = [conversation for sample_conversations in conversations for conversation in sample_conversations]
        histories = [[] for _ in flat]
        answers = [[] for _ in flat]
        for turn_index in range(max((len(conv) for conv in flat), default=0)):
            active = [c for c, conv in enumerate(flat) if turn_index < len(conv)]
            continuations = []
            for c in active:
                ids = histories[c] + self.prompt.question_ids(flat[c][turn_index]['question'])
                continuations.append(self._add_place_tokens(self.llm.embed_ids(ids)[None], torch.tensor([ids]),
                                                            bev[owners[c]:owners[c] + 1]))
            decoded = self.llm.generate_batch(continuations, self.max_answer_tokens, [owners[c] for c in active])
            for c, new_ids in zip(active, decoded):
                answers[c].append(self.llm.decode(new_ids))
                histories[c] += self.prompt.turn_ids(flat[c][turn_index]['question'], answers[c][-1])[0]
        per_sample = [[] for _ in conversations]
        for owner, conversation_answers in zip(owners, answers):
            per_sample[owner].append(conversation_answers)
        return per_sample

    def deploy(self) -> 'DrivePI':
        """Inference form after training: LoRA adapters folded into the LLM's base weights (the same
        outputs with fewer, larger matmuls; the LLM's CUDA graphs then replay plain linears) and eval mode.
        Irreversible: the adapters are gone, so only for evaluation, driving and benchmarks."""
        if self.llm.train_mode == 'lora':
            self.llm.merge_lora()
        return self.eval()

    def _forward(self, inputs: dict, data_samples: SampleList) -> dict:
        """Every head's raw outputs in one dict (default heads: ``occ_logits`` (B, X, Y, Z, 17), ``flow``
        (B, X, Y, Z, 2), ``traj`` (B, T, 2))."""
        bev, _ = self.extract_feat(inputs, data_samples)
        feats = self._run_llm(bev, data_samples, [[] for _ in data_samples])['feats']
        outputs = {}
        for head in self.heads.values():
            outputs.update(head(feats, data_samples))
        return outputs
