# The long mini recipe evaluated without questions: occupancy, flow and planning metrics only, no answer
# decoding (evaluation throughput of the perception and planning path; tools/gpu/benchmark_eval.sh).
_base_ = ['./drivepi_mini_long.py']

test_dataloader = dict(dataset=dict(qa_file=None))
test_evaluator = [metric for metric in _base_.test_evaluator if metric['type'] != 'QAMetric']
