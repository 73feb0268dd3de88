"""GreedyDecoder's compiled CUDA-graph step (the plain graph and eager steps: tests/models/test_qwen2_llm.py)."""
import pytest
import torch

from drivepi.models.llm import DrivePIPrompt, Qwen2LLM


@pytest.mark.skipif(not torch.cuda.is_available(), reason='compiled CUDA-graph decoding needs a CUDA GPU')
def test_compiled_graph_decoding_matches_eager_decoding(tiny_llm_dir):
    eager = Qwen2LLM(str(tiny_llm_dir), train_mode='frozen', cuda_graphs=False).eval().cuda()
    compiled = Qwen2LLM(str(tiny_llm_dir), train_mode='frozen', compile_decoder=True).eval().cuda()
    prompt = DrivePIPrompt(eager.tokenizer)
    embed = eager.causal_lm.get_input_embeddings()
    prefix = embed(torch.tensor([prompt.prefix_ids(1, 0, 0)], device='cuda'))
    for question in ('Are there any cars?', 'How many cars are there?'):
        tail = embed(torch.tensor([prompt.question_ids(question)], device='cuda'))
        for llm in (eager, compiled):
            llm.prefill(prefix)
        expected = eager.generate(tail, 12, after_prefix=True)
        assert compiled.generate(tail, 12, after_prefix=True) == expected
    assert compiled.decoder.graph is not None and compiled.decoder.compile_step
