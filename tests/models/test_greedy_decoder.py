"""GreedyDecoder's compiled CUDA-graph step (the plain graph and eager steps: tests/models/test_qwen2_llm.py)."""
import pytest
import torch

from drivepi.models.llm import DrivePIPrompt, Qwen2LLM
from drivepi.models.llm.greedy_decoder import attention_window


@pytest.mark.skipif(not torch.cuda.is_available(), reason='compiled CUDA-graph decoding needs a CUDA GPU')
def test_compiled_graph_decoding_matches_eager_decoding_one_row_and_batched(tiny_llm_dir):
    eager = Qwen2LLM(str(tiny_llm_dir), train_mode='frozen', cuda_graphs=False).eval().cuda()
    compiled = Qwen2LLM(str(tiny_llm_dir), train_mode='frozen', compile_decoder=True).eval().cuda()
    prompt = DrivePIPrompt(eager.tokenizer)
    embed = eager.causal_lm.get_input_embeddings()
    prefix = embed(torch.tensor([prompt.prefix_ids(1, 0, 0)], device='cuda'))
    tails, answers = [], []
    for question in ('Are there any cars?', 'How many cars are there?', 'Is it moving?'):
        tails.append(embed(torch.tensor([prompt.question_ids(question)], device='cuda')))
        for llm in (eager, compiled):
            llm.prefill(prefix)
        answers.append(eager.generate(tails[-1], 12, after_prefix=True))
        assert compiled.generate(tails[-1], 12, after_prefix=True) == answers[-1]
    assert compiled.decoder.graphs and compiled.decoder.compile_step
    # the batched step (the turns of a frame's conversations in evaluation) compiles and replays the same way
    assert compiled.generate_batch(tails, 12) == answers
    assert compiled.decoder.batched.graphs


def _random_llm(tiny_llm_dir, device: str) -> Qwen2LLM:
    """The tiny LLM with large random weights: answers that change from token to token. On CUDA the plain
    graph of the step (the compiled one, the default, has its own test above: one compilation per row count
    would be slow, and large random weights make bf16 near-ties)."""
    llm = Qwen2LLM(str(tiny_llm_dir), train_mode='frozen', compile_decoder=False).eval().to(device)
    torch.manual_seed(0)
    for param in llm.parameters():
        param.data.normal_(std=0.5)
    return llm


def _prefix_and_questions(llm: Qwen2LLM, device: str):
    """A prefix (prompt ids and 7 random 'spatial' embeddings) and five questions of different lengths."""
    prompt = DrivePIPrompt(llm.tokenizer)
    embed = llm.causal_lm.get_input_embeddings()
    generator = torch.Generator().manual_seed(1)
    prefix = torch.cat([embed(torch.tensor([prompt.prefix_ids(1, 0, 0)], device=device)),
                        torch.randn(1, 7, llm.hidden_size, generator=generator).to(device)], dim=1)
    questions = ['Are there any cars?', 'How many cars are there?', 'What is at x = 3 m, y = -2 m?',
                 'Is it moving?', 'hi']
    return prefix, [embed(torch.tensor([prompt.question_ids(q)], device=device)) for q in questions]


@pytest.mark.parametrize('device', ['cpu', pytest.param('cuda', marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason='the batched CUDA-graph step needs a CUDA GPU'))])
def test_batched_decoding_gives_each_continuation_its_own_answer(tiny_llm_dir, device):
    """Continuations of different lengths decoded together (padding between the prefix and each of them, one 4D
    mask) give exactly the tokens that decoding each alone gives, whatever the rows (2 rows: three batches, the
    last with one real row beside an empty one); the prefix cache is left intact, and a new prefix reaches the
    batched rows. ``Qwen2LLM.generate_batch``
    batches on CUDA (every batch filling all rows, one graph) and decodes one at a time on the CPU."""
    llm = _random_llm(tiny_llm_dir, device)
    prefix, tails = _prefix_and_questions(llm, device)
    with torch.no_grad():
        llm.prefill(prefix)
        alone = [llm.generate(tail, 12, after_prefix=True) for tail in tails]
        assert len({token for ids in alone for token in ids}) > 10 and len(set(map(tuple, alone))) == 5
        for rows in (16, 2, 1):
            llm.decode_batch_rows = rows
            assert llm.generate_batch(tails, 12) == alone, rows
        for rows in (5, 2):
            assert [ids for start in range(0, 5, rows) for ids in llm.decoder.generate_batch(
                tails[start:start + rows], 12, llm.stop_ids, min_rows=rows)] == alone, rows
        assert llm.generate(tails[1], 12, after_prefix=True) == alone[1]  # the single-row path afterwards
        llm.prefill(prefix.flip(1))  # a new prefix replaces the one the batched rows hold
        alone = [llm.generate(tail, 12, after_prefix=True) for tail in tails]
        assert llm.decoder.generate_batch(tails, 12, llm.stop_ids, min_rows=5) == alone
    assert llm.decoder.batched.rows == (16 if device == 'cuda' else 5)
    assert bool(llm.decoder.batched.graphs) == (device == 'cuda')


