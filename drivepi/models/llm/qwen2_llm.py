"""The Qwen2 language model of DrivePI, loaded with Hugging Face ``from_pretrained``.

Wraps ``Qwen2ForCausalLM`` and its tokenizer from a local directory (real Qwen2.5 weights or the
tiny checkpoint of ``tools/make_tiny_llm.py``) and applies the training mode of the config:
``'frozen'`` (no LLM weight trains), ``'lora'`` (peft LoRA adapters train, base weights frozen) or
``'full'`` (every weight trains); optional gradient checkpointing and bf16 weights. Answers are decoded
greedily by :class:`GreedyDecoder` (static KV cache, CUDA-graph steps on a GPU).
"""
import types
import warnings
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModule
from peft import LoraConfig, get_peft_model
from peft.tuners.tuners_utils import BaseTunerLayer
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

from drivepi.models.cuda_graphs import GraphedFunction
from drivepi.registry import MODELS

from .greedy_decoder import GreedyDecoder
from .prompt import IGNORE_INDEX
from .special_tokens import DRIVEPI_SPECIAL_TOKENS, ENDOFTEXT, IM_END, QWEN_SPECIAL_TOKENS

TRAIN_MODES = ('frozen', 'lora', 'full')
WEIGHT_PATTERNS = ('*.safetensors', 'pytorch_model*.bin')
LOSS_AVERAGES = ('token', 'answer')
DTYPES = dict(float32=torch.float32, bfloat16=torch.bfloat16, float16=torch.float16)
# attention kernels of a training forward: every SDPA backend but cuDNN's, which builds a new graph for each new
# sequence length (a training batch's length changes every step): 14 ms of host time per forward and 20 per
# backward call for 0.4 ms of GPU work (H100, GPU mini recipe, 2026-12-07, tools/benchmark_training.py --profile)
TRAINING_ATTENTION = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


def has_weights(llm_path: Path) -> bool:
    """Whether ``llm_path`` holds a Hugging Face checkpoint with weights."""
    return (llm_path / 'config.json').is_file() and any(
        any(llm_path.glob(pattern)) for pattern in WEIGHT_PATTERNS)


def build_causal_lm(llm_path: Path, llm_config: Optional[dict], dtype: torch.dtype) -> Qwen2ForCausalLM:
    """``Qwen2ForCausalLM.from_pretrained(llm_path)``, or random init of ``llm_config`` with a warning.

    Args:
        llm_path: local Hugging Face checkpoint directory.
        llm_config: ``Qwen2Config`` keyword arguments used only when ``llm_path`` has no weights.
        dtype: parameter dtype.
    """
    if has_weights(llm_path):
        return Qwen2ForCausalLM.from_pretrained(llm_path, dtype=dtype)
    if llm_config is None:
        raise FileNotFoundError(f'no Qwen2 weights (config.json + *.safetensors) in {llm_path} and no '
                                '`llm_config` to build a randomly initialised model from')
    message = (f'!!! NO LLM WEIGHTS in {llm_path}: DrivePI starts from a RANDOMLY INITIALISED Qwen2 '
               f'({llm_config}). Text answers are meaningless until trained; put a Hugging Face '
               'checkpoint (e.g. Qwen2.5-0.5B-Instruct) there to use real weights. !!!')
    warnings.warn(message)
    print_log(message, logger='current', level=30)
    return Qwen2ForCausalLM(Qwen2Config(**llm_config)).to(dtype)


def cast_outside_autocast(layer: BaseTunerLayer, x: Optional[torch.Tensor], dtype: torch.dtype):
    """peft's cast of a LoRA layer's input to its adapters' dtype, skipped under autocast.

    With bf16 base weights and float32 adapters, peft casts every adapter input to float32, which the
    adapters' autocast matmuls cast straight back to bf16: two casts of a whole activation per projection
    (and again in the gradient-checkpointing recompute and backward) that change no value. Outside
    autocast the cast still happens, as matmuls of mixed dtypes need it.
    """
    if x is None or x.dtype == dtype or torch.is_autocast_enabled(x.device.type):
        return x
    return x.to(dtype)


