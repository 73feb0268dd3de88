"""Write a tiny Qwen2 checkpoint (Hugging Face directory format) with a driving-QA BPE tokenizer.

Example:
    python tools/make_tiny_llm.py --out-dir data/drivepi-mini/tiny_qwen2 \
        --qa-file data/drivepi-mini/qa_train.jsonl
"""
import argparse
from typing import List

from drivepi.datasets.qa_schema import load_qa_file
from drivepi.testing import make_tiny_llm


def qa_texts(qa_files: List[str]) -> List[str]:
    """Every question and answer string of the given QA JSONL files."""
    texts = []
    for path in qa_files:
        for conversations in load_qa_file(path).values():
            for conversation in conversations:
                for turn in conversation.turns:
                    texts += [turn.question, turn.answer]
    return texts


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out-dir', required=True, help='checkpoint directory to write')
    parser.add_argument('--qa-file', action='append', default=[],
                        help='QA JSONL whose text trains the tokenizer too (repeatable)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--vocab-size', type=int, default=1024)
    parser.add_argument('--hidden-size', type=int, default=64)
    parser.add_argument('--num-layers', type=int, default=2)
    parser.add_argument('--num-heads', type=int, default=4)
    parser.add_argument('--num-kv-heads', type=int, default=2)
    parser.add_argument('--overwrite', action='store_true', help='replace an existing checkpoint')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    out = make_tiny_llm(args.out_dir, seed=args.seed, texts=qa_texts(args.qa_file),
                        vocab_size=args.vocab_size, hidden_size=args.hidden_size,
                        num_layers=args.num_layers, num_heads=args.num_heads,
                        num_kv_heads=args.num_kv_heads, overwrite=args.overwrite)
    print(f'tiny Qwen2 checkpoint written to {out}')


if __name__ == '__main__':
    main()