@pytest.mark.parametrize('device', ['cpu', pytest.param('cuda', marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason='the batched CUDA-graph step needs a CUDA GPU'))])
def test_prefixes_of_several_frames_decode_together_as_each_alone(tiny_llm_dir, device):
    """Three prefixes of different lengths, encoded in one right-padded pass (``set_prefixes``), and
    continuations of each, decoded in one batch: every row gets the tokens it gets after its own prefix alone,
    and each prefix's hidden states are those of its own pass (padding hidden). The single-prefix path works
    again after ``set_prefix``; ``generate`` refuses to guess a prefix among several."""
    llm = _random_llm(tiny_llm_dir, device)
    llm.batch_decoding_devices = ('cpu', 'cuda')
    prefix, tails = _prefix_and_questions(llm, device)
    prefixes = [prefix, prefix[:, 3:].flip(1), prefix[:, :-4]]  # 14 + 7, 18, 17 positions
    owners = [0, 2, 1, 1, 2, 0, 1]
    continuations = [tails[i % len(tails)] for i in range(len(owners))]
    with torch.no_grad():
        alone, hidden_alone = [], []
        for owner, continuation in zip(owners, continuations):
            llm.prefill(prefixes[owner])
            alone.append(llm.generate(continuation, 12, after_prefix=True))
        for one in prefixes:
            hidden_alone.append(llm.prefill(one)[0])
        assert len(set(map(tuple, alone))) >= 5  # the prefixes matter: different answers to the same question
        lengths = [p.shape[1] for p in prefixes]
        padded = torch.zeros(3, max(lengths), llm.hidden_size, device=device)
        for row, one in enumerate(prefixes):
            padded[row, :lengths[row]] = one[0]
        hidden = llm.prefill(padded, lengths)
        for row, length in enumerate(lengths):
            torch.testing.assert_close(hidden[row, :length], hidden_alone[row], rtol=1e-4, atol=1e-4)
        for rows in (16, 3):
            llm.decode_batch_rows = rows
            assert llm.generate_batch(continuations, 12, owners) == alone, rows
        with pytest.raises(ValueError, match='after set_prefixes'):
            llm.generate(continuations[0], 12, after_prefix=True)
        llm.prefill(prefixes[2])
        assert llm.generate(continuations[1], 12, after_prefix=True) == alone[1]
        assert llm.generate_batch(continuations[1:2], 12) == alone[1:2]


def test_several_prefixes_need_batched_decoding(tiny_llm_dir):
    """Where decoding goes one continuation after another (the CPU by default) there is one prefix at a time:
    several at once are refused with the reason, not decoded after the wrong prefix."""
    llm = _random_llm(tiny_llm_dir, 'cpu')
    prefix, tails = _prefix_and_questions(llm, 'cpu')
    with pytest.raises(ValueError, match='need batched decoding'):
        llm.prefill(prefix.expand(2, -1, -1), [prefix.shape[1]] * 2)
    with pytest.raises(ValueError, match='lengths'):
        llm.decoder.set_prefixes(prefix.expand(2, -1, -1), [prefix.shape[1] + 1, 3])


def test_batched_decoding_stops_each_row_at_its_stop_token(tiny_llm_dir):
    """Rows that meet a stop token keep no token from it on, while the others go on: a stop id chosen as the
    third token of one row's answer cuts that row (and any other row where it occurs) there."""
    llm = _random_llm(tiny_llm_dir, 'cpu')
    prefix, tails = _prefix_and_questions(llm, 'cpu')
    with torch.no_grad():
        llm.prefill(prefix)
        full = llm.decoder.generate_batch(tails, 8, llm.stop_ids)
        cut = llm.decoder.generate_batch(tails, 8, [full[2][2]])
    for whole, part in zip(full, cut):
        expected = whole[:whole.index(full[2][2])] if full[2][2] in whole else whole
        assert part == expected
    assert cut[2] == full[2][:2]


