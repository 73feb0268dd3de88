"""Greedy answer decoding on a static Hugging Face KV cache, with the one-token step as a CUDA graph.

The multimodal prefix of a frame (instruction, spatial tokens, planning queries) is encoded once by
:meth:`GreedyDecoder.set_prefix`; every :meth:`GreedyDecoder.generate` rewinds the cache to the end of
the prefix and extends it with one continuation, so the answers of a conversation share one prefill
without copying any cache.

The cache is a Hugging Face ``Cache`` built from :class:`PrefixCacheLayer`, a subclass of the public
``transformers.StaticLayer`` whose write position is its own device tensor: rewinding is
:meth:`PrefixCacheLayer.seek`, no transformers internal is written. (transformers 5 removed the
``cache_position`` argument of the model forward: a static cache places new tokens at its own fill
position, which ``get_seq_length`` reports and from which the model derives positions and the causal
mask.) Every tensor stays at a fixed address and the position counters live on the device, which lets
the one-token step (forward, argmax) be captured once as a CUDA graph and replayed: per token the GPU
then runs the kernels of the 24-layer decoder without Python or launch overhead. Replayed, the step is
bound by the GPU's kernel count, not by the host (3.3 ms of GPU time per 3.3 ms token on an H200, 6 us
to launch): ``compile_step`` fuses it into fewer kernels first. Off CUDA the same
step runs eagerly. Decoding runs in the LM's own dtype with autocast off: the static cache holds one
dtype, and a graph would replay the casts of the autocast state it was captured in.

:meth:`GreedyDecoder.generate_batch` decodes several continuations at once (the turns of a frame's
conversations, or of several frames' conversations): the keys and values of each row's prefix are copied into
that row of a second, batched cache, each continuation is right-aligned after a gap of padding slots, and one
4D mask hides the padding from every query, so row ``b`` sees exactly its prefix, its own continuation and its
own new tokens at the rotary positions the single-row path gives them. Per token the batch costs about as much
as one row where decoding is bound by kernel launches (a GPU), so a frame's ~13 conversations take ~4 batched
rounds instead of ~26 sequential answers. The prefixes of several frames are encoded together by
:meth:`GreedyDecoder.set_prefixes` (right-padded, one pass, the same 4D mask) into a cache of one row per frame.
Attention reads only the first slots of the cache that a call can fill (:func:`attention_window`, a power of two:
one CUDA graph per window), and the host reads the batch's tokens one step behind the GPU.
"""
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from transformers import Cache, PreTrainedModel, StaticLayer

from drivepi.models.cuda_graphs import capture


def attention_window(needed: int, max_cache_len: int, smallest: int = 256) -> int:
    """Cache slots a call's attention reads: the power of two (at least ``smallest``) that holds the ``needed``
    slots, at most ``max_cache_len``. Attention then reads about what the call fills instead of the whole cache
    (a 4-layer mini LLM, 64 rows after a 680-position prefix, 2 CPU cores: 79 ms a step over 4,096 slots, 27 ms over
    1,024), and the few window sizes keep few CUDA graphs and compilations (one per size)."""
    window = smallest
    while window < needed:
        window *= 2
    return min(window, max_cache_len)


class PrefixCacheLayer(StaticLayer):
    """A static KV-cache layer whose fill position (a 0-dim long tensor on the cache's device) belongs to
    this class and is moved with :meth:`seek`; keys and values are written at ``position, position + 1,
    ...`` by ``update`` and the model reads the position through ``get_seq_length``. Attention reads the first
    ``window`` slots (views of the static buffers, at fixed addresses), and the model's causal mask covers
    those (``get_mask_sizes``)."""

    def __init__(self, max_cache_len: int) -> None:
        super().__init__(max_cache_len=max_cache_len)
        self.position = torch.zeros((), dtype=torch.long)
        self.window = max_cache_len

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args,
               **kwargs) -> Tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
            self.position = self.position.to(self.device)
        slots = self.position + torch.arange(key_states.shape[-2], device=self.device)
        self.position.add_(key_states.shape[-2])  # in place: the address stays fixed for CUDA graphs
        self.keys.index_copy_(2, slots, key_states)
        self.values.index_copy_(2, slots, value_states)
        return self.keys[:, :, :self.window], self.values[:, :, :self.window]

    def get_mask_sizes(self, query_length: int) -> Tuple[int, int]:
        return self.window, 0

    def get_seq_length(self) -> torch.Tensor:
        return self.position

    def seek(self, position) -> None:
        """Set the fill position (int or 0-dim tensor); later slots are stale, masked by causality and
        overwritten by the next writes."""
        self.position.fill_(position)