def resolve_tokenizer_path(llm_path: Path, tokenizer_path: Optional[str],
                           fallback_tokenizer_path: Optional[str]) -> Path:
    """``tokenizer_path`` (default ``llm_path``) if it holds ``tokenizer.json``; the fallback (with a
    warning) only when ``llm_path`` has no weights either; otherwise a FileNotFoundError."""
    path = Path(tokenizer_path or llm_path)
    if (path / 'tokenizer.json').is_file():
        return path
    if fallback_tokenizer_path and not has_weights(llm_path) and \
            (Path(fallback_tokenizer_path) / 'tokenizer.json').is_file():
        warnings.warn(f'no tokenizer in {path} and no weights in {llm_path}: using the fallback tokenizer '
                      f'{fallback_tokenizer_path} for a randomly initialised LLM')
        return Path(fallback_tokenizer_path)
    raise FileNotFoundError(f'no tokenizer.json in {path}; set tokenizer_path to a Hugging Face tokenizer '
                            'directory (tools/make_tiny_llm.py writes one)')


def answer_index(selected: torch.Tensor) -> torch.Tensor:
    """Which answer each labelled token belongs to: an answer is a run of consecutive labelled positions.

    Args:
        selected: bool (B, L), True on labelled tokens.

    Returns:
        long (B, L): 0, 1, 2, ... numbering the runs of True across the flattened batch (row-major, a run
        never crosses rows); meaningless where ``selected`` is False.
    """
    previous = torch.zeros_like(selected)
    previous[:, 1:] = selected[:, :-1]
    starts = selected & ~previous
    return starts.flatten().cumsum(0).view_as(selected) - 1