@pytest.mark.parametrize('device', ['cpu', pytest.param('cuda', marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason='the compiled step of the CUDA path needs a CUDA GPU'))])
def test_forced_logits_follow_the_greedy_answer_and_the_compiled_step_matches_the_eager_one(tiny_llm_dir, device):
    """Teacher-forced step logits along an answer: their argmaxes are the answer greedy decoding gave (so
    the forced path feeds the same cache positions as ``generate``), the prefix stays usable afterwards, and
    the compiled step (CUDA, the LM in bf16) stays within bf16 rounding of the eager logits, so that a token
    where the two decoders differ can be told apart as a near-tie (``tools/benchmark.py --sections
    decode_agreement``)."""
    llm = _random_llm(tiny_llm_dir, device)
    if device == 'cuda':
        llm.causal_lm.to(torch.bfloat16)
    prefix, tails = _prefix_and_questions(llm, device)
    with torch.no_grad():
        llm.prefill(prefix)
        answer = llm.decoder.generate(tails[2], 10, stop_ids=())
        eager = llm.decoder.forced_logits(tails[2], answer, compiled=False)
        assert eager.shape == (10, llm.causal_lm.config.vocab_size) and eager.dtype == torch.float32
        assert eager.argmax(-1).tolist() == answer
        assert llm.decoder.generate(tails[2], 10, stop_ids=()) == answer
        if device == 'cuda':
            compiled = llm.decoder.forced_logits(tails[2], answer, compiled=True)
            # bf16 roundings in another order: single logits differ by up to ~0.06 of logits up to ~8 (H100,
            # 2026-12-07: a bound of 5 % of the row's largest logit on every logit failed); a step at a wrong cache
            # position would differ by the logits' own spread on average
            mean_diff = (compiled - eager).abs().mean(-1)
            assert (mean_diff <= 0.02 * eager.abs().amax(-1)).all() and (mean_diff < 0.1 * eager.std(-1)).all()


def test_attention_window_holds_what_a_call_fills():
    """The slots a call's attention reads: the power of two from 256 that holds the needed slots, at most the
    cache."""
    assert [attention_window(n, 4096) for n in (1, 256, 257, 700, 1025, 4096)] == [256, 256, 512, 1024, 2048, 4096]
    assert attention_window(300, 300) == 300 and attention_window(5, 100) == 100


@pytest.mark.parametrize('device', ['cpu', pytest.param('cuda', marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason='the CUDA-graph steps of each window need a CUDA GPU'))])
def test_answers_in_any_attention_window_are_those_of_a_plain_forward(tiny_llm_dir, device):
    """Greedy answers read only the cache window a call fills (256 slots after a short prefix, 512 after one of
    240 positions), one row and batched: every answer token is the argmax of the LM's plain forward (no cache,
    no mask) over prefix, question and the answer so far."""
    llm = _random_llm(tiny_llm_dir, device)
    prefix, tails = _prefix_and_questions(llm, device)
    generator = torch.Generator().manual_seed(2)
    long_prefix = torch.cat([prefix, torch.randn(1, 240 - prefix.shape[1], llm.hidden_size,
                                                 generator=generator).to(device)], dim=1)
    embed = llm.causal_lm.get_input_embeddings()
    with torch.no_grad():
        for one, window in ((prefix, 256), (long_prefix, 512)):
            llm.prefill(one)
            alone = [llm.decoder.generate(tail, 12, stop_ids=()) for tail in tails[:3]]
            assert llm.decoder.cache.layers[0].window == window
            batched = llm.decoder.generate_batch(tails[:3], 12, stop_ids=(), min_rows=4)
            assert batched == alone and llm.decoder.batched.cache.layers[0].window == window
            for tail, answer in zip(tails, alone):
                context = torch.cat([one, tail, embed(torch.tensor([answer[:-1]], device=device))], dim=1)
                plain = llm.causal_lm(inputs_embeds=context).logits[0, -len(answer):].argmax(-1)
                assert plain.tolist() == answer