def fit_window(cache: Cache, needed: int) -> None:
    """Let every layer of ``cache`` (:class:`PrefixCacheLayer`) attend to the :func:`attention_window` of
    ``needed`` slots."""
    window = attention_window(needed, cache.layers[0].max_cache_len)
    for layer in cache.layers:
        layer.window = window


class BatchedRows:
    """The batched cache and what its rows need beyond the cache (:meth:`GreedyDecoder.generate_batch`).

    Attributes:
        cache: a ``Cache`` of :class:`PrefixCacheLayer` with ``rows`` rows.
        visible: bool ``(rows, max_cache_len)``: slots the row attends to (prefix, own continuation and
            new tokens; False on padding slots); later slots are hidden by causality.
        pad: long ``(rows,)`` padding slots before the row's continuation (its rotary position lags its slot
            by that much).
        slots: long ``(max_cache_len,)`` slot indices.
        prefix_key: which prefixes the rows hold (the decoder's prefix count and each row's prefix; None: none yet).
        graphs: the batched step's CUDA graphs by attention window: (input tokens, graph, output tokens).
    """

    def __init__(self, num_layers: int, rows: int, max_cache_len: int, device: torch.device) -> None:
        self.rows = rows
        self.cache = Cache(layers=[PrefixCacheLayer(max_cache_len) for _ in range(num_layers)])
        self.visible = torch.zeros((rows, max_cache_len), dtype=torch.bool, device=device)
        self.pad = torch.zeros(rows, dtype=torch.long, device=device)
        self.slots = torch.arange(max_cache_len, device=device)
        self.prefix_key = None  # (the decoder's prefix_count, each row's prefix) whose keys and values the rows hold
        self.graphs: Dict[int, Tuple[torch.Tensor, torch.cuda.CUDAGraph, torch.Tensor]] = {}

    def mask_and_positions(self, first_slot: torch.Tensor, length: int,
                           dtype: torch.dtype) -> Tuple[torch.Tensor, torch.Tensor]:
        """Additive attention mask ``(rows, 1, length, window)`` in ``dtype`` and rotary positions
        ``(rows, length)`` of ``length`` queries written at slots ``first_slot, first_slot + 1, ...``
        (``first_slot`` a 0-dim device tensor: no host synchronisation, capturable in a CUDA graph)."""
        window = self.cache.layers[0].window
        query_slots = first_slot + torch.arange(length, device=self.slots.device)
        slots = self.slots[:window]
        allowed = self.visible[:, None, :window] & (slots[None, None, :] <= query_slots[None, :, None])
        mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
        mask = mask.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]
        return mask, query_slots[None, :] - self.pad[:, None]


