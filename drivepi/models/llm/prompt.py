"""The DrivePI prompt: Qwen chat format with spatial and planning placeholders.

One sequence per sample, in the Qwen2 chat format::

    <|im_start|>system\n{instruction}<|spatial|> x K <|plan|> x Q<|im_end|>\n
    <|im_start|>user\n{question 1}<|im_end|>\n<|im_start|>assistant\n{answer 1}<|im_end|>\n
    ... (every turn of every conversation of the sample)

Only answer tokens and the ``<|im_end|>`` closing each answer carry a label (answer-only loss);
every other label is ``IGNORE_INDEX``. Labels are aligned with ``input_ids`` (not shifted), the
Hugging Face convention: the logit at position t is trained on ``labels[t + 1]``.

Places named in the text (``x = 12.2 m, y = -3.4 m``, :func:`drivepi.evaluation.qa_accuracy.format_place`)
are found again in the token ids (:meth:`DrivePIPrompt.token_places`): the model gives their tokens the scene
token of that place, as Ferret / GPT4RoI give a referred region its visual feature, so a question about a
place does not have to be grounded by reading digits.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch

from drivepi.device_copies import to_device
from drivepi.evaluation.qa_accuracy import find_places
from drivepi.geometry import COMMANDS

from .special_tokens import IM_END, IM_START, PLAN_TOKEN, SPATIAL_TOKEN

IGNORE_INDEX = -100
DEFAULT_INSTRUCTION = ('You are DrivePI, an autonomous driving assistant. The driving command is '
                       '{command}. The scene around the ego vehicle follows as spatial tokens, then '
                       'planning queries.')


@dataclass
class PromptBatch:
    """A right-padded batch of token sequences.

    Attributes:
        input_ids: long (B, L).
        attention_mask: long (B, L), 1 on real tokens.
        labels: long (B, L), token id on answer tokens, ``IGNORE_INDEX`` elsewhere.
        spatial_mask: bool (B, L), True at the K ``<|spatial|>`` positions of each row.
        plan_mask: bool (B, L), True at the Q ``<|plan|>`` positions of each row.
    """
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    spatial_mask: torch.Tensor
    plan_mask: torch.Tensor

    def to(self, device) -> 'PromptBatch':
        """The same batch on ``device``."""
        return PromptBatch(**{name: to_device(value, device) for name, value in vars(self).items()})


class DrivePIPrompt:
    """Turns instructions, placeholders and conversations into token ids and answer-only labels.

    Args:
        tokenizer: a Hugging Face tokenizer holding the Qwen chat tokens and DrivePI's placeholders.
        instruction: system text; ``{command}`` is replaced by the driving command phrase
            (None: ``DEFAULT_INSTRUCTION``).
    """

    def __init__(self, tokenizer, instruction: Optional[str] = None):
        self.tokenizer = tokenizer
        self.instruction = instruction or DEFAULT_INSTRUCTION
        self.spatial_id = self._single_id(SPATIAL_TOKEN)
        self.plan_id = self._single_id(PLAN_TOKEN)
        self.im_end_id = self._single_id(IM_END)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.im_end_id

    def _single_id(self, token: str) -> int:
        ids = self.tokenizer.encode(token, add_special_tokens=False)
        if len(ids) != 1:
            raise ValueError(f'tokenizer splits special token {token} into {ids}; add it as a special token')
        return ids[0]

    def _encode(self, text: str) -> List[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def token_places(self, ids: Sequence[int]) -> torch.Tensor:
        """(N, 2) float: for each of the N token ids the place ``(x, y)`` (m) whose text it is part of, NaN for
        tokens outside every place."""
        pieces = self.tokenizer.batch_decode([[i] for i in ids])
        lengths = torch.tensor([len(piece) for piece in pieces])
        ends = lengths.cumsum(0)
        starts = ends - lengths
        places = torch.full((len(ids), 2), float('nan'))
        for start, end, x, y in find_places(''.join(pieces)):
            places[(starts < end) & (ends > start)] = torch.tensor([x, y])
        return places

    def prefix_ids(self, command: int, num_spatial: int, num_plan: int) -> List[int]:
        """The system message holding the instruction, K spatial and Q planning placeholders."""
        if not 0 <= command < len(COMMANDS):
            raise ValueError(f'driving command {command} is not one of 0..{len(COMMANDS) - 1} ({COMMANDS})')
        text = f'{IM_START}system\n' + self.instruction.format(command=COMMANDS[command])
        return (self._encode(text) + [self.spatial_id] * num_spatial + [self.plan_id] * num_plan
                + self._encode(f'{IM_END}\n'))

    def question_ids(self, question: str) -> List[int]:
        """A user turn followed by the assistant header (where generation starts)."""
        return self._encode(f'{IM_START}user\n{question}{IM_END}\n{IM_START}assistant\n')

    def answer_ids(self, answer: str) -> List[int]:
        """The answer tokens and the closing ``<|im_end|>`` (all labelled); the newline is not."""
        return self._encode(answer) + [self.im_end_id]

    def turn_ids(self, question: str, answer: str) -> Tuple[List[int], List[int]]:
        """Token ids and labels of one question-answer turn (answer and its ``<|im_end|>`` labelled)."""
        question_ids, answer_ids = self.question_ids(question), self.answer_ids(answer)
        newline = self._encode('\n')
        return (question_ids + answer_ids + newline,
                [IGNORE_INDEX] * len(question_ids) + answer_ids + [IGNORE_INDEX] * len(newline))

    def sample_ids(self, command: int, num_spatial: int, num_plan: int,
                   conversations: Sequence[Sequence[dict]]) -> Tuple[List[int], List[int]]:
        """Token ids and labels of one sample with all turns of all its conversations.

        Returns:
            (input_ids, labels), two lists of equal length.
        """
        ids = self.prefix_ids(command, num_spatial, num_plan)
        labels = [IGNORE_INDEX] * len(ids)
        for conversation in conversations:
            for turn in conversation:
                turn_ids, turn_labels = self.turn_ids(turn['question'], turn['answer'])
                ids += turn_ids
                labels += turn_labels
        return ids, labels

    def batch(self, commands: Sequence[int], num_spatial: int, num_plan: int,
              conversations: Sequence[Sequence[Sequence[dict]]]) -> PromptBatch:
        """Right-padded training batch of ``len(commands)`` samples."""
        rows = [self.sample_ids(c, num_spatial, num_plan, conv) for c, conv in zip(commands, conversations)]
        length = max(len(ids) for ids, _ in rows)
        input_ids = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
        for i, (ids, lab) in enumerate(rows):
            input_ids[i, :len(ids)] = torch.tensor(ids)
            labels[i, :len(lab)] = torch.tensor(lab)
            attention_mask[i, :len(ids)] = 1
        return PromptBatch(input_ids, attention_mask, labels,
                           spatial_mask=input_ids == self.spatial_id, plan_mask=input_ids == self.plan_id)