@MODELS.register_module()
class Qwen2LLM(BaseModule):
    """Qwen2 causal LM + tokenizer with DrivePI's special tokens and a configurable training mode.

    Args:
        llm_path: local directory of a Hugging Face Qwen2 checkpoint.
        tokenizer_path: tokenizer directory; defaults to ``llm_path``.
        fallback_tokenizer_path: tokenizer used only when ``llm_path`` has no weights and
            ``tokenizer_path`` no tokenizer (random-init smoke runs of a full-size config), with a warning.
        llm_config: ``Qwen2Config`` kwargs for random init when ``llm_path`` has no weights.
        train_mode: ``'frozen'``, ``'lora'`` or ``'full'``.
        lora_cfg: ``peft.LoraConfig`` kwargs for ``train_mode='lora'``.
        gradient_checkpointing: recompute decoder layers in backward to save memory.
        dtype: ``'float32'``, ``'bfloat16'`` or ``'float16'`` weights.
        loss_weight: multiplier of the answer-token cross-entropy (``loss_text``).
        loss_average: ``'token'`` (every answer token weighs the same, so a 60-token trajectory outweighs
            thirty yes/no answers) or ``'answer'`` (each answer's tokens are averaged first, then the
            answers: every question weighs the same, whatever its answer length).
        decode_cache_len: positions of the decoding KV cache (prefix + question history + answer).
        cuda_graphs: on a GPU, replay inference passes from CUDA graphs: each decoded token's step and
            the no-grad forward of an unpadded sequence (``hidden_states`` outside training).
        compile_decoder: ``torch.compile`` the decoding step before its CUDA graph is captured (fewer,
            fused kernels per token: 1.83 instead of 3.47 ms/token for Qwen2.5-0.5B on an H100, 2026-12-07);
            the first answer on a GPU waits for the compilation (~30 s, once for single and once for batched
            decoding). Its tokens equal eager decoding's except where eager's top two logits are closer than
            the compiled step's bf16 rounding (``tools/benchmark.py --sections decode_agreement``: 4 of 256
            tokens, each such a near-tie). Off CUDA the step runs eagerly whatever this says.
        decode_compile_options: Inductor options of that compilation (``GreedyDecoder`` ``compile_options``);
            None: Inductor's defaults.
        compile_training: on a GPU, run the decoder's training pass (``hidden_states`` with gradients) through
            ``torch.compile`` with dynamic shapes (one compilation for every prompt length): each layer's
            elementwise work (RMSNorm, rotary embedding, LoRA scaling, the SwiGLU gate) and its backward fuse
            into fewer kernels; the first training step waits for the compilation. Inference and CPU passes run
            eagerly whatever this says.
        decode_batch_rows: continuations that :meth:`generate_batch` decodes together (rows of the batched KV
            cache, ``decode_batch_rows x decode_cache_len`` positions); 1 decodes them one after another.
        batch_decoding_devices: device types on which :meth:`generate_batch` batches (a GPU, where a step costs
            kernel launches, not arithmetic); elsewhere it decodes one continuation after another.
    """

    def __init__(self, llm_path: str, tokenizer_path: Optional[str] = None,
                 fallback_tokenizer_path: Optional[str] = None, llm_config: Optional[dict] = None,
                 train_mode: str = 'lora', lora_cfg: Optional[dict] = None, gradient_checkpointing: bool = False,
                 dtype: str = 'float32', loss_weight: float = 1.0, loss_average: str = 'token',
                 decode_cache_len: int = 4096, cuda_graphs: bool = True, compile_decoder: bool = True,
                 decode_compile_options: Optional[dict] = None, compile_training: bool = False,
                 decode_batch_rows: int = 16, batch_decoding_devices: Sequence[str] = ('cuda',)):
        super().__init__()
        if train_mode not in TRAIN_MODES:
            raise ValueError(f'train_mode {train_mode!r} is not one of {TRAIN_MODES}')
        if loss_average not in LOSS_AVERAGES:
            raise ValueError(f'loss_average {loss_average!r} is not one of {LOSS_AVERAGES}')
        if dtype not in DTYPES:
            raise ValueError(f'dtype {dtype!r} is not one of {tuple(DTYPES)}')
        self.tokenizer = AutoTokenizer.from_pretrained(
            resolve_tokenizer_path(Path(llm_path), tokenizer_path, fallback_tokenizer_path))
        vocab = self.tokenizer.get_vocab()
        self.tokenizer.add_tokens([t for t in QWEN_SPECIAL_TOKENS + DRIVEPI_SPECIAL_TOKENS if t not in vocab],
                                  special_tokens=True)
        causal_lm = build_causal_lm(Path(llm_path), llm_config, DTYPES[dtype])
        if len(self.tokenizer) > causal_lm.config.vocab_size:
            causal_lm.resize_token_embeddings(len(self.tokenizer))
        self.train_mode = train_mode
        self.loss_weight = loss_weight
        self.loss_average = loss_average
        causal_lm.requires_grad_(train_mode == 'full')
        if gradient_checkpointing:
            causal_lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs=dict(use_reentrant=False))
        self.model = get_peft_model(causal_lm, LoraConfig(**(lora_cfg or {}))) \
            if train_mode == 'lora' else causal_lm
        for layer in self.model.modules():
            if isinstance(layer, BaseTunerLayer):
                layer._cast_input_dtype = types.MethodType(cast_outside_autocast, layer)
        self.stop_ids = [self.tokenizer.convert_tokens_to_ids(t) for t in (IM_END, ENDOFTEXT)]
        self.decode_cache_len = decode_cache_len
        self.compile_decoder, self.decode_compile_options = compile_decoder, decode_compile_options
        if decode_batch_rows < 1:
            raise ValueError(f'decode_batch_rows must be at least 1, got {decode_batch_rows}')
        self.decode_batch_rows = decode_batch_rows
        self.batch_decoding_devices = tuple(batch_decoding_devices)
        self._decoder: Optional[GreedyDecoder] = None
        self._graphed_forward = GraphedFunction(self._last_hidden_state)
        self.compile_training = compile_training
        self._compiled_training_pass: Optional[Callable[..., torch.Tensor]] = None  # compiled on first use
        self.cuda_graphs = cuda_graphs

    def init_weights(self) -> None:
        """Keep the loaded weights: MMEngine's recursive init must not re-initialise the checkpoint."""

    @property
    def causal_lm(self) -> Qwen2ForCausalLM:
        """The (LoRA-injected, if any) ``Qwen2ForCausalLM``."""
        return self.model.get_base_model() if self.train_mode == 'lora' else self.model

    @property
    def hidden_size(self) -> int:
        return self.causal_lm.config.hidden_size

    @property
    def dtype(self) -> torch.dtype:
        return self.causal_lm.model.embed_tokens.weight.dtype

    @property
    def cuda_graphs(self) -> bool:
        """Whether inference passes replay CUDA graphs on a GPU (settable; drops captured graphs)."""
        return self._cuda_graphs

    @cuda_graphs.setter
    def cuda_graphs(self, enabled: bool) -> None:
        self._cuda_graphs, self._decoder = enabled, None
        self._graphed_forward.reset()

    def merge_lora(self) -> None:
        """Fold the LoRA adapters into the base weights and drop the peft wrappers (deployment: the
        same outputs with fewer, larger matmuls). Afterwards the LLM is frozen."""
        if self.train_mode != 'lora':
            raise ValueError(f"merge_lora needs train_mode='lora', this LLM is '{self.train_mode}'")
        self.model = self.model.merge_and_unload()
        self.model.requires_grad_(False)
        self.train_mode = 'frozen'
        self._decoder = None  # the CUDA graphs would replay the unmerged weights
        self._graphed_forward.reset()

    def embed_ids(self, ids) -> torch.Tensor:
        """Token embeddings ``(..., D)`` in the LLM dtype of token ids (long tensor or list of ints, any
        shape), on the LLM's device."""
        embed_tokens = self.causal_lm.get_input_embeddings()
        return embed_tokens(torch.as_tensor(ids, dtype=torch.long, device=embed_tokens.weight.device))

    def decode(self, ids) -> str:
        """Text of token ids (e.g. ``generate``'s output), special tokens dropped, surrounding spaces stripped."""
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()

    def embed(self, input_ids: torch.Tensor, spatial_mask: torch.Tensor, spatial_embeds: torch.Tensor,
              plan_mask: torch.Tensor, plan_embeds: torch.Tensor) -> torch.Tensor:
        """Token embeddings with the placeholders replaced.

        Args:
            input_ids: long (B, L).
            spatial_mask, plan_mask: bool (B, L) with K and Q True entries per row.
            spatial_embeds: (B, K, D) projected spatial tokens; plan_embeds: (B, Q, D) planning queries.

        Returns:
            (B, L, D) input embeddings in the LLM dtype.
        """
        embeds = self.embed_ids(input_ids)
        embeds = embeds.masked_scatter(spatial_mask[..., None], spatial_embeds.to(embeds.dtype))
        return embeds.masked_scatter(plan_mask[..., None], plan_embeds.to(embeds.dtype))

    def hidden_states(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Last-layer (final-norm) hidden states (B, L, D) as float32.

        ``attention_mask`` (B, L) may live on any device: a CPU mask (as the prompt builds it) is checked
        for padding without a host synchronisation with the GPU.
        """
        if self._cuda_graphs and inputs_embeds.is_cuda and not torch.is_grad_enabled() and not self.training \
                and bool(attention_mask.all()):
            return self._graphed_forward(inputs_embeds).float()
        attention_mask = attention_mask.to(inputs_embeds.device)
        if not torch.is_grad_enabled():
            return self._last_hidden_state(inputs_embeds, attention_mask).float()
        with sdpa_kernel(TRAINING_ATTENTION):
            return self._training_pass(inputs_embeds.is_cuda)(inputs_embeds, attention_mask).float()

    def _training_pass(self, on_cuda: bool) -> Callable[..., torch.Tensor]:
        """The decoder pass with gradients: :meth:`_last_hidden_state`, ``torch.compile``-d (once) where
        ``compile_training`` and on a GPU."""
        if not (self.compile_training and on_cuda):
            return self._last_hidden_state
        if self._compiled_training_pass is None:
            self._compiled_training_pass = torch.compile(self._last_hidden_state, dynamic=True)
        return self._compiled_training_pass

    def _last_hidden_state(self, inputs_embeds: torch.Tensor, attention_mask: Optional[torch.Tensor] = None):
        """(B, L, D) final-norm hidden states in the LLM dtype (the function the CUDA graph captures)."""
        return self.causal_lm.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                    use_cache=False).last_hidden_state

    def text_loss(self, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Next-token cross-entropy on labelled (answer) tokens only, averaged as ``loss_average`` says.

        Args:
            hidden: (B, L, D) hidden states; labels: long (B, L), ``IGNORE_INDEX`` where unlabelled.

        Returns:
            ``loss_weight`` x the mean over answer tokens (``'token'``) or over answers of each answer's
            token mean (``'answer'``); a zero that keeps the graph when there are none.
        """
        targets = labels[:, 1:]
        selected = targets != IGNORE_INDEX
        if not selected.any():
            return hidden.sum() * 0.0
        logits = self.causal_lm.lm_head(hidden[:, :-1][selected].to(self.dtype)).float()
        if self.loss_average == 'token':
            return self.loss_weight * F.cross_entropy(logits, targets[selected])
        token_losses = F.cross_entropy(logits, targets[selected], reduction='none')
        answer_ids = answer_index(selected)[selected]
        answer_sums = torch.zeros(int(answer_ids.max()) + 1, device=logits.device).index_add_(0, answer_ids,
                                                                                             token_losses)
        answer_lengths = torch.bincount(answer_ids).clamp(min=1)
        return self.loss_weight * (answer_sums / answer_lengths).mean()

    @property
    def decoder(self) -> GreedyDecoder:
        """The greedy decoder of this LLM (built on first use)."""
        if self._decoder is None:
            self._decoder = GreedyDecoder(self.causal_lm, self.decode_cache_len, self._cuda_graphs,
                                          self.compile_decoder, self.decode_compile_options)
        return self._decoder

    def prefill(self, prefix_embeds: torch.Tensor, lengths: Optional[Sequence[int]] = None) -> torch.Tensor:
        """Encode prefixes (S, P, D) once; ``generate(..., after_prefix=True)`` (one prefix) and
        :meth:`generate_batch` calls continue them. Several prefixes (right-padded, row ``s`` holding
        ``lengths[s]`` positions) need batched decoding (:meth:`batches_decoding`).

        Returns:
            the prefixes' last-layer (final-norm) hidden states (S, P, D) as float32, as ``hidden_states``.
        """
        if prefix_embeds.shape[0] == 1:
            return self.decoder.set_prefix(prefix_embeds).float()
        if not self.batches_decoding(prefix_embeds.device):
            raise ValueError(f'several prefixes at once need batched decoding, which is off on '
                             f'{prefix_embeds.device.type} (decode_batch_rows={self.decode_batch_rows}, '
                             f'batch_decoding_devices={self.batch_decoding_devices}): prefill one at a time')
        return self.decoder.set_prefixes(prefix_embeds, lengths).float()

    def batches_decoding(self, device: torch.device) -> bool:
        """Whether :meth:`generate_batch` decodes continuations together on ``device``."""
        return self.decode_batch_rows > 1 and device.type in self.batch_decoding_devices

    def generate(self, inputs_embeds: torch.Tensor, max_new_tokens: int, after_prefix: bool = False) -> List[int]:
        """Greedy decoding with the KV cache for one unpadded sequence.

        Args:
            inputs_embeds: (1, L, D) the whole context or, with ``after_prefix``, its continuation after
                the last ``prefill``.
            max_new_tokens: generation limit.

        Returns:
            The new token ids, without the closing stop token.
        """
        if not after_prefix:
            self.decoder.set_prefix(None)
        return self.decoder.generate(inputs_embeds, max_new_tokens, self.stop_ids)

    def generate_batch(self, continuations: Sequence[torch.Tensor], max_new_tokens: int,
                       prefix_rows: Optional[Sequence[int]] = None) -> List[List[int]]:
        """Greedy decoding of several continuations ``(1, C_n, D)`` of the last ``prefill``'s prefixes
        (``prefix_rows``: which prefix each continues; None: the first), each as ``generate(...,
        after_prefix=True)`` gives it alone after its prefix. Where :meth:`batches_decoding` (a GPU by default),
        ``decode_batch_rows`` at a time, every batch filling all rows so that one CUDA graph serves every batch
        size; elsewhere one after another: on the CPU, rows that wait for the batch's longest answer cost more
        than they save (2 cores, model-zoo mini checkpoint: 0.46-0.53 frames/s one at a time, 0.36-0.38
        batched).

        Returns:
            per continuation, the new token ids without the closing stop token.
        """
        if not continuations:
            return []
        if not self.batches_decoding(continuations[0].device):
            if len(self.decoder.prefix_lens) > 1:
                raise ValueError('continuations of several prefixes need batched decoding')
            return [self.decoder.generate(c, max_new_tokens, self.stop_ids) for c in continuations]
        rows = self.decode_batch_rows
        prefix_rows = [0] * len(continuations) if prefix_rows is None else list(prefix_rows)
        min_rows = rows if self._cuda_graphs and continuations[0].is_cuda else 1
        return [ids for start in range(0, len(continuations), rows)
                for ids in self.decoder.generate_batch(continuations[start:start + rows], max_new_tokens,
                                                       self.stop_ids, min_rows, prefix_rows[start:start + rows])]