class GreedyDecoder:
    """Greedy decoding of one sequence (batch 1) of a causal LM.

    Args:
        causal_lm: a Hugging Face causal LM whose forward accepts ``past_key_values`` and ``logits_to_keep``.
        max_cache_len: positions the static cache holds (prefix + continuation + new tokens).
        use_cuda_graph: replay the one-token step from a CUDA graph when the inputs are on CUDA.
        compile_step: ``torch.compile`` the one-token step before its graph is captured: the elementwise work
            of each layer fuses into fewer, larger kernels (1,232 -> 487 kernels per token for Qwen2.5-0.5B);
            the first step on a GPU compiles (~30 s).
        compile_options: Inductor options of that compilation (``torch.compile(options=...)``, e.g.
            ``dict(max_autotune=True)``: matmul kernels chosen by timing candidates, a longer first compile);
            None: Inductor's defaults.
    """

    def __init__(self, causal_lm: PreTrainedModel, max_cache_len: int = 4096, use_cuda_graph: bool = True,
                 compile_step: bool = False, compile_options: Optional[dict] = None) -> None:
        self.lm, self.max_cache_len, self.use_cuda_graph = causal_lm, max_cache_len, use_cuda_graph
        self.compile_step, self.compile_options = compile_step, compile_options
        self.cache: Optional[Cache] = None  # made on first use, on the inputs' device
        self.cache_device: Optional[torch.device] = None
        self.prefix_len = 0
        self.graphs: Dict[int, Tuple[torch.Tensor, torch.cuda.CUDAGraph, torch.Tensor]] = {}  # step graphs by window
        self.prefix_count = 0  # prefix encodings so far: the batched cache copies a prefix once
        # the prefixes of set_prefixes (one row each) and their lengths; None after set_prefix (one prefix in cache)
        self.prefixes: Optional[BatchedRows] = None
        self.prefix_lens: List[int] = [0]
        self.batched: Optional[BatchedRows] = None  # made by the first generate_batch, grown when needed

    # ------------------------------------------------------------------ cache positions
    def _position(self) -> torch.Tensor:
        """Tokens in the cache, a 0-dim device tensor (every layer's position holds the same value)."""
        return self.cache.layers[0].position

    def _rewind(self, position) -> None:
        """Move every layer's fill position to ``position`` (int or 0-dim tensor)."""
        for layer in self.cache.layers:
            layer.seek(position)

    def _prepare(self, embeds: torch.Tensor, new_positions: int, rows: int = 1) -> torch.Tensor:
        """Check the input ((rows, L, D)) and the cache capacity (a new device starts a fresh cache); ``embeds``
        in the LM's dtype."""
        if embeds.dim() != 3 or embeds.shape[0] != rows:
            raise ValueError(f'GreedyDecoder expects {rows} sequence(s) here: embeddings must be ({rows}, L, D), '
                             f'got {tuple(embeds.shape)}')
        if embeds.device != self.cache_device:
            self.cache = Cache(layers=[PrefixCacheLayer(self.max_cache_len)
                                       for _ in range(self.lm.config.num_hidden_layers)])
            self.cache_device, self.prefix_len, self.graphs, self.batched = embeds.device, 0, {}, None
            self.prefixes, self.prefix_lens = None, [0]
        if new_positions > self.max_cache_len:
            raise ValueError(f'{new_positions} positions exceed the decoder cache of {self.max_cache_len}; '
                             'raise max_cache_len (Qwen2LLM decode_cache_len)')
        return embeds.to(self.lm.dtype)

    # ------------------------------------------------------------------ public API
    @torch.no_grad()
    def set_prefix(self, prefix_embeds: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """Encode ``prefix_embeds`` (1, P, D) into the cache; ``None`` clears the prefix.

        Returns:
            the prefix's final-norm hidden states (1, P, D) in the LM dtype (None for ``None``).
        """
        self.prefixes = None
        if prefix_embeds is None:
            self.prefix_len, self.prefix_lens = 0, [0]
            return None
        prefix_embeds = self._prepare(prefix_embeds, prefix_embeds.shape[1])
        fit_window(self.cache, prefix_embeds.shape[1])
        with torch.autocast(prefix_embeds.device.type, enabled=False):
            self._rewind(0)
            out = self.lm.model(inputs_embeds=prefix_embeds, past_key_values=self.cache, use_cache=True)
        self.prefix_len = prefix_embeds.shape[1]
        self.prefix_lens = [self.prefix_len]
        self.prefix_count += 1
        return out.last_hidden_state

    @torch.no_grad()
    def set_prefixes(self, prefix_embeds: torch.Tensor, lengths: Sequence[int]) -> torch.Tensor:
        """Encode ``S`` right-padded prefixes ``prefix_embeds`` (S, P, D), row ``s`` holding ``lengths[s]`` real
        positions, in one pass into a cache of one row per prefix, which :meth:`generate_batch` continues by
        its ``prefix_rows``. Padding positions are hidden from every query; row ``s`` sees what
        :meth:`set_prefix` of its first ``lengths[s]`` positions would encode.

        Returns:
            the prefixes' final-norm hidden states (S, P, D) in the LM dtype (meaningless at padding positions).
        """
        rows, length = prefix_embeds.shape[:2]
        if len(lengths) != rows or not all(0 < n <= length for n in lengths):
            raise ValueError(f'set_prefixes: {rows} prefixes of up to {length} positions need as many lengths in '
                             f'1..{length}, got {list(lengths)}')
        prefix_embeds = self._prepare(prefix_embeds, length, rows)
        if self.prefixes is None or self.prefixes.rows != rows:
            self.prefixes = BatchedRows(len(self.cache.layers), rows, self.max_cache_len, prefix_embeds.device)
        prefixes = self.prefixes
        prefixes.pad.zero_()
        prefixes.visible.copy_(prefixes.slots[None] < torch.tensor(lengths, device=prefix_embeds.device)[:, None])
        fit_window(prefixes.cache, length)
        with torch.autocast(prefix_embeds.device.type, enabled=False):
            for layer in prefixes.cache.layers:
                layer.seek(0)
            mask, positions = prefixes.mask_and_positions(torch.zeros((), dtype=torch.long,
                                                                      device=prefix_embeds.device),
                                                          length, self.lm.dtype)
            out = self.lm.model(inputs_embeds=prefix_embeds, attention_mask=mask, position_ids=positions,
                                past_key_values=prefixes.cache, use_cache=True)
        self.prefix_len, self.prefix_lens = 0, list(lengths)  # generate (one row) has no prefix now
        self.prefix_count += 1
        return out.last_hidden_state

    @torch.no_grad()
    def generate(self, embeds: torch.Tensor, max_new_tokens: int, stop_ids: Sequence[int]) -> List[int]:
        """Greedy continuation of the prefix by ``embeds`` (1, C, D).

        Returns:
            the new token ids, up to ``max_new_tokens``, without the stop token that ended them.
        """
        if self.prefixes is not None:
            raise ValueError('generate continues the prefix of set_prefix; after set_prefixes use generate_batch')
        needed = self.prefix_len + embeds.shape[1] + max_new_tokens
        embeds = self._prepare(embeds, needed)
        fit_window(self.cache, needed)
        with torch.autocast(embeds.device.type, enabled=False):
            token = self._continuation_logits(embeds).argmax(-1, keepdim=True)
            new_ids = []
            for step in range(max_new_tokens):
                token_id = int(token.item())
                if token_id in stop_ids:
                    break
                new_ids.append(token_id)
                if step + 1 < max_new_tokens:
                    token = self._step(token)
        return new_ids

    @torch.no_grad()
    def generate_batch(self, continuations: Sequence[torch.Tensor], max_new_tokens: int,
                       stop_ids: Sequence[int], min_rows: int = 1,
                       prefix_rows: Optional[Sequence[int]] = None) -> List[List[int]]:
        """Greedy continuations of the prefixes by several sequences at once, each as :meth:`generate` would
        give it alone after its prefix (up to floating-point summation order).

        Args:
            continuations: ``N`` tensors ``(1, C_n, D)``.
            max_new_tokens: generation limit per row.
            stop_ids: token ids that end a row.
            min_rows: rows of the batched cache at least (unused rows decode nothing useful): a fixed row
                count keeps one CUDA graph for every batch up to it.
            prefix_rows: ``N`` indices of the prefix each continuation follows (rows of :meth:`set_prefixes`);
                None: the one prefix of :meth:`set_prefix` (or the first of :meth:`set_prefixes`) for all.

        Returns:
            per continuation, its new token ids without the stop token that ended them.
        """
        if not continuations:
            return []
        prefix_rows = [0] * len(continuations) if prefix_rows is None else list(prefix_rows)
        if len(prefix_rows) != len(continuations) or not all(0 <= r < len(self.prefix_lens) for r in prefix_rows):
            raise ValueError(f'prefix_rows {prefix_rows} must give each of the {len(continuations)} continuations '
                             f'one of the {len(self.prefix_lens)} prefixes')
        prefix_end = max(self.prefix_lens)  # every row's continuation starts after the longest prefix
        longest = max(c.shape[1] for c in continuations)
        needed = prefix_end + longest + max_new_tokens
        embeds = [self._prepare(c, needed) for c in continuations]
        batched = self._batched_rows(max(len(embeds), min_rows), embeds[0].device)
        fit_window(batched.cache, needed)
        source = torch.tensor(prefix_rows + [0] * (batched.rows - len(embeds)))
        prefix_lens = torch.tensor(self.prefix_lens)[source]
        padded = embeds[0].new_zeros((batched.rows, longest, embeds[0].shape[-1]))
        gap = torch.full((batched.rows,), longest, dtype=torch.long)
        for row, continuation in enumerate(embeds):
            padded[row, longest - continuation.shape[1]:] = continuation[0]
            gap[row] = longest - continuation.shape[1]
        batched.pad.copy_(prefix_end - prefix_lens + gap)
        prefix_lens = prefix_lens.to(batched.slots.device)
        batched.visible.copy_((batched.slots[None] < prefix_lens[:, None])
                              | (batched.slots[None] >= prefix_lens[:, None] + batched.pad[:, None]))
        with torch.autocast(padded.device.type, enabled=False):
            self._copy_prefixes(batched, source, prefix_end)
            mask, positions = batched.mask_and_positions(batched.cache.layers[0].position, longest, self.lm.dtype)
            logits = self.lm(inputs_embeds=padded, attention_mask=mask, position_ids=positions,
                             past_key_values=batched.cache, use_cache=True, logits_to_keep=1).logits
            tokens = logits[:, -1].argmax(-1, keepdim=True)
            generated = self._steps_until_stop(batched, tokens, len(embeds), max_new_tokens, stop_ids)
        return [self._until_stop(row, stop_ids) for row in zip(*generated)]

    def _steps_until_stop(self, batched: BatchedRows, tokens: torch.Tensor, count: int, max_new_tokens: int,
                          stop_ids: Sequence[int]) -> List[List[int]]:
        """Batched greedy steps after the first tokens ``tokens`` (rows, 1) until each of the first ``count`` rows
        met a stop id or ``max_new_tokens`` tokens were made. The host reads each step's tokens while the GPU
        runs the next step (on CUDA: a non-blocking copy to pinned memory and its event), so the GPU does not wait for
        the host's stop checks; when every row has stopped, the one step queued beyond is dropped.

        Returns:
            per step, the ``count`` rows' tokens.
        """
        on_host = torch.empty((max_new_tokens, batched.rows), dtype=torch.long, pin_memory=tokens.is_cuda)
        copied = self._copy_to_host(tokens, on_host[0])
        generated, stopped = [], [False] * count
        ahead = tokens.is_cuda  # queue the next step before the host waits for the last tokens
        for step in range(1, max_new_tokens + 1):
            more = step < max_new_tokens
            if more and ahead:
                tokens = self._batched_step(batched, tokens)
            if copied is not None:
                copied.synchronize()
            generated.append(on_host[step - 1, :count].tolist())
            stopped = [done or token in stop_ids for done, token in zip(stopped, generated[-1])]
            if all(stopped) or not more:
                break
            if not ahead:
                tokens = self._batched_step(batched, tokens)
            copied = self._copy_to_host(tokens, on_host[step])
        return generated

    @staticmethod
    def _copy_to_host(tokens: torch.Tensor, row: torch.Tensor) -> Optional[torch.cuda.Event]:
        """Copy ``tokens`` (rows, 1) into the host tensor ``row`` (rows,); on CUDA without waiting, returning the
        event that marks the copy done (None: already done)."""
        row.copy_(tokens[:, 0], non_blocking=tokens.is_cuda)
        if not tokens.is_cuda:
            return None
        event = torch.cuda.Event()
        event.record()
        return event

    @staticmethod
    def _until_stop(ids: Sequence[int], stop_ids: Sequence[int]) -> List[int]:
        """``ids`` up to (without) the first stop id."""
        out = []
        for token_id in ids:
            if token_id in stop_ids:
                break
            out.append(token_id)
        return out

    def _copy_prefixes(self, batched: BatchedRows, source: torch.Tensor, prefix_end: int) -> None:
        """Give row ``b`` of ``batched`` the keys and values of prefix ``source[b]`` (its first ``prefix_end``
        slots; later rounds with the same prefixes skip the copy) and seek every row to ``prefix_end``."""
        key = (self.prefix_count, tuple(source.tolist()))
        index = source.to(batched.slots.device)
        for layer, prefix_layer in zip(batched.cache.layers, self._prefix_layers()):
            layer.seek(prefix_end)
            if batched.prefix_key != key:
                layer.keys[:, :, :prefix_end] = prefix_layer.keys[index, :, :prefix_end]
                layer.values[:, :, :prefix_end] = prefix_layer.values[index, :, :prefix_end]
        batched.prefix_key = key

    def _prefix_layers(self) -> list:
        """The cache layers holding the current prefix(es): one row after :meth:`set_prefix`, one a prefix after
        :meth:`set_prefixes`."""
        return (self.cache if self.prefixes is None else self.prefixes.cache).layers

    def _batched_rows(self, rows: int, device: torch.device) -> BatchedRows:
        """The batched cache with at least ``rows`` rows, its layers allocated like the prefix cache's."""
        if self.batched is None or self.batched.rows < rows:
            self.batched = BatchedRows(len(self.cache.layers), rows, self.max_cache_len, device)
            for layer, prefix_layer in zip(self.batched.cache.layers, self._prefix_layers()):
                layer.lazy_initialization(prefix_layer.keys[:1].expand(rows, -1, -1, -1),
                                          prefix_layer.values[:1].expand(rows, -1, -1, -1))
                layer.position = layer.position.to(device)
        return self.batched

    @torch.no_grad()
    def forced_logits(self, embeds: torch.Tensor, token_ids: Sequence[int], compiled: bool) -> torch.Tensor:
        """The next-token logits along a fixed answer (teacher forcing): row 0 after the continuation
        ``embeds`` (1, C, D), row ``i`` after ``token_ids[i - 1]`` fed through the one-token step, eager or
        ``torch.compile``-d as ``compile_step`` compiles it (without the CUDA graph, which replays the
        compiled kernels). Comparing the two along the eager answer separates a near-tie between the top two
        logits from a real difference (``tools/benchmark.py --sections decode_agreement``).

        Returns:
            float32 ``(len(token_ids), vocab)``.
        """
        needed = self.prefix_len + embeds.shape[1] + len(token_ids)
        embeds = self._prepare(embeds, needed)
        fit_window(self.cache, needed)
        step = self._compiled(self._step_logits) if compiled else self._step_logits
        with torch.autocast(embeds.device.type, enabled=False):
            rows = [self._continuation_logits(embeds)]
            for token_id in token_ids[:-1]:
                rows.append(step(torch.tensor([[token_id]], device=embeds.device)))
        return torch.cat(rows).float()

    def _continuation_logits(self, embeds: torch.Tensor) -> torch.Tensor:
        """Rewind to the end of the prefix, encode the continuation ``embeds`` (1, C, D) after it; returns the
        next-token logits (1, vocab)."""
        self._rewind(self.prefix_len)
        return self.lm(inputs_embeds=embeds, past_key_values=self.cache, use_cache=True, logits_to_keep=1).logits[:, -1]

    # ------------------------------------------------------------------ one-token step
    def _compiled(self, step: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        """``step`` as ``compile_step`` compiles it (static shapes, ``compile_options``)."""
        return torch.compile(step, dynamic=False, options=self.compile_options)

    def _step_logits(self, token: torch.Tensor) -> torch.Tensor:
        """Next-token logits (1, vocab) after ``token`` (1, 1); writes one cache slot."""
        return self.lm(input_ids=token, past_key_values=self.cache, use_cache=True, logits_to_keep=1).logits[:, -1]

    def _eager_step(self, token: torch.Tensor) -> torch.Tensor:
        """Next greedy token (1, 1) after ``token`` (1, 1); writes one cache slot."""
        return self._step_logits(token).argmax(-1, keepdim=True)

    def _step(self, token: torch.Tensor) -> torch.Tensor:
        if not (self.use_cuda_graph and token.is_cuda):
            return self._eager_step(token)
        return self._graphed_step(self.graphs, self.cache, self._eager_step, token)

    def _eager_batched_step(self, batched: BatchedRows, tokens: torch.Tensor) -> torch.Tensor:
        """Next greedy tokens ``(rows, 1)`` after ``tokens`` ``(rows, 1)``; writes one slot of every row."""
        mask, positions = batched.mask_and_positions(batched.cache.layers[0].position, 1, self.lm.dtype)
        logits = self.lm(input_ids=tokens, attention_mask=mask, position_ids=positions,
                         past_key_values=batched.cache, use_cache=True, logits_to_keep=1).logits
        return logits[:, -1].argmax(-1, keepdim=True)

    def _batched_step(self, batched: BatchedRows, tokens: torch.Tensor) -> torch.Tensor:
        if not (self.use_cuda_graph and tokens.is_cuda):
            return self._eager_batched_step(batched, tokens)
        return self._graphed_step(batched.graphs, batched.cache, self._eager_batched_step, tokens, batched)

    def _graphed_step(self, graphs: Dict[int, tuple], cache: Cache, step: Callable[..., torch.Tensor],
                      tokens: torch.Tensor, *args) -> torch.Tensor:
        """``step(*args, tokens)`` replayed from the CUDA graph of ``cache``'s attention window in ``graphs``,
        captured on first use (``torch.compile``-d first when ``compile_step``; the warm-up run's cache write
        undone). Returns the graph's output tokens, overwritten by the next replay."""
        window = cache.layers[0].window
        if window not in graphs:
            position = cache.layers[0].position.clone()
            compiled = self._compiled(step) if self.compile_step else step
            static_tokens = tokens.clone()
            graphs[window] = (static_tokens,) + capture(
                lambda token: compiled(*args, token), (static_tokens,),
                undo_warmup=lambda: [layer.seek(position) for layer in cache.layers])
        static_tokens, graph, next_tokens = graphs[window]
        static_tokens.copy_(tokens)
        graph.replay()
        return next_tokens
